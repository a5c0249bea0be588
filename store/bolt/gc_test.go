package bolt_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/keyward/keyward/store"
	"github.com/keyward/keyward/store/bolt"
)

var gcNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// testGrant is a refresh-token grant expiring at exp.
func testGrant(sig string, exp time.Time) store.Grant {
	return store.Grant{
		Kind: store.GrantRefreshToken, Signature: sig, RequestID: "req-" + sig,
		ClientID: "client-1", Subject: "alice", Active: true,
		RequestedAt: gcNow.Add(-48 * time.Hour), ExpiresAt: exp,
		Data: []byte(`{"request":"` + sig + `"}`),
	}
}

// createGrants creates n grants sig-000…; expired(i) chooses which have
// expired at gcNow. It returns the signatures of the expired and the kept.
func createGrants(t *testing.T, s *bolt.Store, n int, expired func(i int) bool) (gone, kept []string) {
	t.Helper()
	for i := range n {
		sig := fmt.Sprintf("sig-%04d", i)
		exp := gcNow.Add(time.Hour)
		if expired(i) {
			exp = gcNow.Add(-time.Minute)
			gone = append(gone, sig)
		} else {
			kept = append(kept, sig)
		}
		if err := s.CreateGrant(t.Context(), testGrant(sig, exp)); err != nil {
			t.Fatalf("CreateGrant(%s) = %v", sig, err)
		}
	}
	return gone, kept
}

func checkGrants(t *testing.T, s *bolt.Store, gone, kept []string) {
	t.Helper()
	for _, sig := range gone {
		if _, err := s.GetGrant(t.Context(), store.GrantRefreshToken, sig); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetGrant(%s) after GarbageCollect = %v, want ErrNotFound", sig, err)
		}
		if n, err := s.DeleteGrantsByRequest(t.Context(), "req-"+sig); err != nil || n != 0 {
			t.Errorf("DeleteGrantsByRequest(req-%s) = %d, %v: want 0 (its index entry collected too)", sig, n, err)
		}
	}
	for _, sig := range kept {
		if g, err := s.GetGrant(t.Context(), store.GrantRefreshToken, sig); err != nil || g.Signature != sig {
			t.Errorf("GetGrant(%s) after GarbageCollect = %+v, %v: want it kept", sig, g, err)
		}
	}
}

// One GarbageCollect removes every expired record, in write transactions of
// at most the chunk size: with 67 expired grants and a chunk of 7 it commits
// exactly ceil(67/7) = 10 transactions.
func TestGarbageCollectInBoundedTransactions(t *testing.T) {
	s := open(t, bolt.Options{NoSync: true, BatchDelay: -1})
	bolt.SetGCLimits(s, 7, 20)
	gone, kept := createGrants(t, s, 100, func(i int) bool { return i%3 != 0 })
	before := s.Stats()
	res, err := s.GarbageCollect(t.Context(), gcNow)
	if err != nil {
		t.Fatalf("GarbageCollect = %v", err)
	}
	if res.Grants != len(gone) {
		t.Errorf("GarbageCollect removed %d grants, want %d", res.Grants, len(gone))
	}
	after := s.Stats()
	if got, want := after.Commits-before.Commits, uint64((len(gone)+6)/7); got != want {
		t.Errorf("GarbageCollect committed %d transactions, want %d (at most 7 records each, all expired ones removed)", got, want)
	}
	if after.Writes != before.Writes {
		t.Errorf("GarbageCollect counted %d store writes, want none (its transactions are commits only)", after.Writes-before.Writes)
	}
	checkGrants(t, s, gone, kept)
}

// A read step that finds nothing expired writes nothing, and the scan bound
// does not stop the collection short: expired records far into the bucket
// are still found, by resuming after the last key looked at.
func TestGarbageCollectResumesScan(t *testing.T) {
	s := open(t, bolt.Options{NoSync: true, BatchDelay: -1})
	bolt.SetGCLimits(s, 500, 10)
	gone, kept := createGrants(t, s, 95, func(i int) bool { return i >= 90 || i == 41 })
	before := s.Stats()
	res, err := s.GarbageCollect(t.Context(), gcNow)
	if err != nil {
		t.Fatalf("GarbageCollect = %v", err)
	}
	if res.Grants != 6 {
		t.Errorf("GarbageCollect removed %d grants, want 6", res.Grants)
	}
	// Steps of 10 records: sig-0040..0049 holds one expired, sig-0090..0094
	// the other five; the eight steps between write nothing.
	if got := s.Stats().Commits - before.Commits; got != 2 {
		t.Errorf("GarbageCollect committed %d transactions, want 2 (only the steps that found expired grants)", got)
	}
	checkGrants(t, s, gone, kept)
}

