package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/store"
)

// seed stores one record of every type, for tests that need them present.
func seed(t *testing.T, s store.Store) {
	t.Helper()
	ctx := t.Context()
	must(t, "CreateLoginAttempt(la-1)", s.CreateLoginAttempt(ctx, loginAttempt("la-1", "state-1")))
	must(t, "CreateSession(sess-1)", s.CreateSession(ctx, session("sess-1", "alice", t0())))
	must(t, "CreateSubject(alice)", s.CreateSubject(ctx, subject("alice")))
	for _, sig := range []string{"sig-1", "sig-2"} {
		must(t, "CreateGrant("+sig+")", s.CreateGrant(ctx, grant(store.GrantAccessToken, sig, "req-1", "alice", "sess-1")))
	}
	must(t, "UpdateKeySet()", s.UpdateKeySet(ctx, func(store.KeySet) (store.KeySet, error) { return keySet(1, "kid-1"), nil }))
}

// snapshot reads every record that seed stores.
func snapshot(t *testing.T, s store.Store) []any {
	t.Helper()
	ctx := t.Context()
	var out []any
	add := func(v any, err error) {
		t.Helper()
		must(t, fmt.Sprintf("snapshot read %d", len(out)), err)
		out = append(out, v)
	}
	add(s.GetLoginAttempt(ctx, "la-1"))
	add(s.GetSession(ctx, "sess-1"))
	add(s.GetSubject(ctx, "alice"))
	add(s.GetGrant(ctx, store.GrantAccessToken, "sig-1"))
	add(s.GetGrant(ctx, store.GrantAccessToken, "sig-2"))
	add(s.GetKeySet(ctx))
	return out
}

// testUpdaterError checks that an updater's error aborts the whole write and
// comes back to the caller.
func testUpdaterError(t *testing.T, s store.Store) {
	seed(t, s)
	before := snapshot(t, s)
	errBoom := errors.New("boom")
	tests := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"UpdateLoginAttempt", func(ctx context.Context) error {
			return s.UpdateLoginAttempt(ctx, "la-1", func(a store.LoginAttempt) (store.LoginAttempt, error) {
				a.State = "state-changed"
				return a, errBoom
			})
		}},
		{"UpdateSession", func(ctx context.Context) error {
			return s.UpdateSession(ctx, "sess-1", func(x store.Session) (store.Session, error) {
				x.Subject = "bob"
				return x, errBoom
			})
		}},
		{"UpdateSubject", func(ctx context.Context) error {
			return s.UpdateSubject(ctx, "alice", func(x store.Subject) (store.Subject, error) {
				x.Disabled = true
				return x, errBoom
			})
		}},
		{"UpsertSubject", func(ctx context.Context) error {
			_, err := s.UpsertSubject(ctx, "alice", func() store.Subject { return subject("alice") },
				func(x store.Subject) (store.Subject, error) {
					x.Disabled = true
					return x, errBoom
				})
			return err
		}},
		{"UpdateGrant", func(ctx context.Context) error {
			return s.UpdateGrant(ctx, store.GrantAccessToken, "sig-1", func(g store.Grant) (store.Grant, error) {
				g.Active = false
				return g, errBoom
			})
		}},
		{"UpdateGrantsByRequest fails on the second grant", func(ctx context.Context) error {
			calls := 0
			_, err := s.UpdateGrantsByRequest(ctx, "req-1", nil, func(g store.Grant) (store.Grant, error) {
				calls++
				g.Active = false
				if calls%2 == 0 { // the updater may be re-run: fail on every second call
					return g, errBoom
				}
				return g, nil
			})
			return err
		}},
		{"UpdateKeySet", func(ctx context.Context) error {
			return s.UpdateKeySet(ctx, func(ks store.KeySet) (store.KeySet, error) {
				ks.Version++
				return ks, errBoom
			})
		}},
		{"Apply with a failing GrantUpdate", func(ctx context.Context) error {
			_, err := s.Apply(ctx, store.Batch{
				GrantUpdates: []store.GrantUpdate{{Kind: store.GrantAccessToken, Signature: "sig-1", Update: func(g store.Grant) (store.Grant, error) {
					g.Active = false
					return g, errBoom
				}}},
				LoginAttemptDeletes: []string{"la-1"},
			})
			return err
		}},
		{"Apply with a failing SubjectUpsert after a GrantUpdate", func(ctx context.Context) error {
			_, err := s.Apply(ctx, store.Batch{
				GrantUpdates: []store.GrantUpdate{{Kind: store.GrantAccessToken, Signature: "sig-1", Update: func(g store.Grant) (store.Grant, error) {
					g.Active = false
					return g, nil
				}}},
				SubjectUpserts: []store.SubjectUpsert{{ID: "alice", Create: func() store.Subject { return subject("alice") },
					Update: func(x store.Subject) (store.Subject, error) {
						x.Disabled = true
						return x, errBoom
					}}},
			})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call(t.Context())
			wantErr(t, tt.name, err, errBoom)
			diff(t, "records after "+tt.name, before, snapshot(t, s))
		})
	}
}

