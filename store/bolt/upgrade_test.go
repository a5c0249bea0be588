package bolt

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/keyward/keyward/store"
)

// countKeysContaining counts the keys of bucket that contain part.
func countKeysContaining(t *testing.T, db *bolt.DB, bucket []byte, part string) int {
	t.Helper()
	n := 0
	err := db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(k, _ []byte) error {
			if bytes.Contains(k, []byte(part)) {
				n++
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A file written before access tokens were self-contained loses its
// access-token records, with their index entries, at the first Open, in
// batches; everything else stays, and later Opens sweep nothing.
func TestSweepAccessTokensOnce(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "keyward.db")
	s, err := Open(ctx, Options{Path: path, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour).UTC()
	grant := func(kind store.GrantKind, sig string) store.Grant {
		return store.Grant{Kind: kind, Signature: sig, RequestID: "req-1", Subject: "alice", SessionID: "sess-1", Active: true, ExpiresAt: exp, Data: []byte(`{}`)}
	}
	const old = 5
	for i := range old {
		if err := s.CreateGrant(ctx, grant(store.GrantAccessToken, fmt.Sprintf("at-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateGrant(ctx, grant(store.GrantRefreshToken, "rt-1")); err != nil {
		t.Fatal(err)
	}
	// Make it a file from before the sweep existed.
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Delete(keyAccessTokensSwept) }); err != nil {
		t.Fatal(err)
	}
	// In batches of two: three transactions.
	if err := sweepAccessTokens(ctx, s.db, slog.New(slog.DiscardHandler), 2); err != nil {
		t.Fatalf("sweepAccessTokens: %v", err)
	}
	for i := range old {
		if _, err := s.GetGrant(ctx, store.GrantAccessToken, fmt.Sprintf("at-%d", i)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetGrant(at-%d) after the sweep = %v, want ErrNotFound", i, err)
		}
	}
	for _, b := range [][]byte{bucketGrantByRequest, bucketGrantBySubject, bucketGrantBySession} {
		if n := countKeysContaining(t, s.db, b, string(store.GrantAccessToken)); n != 0 {
			t.Errorf("%s keeps %d index entries of access tokens, want 0", b, n)
		}
	}
	if _, err := s.GetGrant(ctx, store.GrantRefreshToken, "rt-1"); err != nil {
		t.Errorf("the refresh token did not survive the sweep: %v", err)
	}

	// Once swept, never again: a record written afterwards (none is, by
	// this Keyward) stays across Opens.
	if err := s.CreateGrant(ctx, grant(store.GrantAccessToken, "late")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, Options{Path: path, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.GetGrant(ctx, store.GrantAccessToken, "late"); err != nil {
		t.Errorf("a swept file was swept again at Open: %v", err)
	}
}

// Open sweeps a file that has never been swept.
func TestOpenSweepsAccessTokens(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "keyward.db")
	s, err := Open(ctx, Options{Path: path, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateGrant(ctx, store.Grant{Kind: store.GrantAccessToken, Signature: "at", RequestID: "req-1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Delete(keyAccessTokensSwept) }); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, Options{Path: path, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.GetGrant(ctx, store.GrantAccessToken, "at"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetGrant after Open = %v, want ErrNotFound (swept)", err)
	}
}
