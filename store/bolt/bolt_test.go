package bolt_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/keyward/keyward/store"
	"github.com/keyward/keyward/store/bolt"
	"github.com/keyward/keyward/store/storetest"
)

func open(t *testing.T, opts bolt.Options) *bolt.Store {
	t.Helper()
	if opts.Path == "" {
		opts.Path = filepath.Join(t.TempDir(), "keyward.db")
	}
	s, err := bolt.Open(t.Context(), opts)
	if err != nil {
		t.Fatalf("Open(%q) = %v, want nil", opts.Path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	tests := []struct {
		name string
		opts bolt.Options
	}{
		{"group commit", bolt.Options{}},
		{"DB.Batch", bolt.Options{BatchDelay: time.Millisecond}},
		{"unbatched", bolt.Options{BatchDelay: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) store.Store { return open(t, tt.opts) })
		})
	}
}

func TestReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "keyward.db")
	s, err := bolt.Open(ctx, bolt.Options{Path: path})
	if err != nil {
		t.Fatalf("Open(%q) = %v", path, err)
	}
	now := time.Date(2030, 1, 2, 3, 4, 5, 6000, time.UTC)
	sess := store.Session{ID: "sess-1", Subject: "alice", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	g := store.Grant{Kind: store.GrantRefreshToken, Signature: "sig-1", RequestID: "req-1", Subject: "alice", Active: true, Data: []byte("data")}
	ks := store.KeySet{Keys: []store.SigningKey{{ID: "kid-1", State: store.KeyCurrent, PublicKey: []byte{1}}}, Version: 1}
	for _, err := range []error{
		s.CreateSession(ctx, sess),
		s.CreateGrant(ctx, g),
		s.UpdateKeySet(ctx, func(store.KeySet) (store.KeySet, error) { return ks, nil }),
	} {
		if err != nil {
			t.Fatalf("write before reopening = %v", err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}

	s = open(t, bolt.Options{Path: path})
	gotSess, err := s.GetSession(ctx, "sess-1")
	if err != nil {
		t.Fatalf("GetSession(sess-1) after reopening = %v", err)
	}
	if d := cmp.Diff(sess, gotSess); d != "" {
		t.Errorf("GetSession(sess-1) after reopening mismatch (-want +got):\n%s", d)
	}
	list, err := s.ListSessions(ctx, "alice")
	if err != nil || len(list) != 1 {
		t.Errorf("ListSessions(alice) after reopening = %d sessions, %v; want 1, nil", len(list), err)
	}
	gotGrant, err := s.GetGrant(ctx, g.Kind, g.Signature)
	if err != nil {
		t.Fatalf("GetGrant(sig-1) after reopening = %v", err)
	}
	if d := cmp.Diff(g, gotGrant); d != "" {
		t.Errorf("GetGrant(sig-1) after reopening mismatch (-want +got):\n%s", d)
	}
	if n, err := s.DeleteGrantsByRequest(ctx, "req-1"); n != 1 || err != nil {
		t.Errorf("DeleteGrantsByRequest(req-1) after reopening = %d, %v; want 1, nil", n, err)
	}
	gotKS, err := s.GetKeySet(ctx)
	if err != nil {
		t.Fatalf("GetKeySet() after reopening = %v", err)
	}
	if d := cmp.Diff(ks, gotKS); d != "" {
		t.Errorf("GetKeySet() after reopening mismatch (-want +got):\n%s", d)
	}
}

func TestOpenLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyward.db")
	open(t, bolt.Options{Path: path})

	start := time.Now()
	s, err := bolt.Open(t.Context(), bolt.Options{Path: path, Timeout: 100 * time.Millisecond})
	if err == nil {
		_ = s.Close()
		t.Fatalf("second Open(%q) = nil, want a lock error", path)
	}
	want := "bbolt allows one process: is another keyward running on " + path + "?"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("second Open(%q) = %q, want it to contain %q", path, err, want)
	}
	if !errors.Is(err, bolterrors.ErrTimeout) {
		t.Errorf("second Open(%q) = %v, want errors.Is bolterrors.ErrTimeout", path, err)
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Errorf("second Open waited %v, want about the 100ms timeout", waited)
	}
}

func TestOpenErrors(t *testing.T) {
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name string
		run  func() error
		want string
	}{
		{"no path", func() error { _, err := bolt.Open(t.Context(), bolt.Options{}); return err }, "path is required"},
		{"cancelled", func() error {
			_, err := bolt.Open(cancelled, bolt.Options{Path: filepath.Join(t.TempDir(), "x.db")})
			return err
		}, "context canceled"},
		{"directory", func() error { _, err := bolt.Open(t.Context(), bolt.Options{Path: t.TempDir()}); return err }, "bolt: open"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Open() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestInvalidKeys(t *testing.T) {
	s := open(t, bolt.Options{})
	ctx := t.Context()
	tests := []struct {
		name string
		err  error
	}{
		{"empty session id", s.CreateSession(ctx, store.Session{})},
		{"NUL in subject", s.CreateSession(ctx, store.Session{ID: "s", Subject: "a\x00b"})},
		{"empty grant kind", s.CreateGrant(ctx, store.Grant{Signature: "sig"})},
		{"NUL in request id", s.CreateGrant(ctx, store.Grant{Kind: store.GrantPKCE, Signature: "sig", RequestID: "r\x00"})},
		{"empty subject id", s.CreateSubject(ctx, store.Subject{})},
	}
	for _, tt := range tests {
		if tt.err == nil {
			t.Errorf("%s: write = nil, want an error", tt.name)
		}
	}
}

func TestCloseTwice(t *testing.T) {
	s := open(t, bolt.Options{})
	if err := s.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	// The cleanup closes it a second time.
}