// testUpdaterChangingKey checks that an updater may not change the fields
// that key its record: the write fails and nothing changes.
func testUpdaterChangingKey(t *testing.T, s store.Store) {
	seed(t, s)
	before := snapshot(t, s)
	tests := []struct {
		name   string
		call   func(ctx context.Context) error
		newKey func(ctx context.Context) error // reads the record under its new key
	}{
		{"UpdateLoginAttempt",
			func(ctx context.Context) error {
				return s.UpdateLoginAttempt(ctx, "la-1", func(a store.LoginAttempt) (store.LoginAttempt, error) {
					a.ID = "la-2"
					return a, nil
				})
			},
			func(ctx context.Context) error { _, err := s.GetLoginAttempt(ctx, "la-2"); return err },
		},
		{"UpdateSession",
			func(ctx context.Context) error {
				return s.UpdateSession(ctx, "sess-1", func(x store.Session) (store.Session, error) {
					x.ID = "sess-2"
					return x, nil
				})
			},
			func(ctx context.Context) error { _, err := s.GetSession(ctx, "sess-2"); return err },
		},
		{"UpdateSubject",
			func(ctx context.Context) error {
				return s.UpdateSubject(ctx, "alice", func(x store.Subject) (store.Subject, error) {
					x.ID = "bob"
					return x, nil
				})
			},
			func(ctx context.Context) error { _, err := s.GetSubject(ctx, "bob"); return err },
		},
		{"UpdateGrant",
			func(ctx context.Context) error {
				return s.UpdateGrant(ctx, store.GrantAccessToken, "sig-1", func(g store.Grant) (store.Grant, error) {
					g.Kind, g.Signature = store.GrantRefreshToken, "sig-9"
					return g, nil
				})
			},
			func(ctx context.Context) error {
				_, err := s.GetGrant(ctx, store.GrantRefreshToken, "sig-9")
				return err
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(t.Context()); err == nil {
				t.Errorf("%s changing the key = nil, want an error", tt.name)
			}
			wantErr(t, tt.name+": read under the new key", tt.newKey(t.Context()), store.ErrNotFound)
			diff(t, "records after "+tt.name, before, snapshot(t, s))
		})
	}
}

// testConcurrentUpdates runs read-modify-write updates from many goroutines
// at once; none may be lost.
func testConcurrentUpdates(t *testing.T, s store.Store) {
	const n = 20
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	must(t, "CreateSession(sess-1)", s.CreateSession(ctx, session("sess-1", "alice", t0())))
	g := grant(store.GrantRefreshToken, "sig-1", "req-1", "alice", "sess-1")
	g.Data = nil
	must(t, "CreateGrant(sig-1)", s.CreateGrant(ctx, g))

	var wg sync.WaitGroup
	errs := make(chan error, 4*n)
	for i := range n {
		wg.Go(func() {
			errs <- s.UpdateSession(ctx, "sess-1", func(x store.Session) (store.Session, error) {
				x.Identity.Groups = append(x.Identity.Groups, fmt.Sprintf("g%02d", i))
				return x, nil
			})
		})
		wg.Go(func() {
			errs <- s.UpdateKeySet(ctx, func(ks store.KeySet) (store.KeySet, error) {
				return ks, nil // the store increments Version
			})
		})
		wg.Go(func() {
			_, err := s.UpsertSubject(ctx, "alice",
				func() store.Subject { x := subject("alice"); x.Name = "c"; return x },
				func(x store.Subject) (store.Subject, error) { x.Name += "u"; return x, nil })
			errs <- err
		})
		wg.Go(func() {
			errs <- s.UpdateGrant(ctx, g.Kind, g.Signature, func(x store.Grant) (store.Grant, error) {
				x.Data = append(x.Data, byte(i))
				return x, nil
			})
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatalf("%d concurrent updates did not finish: %v", 4*n, ctx.Err())
	}
	close(errs)
	for err := range errs {
		must(t, "concurrent update", err)
	}

	wantGroups := []string{"admins", "devs"}
	wantData := []byte{}
	wantName := "c"
	for i := range n {
		wantGroups = append(wantGroups, fmt.Sprintf("g%02d", i))
		wantData = append(wantData, byte(i))
		if i > 0 {
			wantName += "u"
		}
	}
	sess, err := s.GetSession(ctx, "sess-1")
	must(t, "GetSession(sess-1)", err)
	slices.Sort(sess.Identity.Groups)
	diff(t, "Groups after concurrent UpdateSession", wantGroups, sess.Identity.Groups)
	ks, err := s.GetKeySet(ctx)
	must(t, "GetKeySet()", err)
	if ks.Version != n {
		t.Errorf("KeySet.Version after %d concurrent UpdateKeySet = %d, want %d", n, ks.Version, n)
	}
	sub, err := s.GetSubject(ctx, "alice")
	must(t, "GetSubject(alice)", err)
	if sub.Name != wantName {
		t.Errorf("Subject.Name after %d concurrent UpsertSubject = %q, want %q", n, sub.Name, wantName)
	}
	got, err := s.GetGrant(ctx, g.Kind, g.Signature)
	must(t, "GetGrant(sig-1)", err)
	slices.Sort(got.Data)
	diff(t, "Data after concurrent UpdateGrant", wantData, got.Data)
}
