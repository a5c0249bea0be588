package bolt_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keyward/keyward/store"
	"github.com/keyward/keyward/store/bolt"
)

// TestSpaceInUse: the bytes in use follow what is stored, up when records
// are written and down when they are deleted, while the file only grows.
func TestSpaceInUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyward.db")
	s := open(t, bolt.Options{Path: path, NoSync: true})
	ctx := t.Context()
	empty, err := s.SpaceInUse(ctx)
	if err != nil || empty <= 0 {
		t.Fatalf("SpaceInUse() = %d, %v; want > 0, nil", empty, err)
	}
	exp := time.Now().Add(time.Hour).UTC()
	for i := range 2000 {
		g := store.Grant{Kind: store.GrantRefreshToken, Signature: fmt.Sprintf("sig-%d", i), RequestID: fmt.Sprintf("req-%d", i),
			ClientID: "c", Active: true, RequestedAt: time.Now().UTC(), ExpiresAt: exp, Data: make([]byte, 1024)}
		if err := s.CreateGrant(ctx, g); err != nil {
			t.Fatalf("CreateGrant: %v", err)
		}
	}
	full, err := s.SpaceInUse(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if full < empty+2000*1024 {
		t.Fatalf("SpaceInUse() after 2000 grants of 1 KiB = %d, want at least %d", full, empty+2000*1024)
	}
	for i := range 2000 {
		if err := s.DeleteGrant(ctx, store.GrantRefreshToken, fmt.Sprintf("sig-%d", i)); err != nil {
			t.Fatalf("DeleteGrant: %v", err)
		}
	}
	after, err := s.SpaceInUse(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after > empty+(full-empty)/4 {
		t.Fatalf("SpaceInUse() after deleting every grant = %d, want near the empty store's %d (full: %d)", after, empty, full)
	}
	if fi, err := os.Stat(path); err == nil && fi.Size() < full {
		t.Fatalf("file %d bytes < in use %d", fi.Size(), full)
	}
}