// Writes racing a collection in small steps are neither lost nor collected
// when they are not expired; everything expired is gone at the end.
func TestGarbageCollectConcurrentWrites(t *testing.T) {
	s := open(t, bolt.Options{NoSync: true})
	bolt.SetGCLimits(s, 3, 5)
	gone, kept := createGrants(t, s, 60, func(i int) bool { return i%2 == 0 })
	var wg sync.WaitGroup
	var added []string
	wg.Go(func() {
		for i := range 40 {
			sig := fmt.Sprintf("sig-new-%04d", i)
			if err := s.CreateGrant(t.Context(), testGrant(sig, gcNow.Add(time.Hour))); err != nil {
				t.Errorf("CreateGrant(%s) during GarbageCollect = %v", sig, err)
			}
			added = append(added, sig)
		}
	})
	res, err := s.GarbageCollect(t.Context(), gcNow)
	wg.Wait()
	if err != nil || res.Grants != len(gone) {
		t.Errorf("GarbageCollect = %+v, %v; want %d grants removed", res, err, len(gone))
	}
	checkGrants(t, s, gone, append(kept, added...))
}

// Stats counts each store write once and each committed transaction once;
// unbatched, they are equal; a write whose transaction rolls back is a write
// but no commit; SyncedCommits follows NoSync.
func TestStats(t *testing.T) {
	for _, noSync := range []bool{false, true} {
		t.Run(fmt.Sprintf("NoSync=%v", noSync), func(t *testing.T) {
			s := open(t, bolt.Options{NoSync: noSync, BatchDelay: -1})
			ctx := t.Context()
			for i := range 5 {
				if err := s.CreateGrant(ctx, testGrant(fmt.Sprint("sig-", i), gcNow.Add(time.Hour))); err != nil {
					t.Fatal(err)
				}
			}
			want := bolt.WriteStats{Writes: 5, Commits: 5, SyncedCommits: 5}
			if noSync {
				want.SyncedCommits = 0
			}
			if got := s.Stats(); got != want {
				t.Errorf("Stats after 5 writes = %+v, want %+v", got, want)
			}
			boom := errors.New("boom")
			bolt.SetFailDeprovisionAfter(s, func(string) error { return boom })
			if _, err := s.Deprovision(ctx, deprovisionAlice(gcNow)); !errors.Is(err, boom) {
				t.Fatalf("Deprovision failing inside its transaction = %v, want boom", err)
			}
			if got := s.Stats(); got.Writes != 6 || got.Commits != 5 {
				t.Errorf("Stats after a rolled-back write = %+v, want 6 writes, 5 commits", got)
			}
		})
	}
}

// Under group commit, concurrent writes share commits: every write counted,
// no more commits than writes, at least one.
func TestStatsGroupCommit(t *testing.T) {
	for _, opts := range []bolt.Options{{}, {BatchDelay: 5 * time.Millisecond}} {
		s := open(t, opts)
		var wg sync.WaitGroup
		for i := range 32 {
			wg.Go(func() {
				if err := s.CreateGrant(t.Context(), testGrant(fmt.Sprint("sig-", i), gcNow.Add(time.Hour))); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		st := s.Stats()
		if st.Writes != 32 || st.Commits < 1 || st.Commits > 32 || st.SyncedCommits != st.Commits {
			t.Errorf("Stats after 32 concurrent writes (BatchDelay %v) = %+v, want 32 writes, 1–32 commits, all synced", opts.BatchDelay, st)
		}
	}
}

// Files stay readable both ways across the freelist settings: a file written
// with Keyward's options (no freelist on disk, map freelist) opens with
// bbolt's defaults (which sync the freelist), passes its consistency check
// and takes writes, and Keyward opens that file again.
func TestFreelistSettingsCompatible(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "keyward.db")
	s, err := bolt.Open(ctx, bolt.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = createGrants(t, s, 50, func(i int) bool { return i < 40 })
	if _, err := s.GarbageCollect(ctx, gcNow); err != nil { // leaves free pages
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("bbolt.Open with default options = %v", err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return tx.Bucket([]byte("meta")).Put([]byte("compat-test"), []byte("1"))
	})
	if err != nil {
		t.Fatalf("check and write with default options = %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, bolt.Options{Path: path})
	checkGrants(t, s, nil, []string{"sig-0040", "sig-0049"})
}
