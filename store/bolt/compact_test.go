package bolt_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/keyward/keyward/store"
	"github.com/keyward/keyward/store/bolt"
)

// growFile writes n grants of about 2 KB to a new store at path, 90% of
// them expired at gcNow, collects those, and closes the store. It returns
// the signatures kept.
func growFile(t *testing.T, path string, n int) (kept []string) {
	t.Helper()
	ctx := t.Context()
	s, err := bolt.Open(ctx, bolt.Options{Path: path, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("x", 2000)
	for i := range n {
		sig := fmt.Sprintf("sig-%05d", i)
		exp := gcNow.Add(-time.Minute)
		if i%10 == 0 {
			exp = gcNow.Add(time.Hour)
			kept = append(kept, sig)
		}
		g := testGrant(sig, exp)
		g.Data = []byte(`{"request":"` + sig + `","pad":"` + pad + `"}`)
		if err := s.CreateGrant(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateSession(ctx, store.Session{ID: "sess-1", Subject: "alice", CreatedAt: gcNow}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GarbageCollect(ctx, gcNow); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return kept
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Size()
}

// A grown file with most records deleted shrinks when compacted, and every
// remaining record, index entries included, reads back.
func TestCompact(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyward.db")
	kept := growFile(t, path, 3000)
	before := fileSize(t, path)

	var last bolt.CompactProgress
	calls := 0
	res, err := bolt.Compact(t.Context(), path, bolt.CompactOptions{
		ProgressEvery: time.Millisecond,
		Progress:      func(p bolt.CompactProgress) { last = p; calls++ },
	})
	if err != nil {
		t.Fatalf("Compact = %v", err)
	}
	after := fileSize(t, path)
	if res.Before != before || res.After != after {
		t.Errorf("Compact = %+v, want Before %d, After %d", res, before, after)
	}
	if after*3 > before {
		t.Errorf("file %d → %d bytes after deleting 90%% of its records, want under a third", before, after)
	}
	if calls == 0 || last.Written != after || last.InUse <= 0 || last.InUse > before {
		t.Errorf("last progress %+v after %d calls, want Written = %d and 0 < InUse ≤ %d", last, calls, after, before)
	}
	if _, err := os.Stat(path + ".compact"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the copy %s.compact is left: %v", path, err)
	}
	if info, _ := os.Stat(path); info.Mode().Perm() != 0o600 {
		t.Errorf("mode after Compact = %v, want 0600 as before", info.Mode().Perm())
	}

	s := open(t, bolt.Options{Path: path})
	checkGrants(t, s, nil, kept)
	if n, err := s.DeleteGrantsByRequest(t.Context(), "req-"+kept[1]); err != nil || n != 1 {
		t.Errorf("DeleteGrantsByRequest(req-%s) after Compact = %d, %v; want 1 (the index survived)", kept[1], n, err)
	}
	if sess, err := s.ListSessions(t.Context(), "alice"); err != nil || len(sess) != 1 {
		t.Errorf("ListSessions(alice) after Compact = %+v, %v; want sess-1", sess, err)
	}
	if err := s.CreateGrant(t.Context(), testGrant("sig-new", gcNow.Add(time.Hour))); err != nil {
		t.Errorf("CreateGrant after Compact = %v", err)
	}
}

// While a store holds the file (keyward serve), Compact refuses with
// ErrLocked after its timeout and changes nothing.
func TestCompactRefusesLockedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyward.db")
	kept := growFile(t, path, 50)
	before := fileSize(t, path)
	s := open(t, bolt.Options{Path: path})

	_, err := bolt.Compact(t.Context(), path, bolt.CompactOptions{Timeout: 50 * time.Millisecond})
	if !errors.Is(err, bolt.ErrLocked) || !strings.Contains(err.Error(), "stop the keyward using it") {
		t.Fatalf("Compact of a file in use = %v, want ErrLocked and what to do", err)
	}
	if got := fileSize(t, path); got != before {
		t.Errorf("file size %d → %d after a refused Compact", before, got)
	}
	if _, err := os.Stat(path + ".compact"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused Compact left %s.compact: %v", path, err)
	}
	checkGrants(t, s, nil, kept)
}

// Compact refuses a missing file (it must not create one) and a bbolt file
// that is not a Keyward store, leaving both as they were.
func TestCompactRefusesOtherFiles(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.db")
	if _, err := bolt.Compact(t.Context(), missing, bolt.CompactOptions{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Compact(missing) = %v, want ErrNotExist", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Compact(missing) created the file")
	}

	other := filepath.Join(dir, "other.db")
	db, err := bbolt.Open(other, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error { _, err := tx.CreateBucket([]byte("x")); return err }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := bolt.Compact(t.Context(), other, bolt.CompactOptions{}); err == nil || !strings.Contains(err.Error(), "not a Keyward store") {
		t.Errorf("Compact(another bbolt file) = %v, want a refusal", err)
	}
}

// A cancelled context stops Compact before the swap: the original stays.
func TestCompactCancelled(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyward.db")
	kept := growFile(t, path, 100)
	before := fileSize(t, path)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := bolt.Compact(ctx, path, bolt.CompactOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Compact(cancelled) = %v, want context.Canceled", err)
	}
	if got := fileSize(t, path); got != before {
		t.Errorf("file size %d → %d after a cancelled Compact", before, got)
	}
	checkGrants(t, open(t, bolt.Options{Path: path}), nil, kept)
}
