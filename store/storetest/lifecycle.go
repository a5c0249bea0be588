package storetest

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/keyward/keyward/store"
)

// gcCase is a record expiring at expiresAt, and whether a GarbageCollect at
// the test's now removes it.
type gcCase struct {
	name      string
	expiresAt time.Time
	collected bool
}

// gcBoundaries are the expiries around now that every kind of record is
// collected by: before and at now go, after now and never (zero) stay.
func gcBoundaries(now time.Time) []gcCase {
	return []gcCase{
		{"before", now.Add(-time.Second), true},
		{"at", now, true},
		{"after", now.Add(time.Microsecond), false},
		{"zero", time.Time{}, false},
	}
}

func testGarbageCollect(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := t0().Add(24 * time.Hour)
	tests := gcBoundaries(now)
	var keptSessions []store.Session
	for _, tt := range tests {
		a := loginAttempt("la-"+tt.name, "state-"+tt.name)
		a.ExpiresAt = tt.expiresAt
		must(t, "CreateLoginAttempt("+a.ID+")", s.CreateLoginAttempt(ctx, a))
		sess := session("sess-"+tt.name, "alice", t0())
		sess.ExpiresAt = tt.expiresAt
		must(t, "CreateSession("+sess.ID+")", s.CreateSession(ctx, sess))
		if !tt.collected {
			keptSessions = append(keptSessions, sess)
		}
		g := grant(store.GrantRefreshToken, "sig-"+tt.name, "req-"+tt.name, "alice", sess.ID)
		g.ExpiresAt = tt.expiresAt
		must(t, "CreateGrant("+g.Signature+")", s.CreateGrant(ctx, g))
		// A revoked access token's jti is denied until the token expires.
		denied := grant(store.GrantDeniedToken, "jti-"+tt.name, "req-"+tt.name, "alice", sess.ID)
		denied.ExpiresAt = tt.expiresAt
		_, err := s.Apply(ctx, store.Batch{GrantCreates: []store.Grant{denied}})
		must(t, "Apply(create denied "+denied.Signature+")", err)
	}
	// Never collected.
	must(t, "CreateSubject(alice)", s.CreateSubject(ctx, subject("alice")))
	ks := keySet(1, "kid-1")
	ks.Keys[0].ExpiresAt = now.Add(-time.Hour)
	must(t, "UpdateKeySet()", s.UpdateKeySet(ctx, func(store.KeySet) (store.KeySet, error) { return ks, nil }))

	// The instant counts, not the zone it is written in.
	res, err := s.GarbageCollect(ctx, now.In(time.FixedZone("West", -7*3600)))
	must(t, "GarbageCollect(now)", err)
	diff(t, "GarbageCollect(now)", store.GCResult{LoginAttempts: 2, Sessions: 2, Grants: 4}, res)

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := error(nil)
			if tt.collected {
				want = store.ErrNotFound
			}
			_, err := s.GetLoginAttempt(ctx, "la-"+tt.name)
			wantErr(t, "GetLoginAttempt after GC", err, want)
			_, err = s.GetLoginAttemptByState(ctx, "state-"+tt.name)
			wantErr(t, "GetLoginAttemptByState after GC", err, want)
			_, err = s.GetSession(ctx, "sess-"+tt.name)
			wantErr(t, "GetSession after GC", err, want)
			_, err = s.GetGrant(ctx, store.GrantRefreshToken, "sig-"+tt.name)
			wantErr(t, "GetGrant after GC", err, want)
			_, err = s.GetGrant(ctx, store.GrantDeniedToken, "jti-"+tt.name)
			wantErr(t, "GetGrant(denied) after GC", err, want)
			n, err := s.UpdateGrantsByRequest(ctx, "req-"+tt.name, nil, func(g store.Grant) (store.Grant, error) { return g, nil })
			wantN := 2
			if tt.collected {
				wantN = 0
			}
			wantCount(t, "UpdateGrantsByRequest after GC", n, err, wantN)
			if tt.collected { // the State and the grant key are free again
				a := loginAttempt("la-new-"+tt.name, "state-"+tt.name)
				a.ExpiresAt = time.Time{}
				must(t, "CreateLoginAttempt after GC", s.CreateLoginAttempt(ctx, a))
				g := grant(store.GrantRefreshToken, "sig-"+tt.name, "req-new", "alice", "")
				g.ExpiresAt = time.Time{}
				must(t, "CreateGrant after GC", s.CreateGrant(ctx, g))
			}
		})
	}
	list, err := s.ListSessions(ctx, "alice")
	must(t, "ListSessions(alice)", err)
	diff(t, "ListSessions(alice) after GC", keptSessions, list)
	if _, err := s.GetSubject(ctx, "alice"); err != nil {
		t.Errorf("GetSubject(alice) after GC = %v, want nil", err)
	}
	got, err := s.GetKeySet(ctx)
	must(t, "GetKeySet() after GC", err)
	diff(t, "GetKeySet() after GC", ks, got)

	res, err = s.GarbageCollect(ctx, now)
	must(t, "GarbageCollect(now) again", err)
	if !res.IsEmpty() {
		t.Errorf("GarbageCollect(now) again = %+v, want nothing removed", res)
	}
}

// testTimes writes times in a non-UTC zone with nanoseconds and expects them
// back in UTC, truncated to microseconds, through every write path.
func testTimes(t *testing.T, s store.Store) {
	zone := time.FixedZone("X", 5*3600+1800)
	local := time.Date(2031, 1, 1, 5, 6, 7, 123456789, zone)
	utc := time.Date(2030, 12, 31, 23, 36, 7, 123456000, time.UTC) // local, normalised
	if !local.Equal(utc.Add(789)) {
		t.Fatalf("fixture: %v is not %v + 789ns", local, utc)
	}
	tests := []struct {
		name  string
		build func(at time.Time) any // a record whose times derive from at
		write func(ctx context.Context, rec any) error
		read  func(ctx context.Context) (any, error)
	}{
		{
			"LoginAttempt",
			func(at time.Time) any {
				a := loginAttempt("la-1", "state-1")
				a.CreatedAt, a.ExpiresAt = at, at.Add(time.Hour)
				return a
			},
			func(ctx context.Context, rec any) error { return s.CreateLoginAttempt(ctx, rec.(store.LoginAttempt)) },
			func(ctx context.Context) (any, error) { return s.GetLoginAttempt(ctx, "la-1") },
		},
		{
			"Session",
			func(at time.Time) any { return session("sess-1", "alice", at) },
			func(ctx context.Context, rec any) error { return s.CreateSession(ctx, rec.(store.Session)) },
			func(ctx context.Context) (any, error) { return s.GetSession(ctx, "sess-1") },
		},
		{
			"Session via UpdateSession",
			func(at time.Time) any { return session("sess-2", "alice", at) },
			func(ctx context.Context, rec any) error {
				if err := s.CreateSession(ctx, session("sess-2", "alice", t0())); err != nil {
					return err
				}
				return s.UpdateSession(ctx, "sess-2", func(store.Session) (store.Session, error) {
					return rec.(store.Session), nil
				})
			},
			func(ctx context.Context) (any, error) { return s.GetSession(ctx, "sess-2") },
		},
		{
			"Subject via UpsertSubject",
			func(at time.Time) any {
				x := subject("alice")
				x.NotBefore, x.CreatedAt, x.UpdatedAt, x.LastLoginAt = at, at, at, at.Add(time.Hour)
				return x
			},
			func(ctx context.Context, rec any) error {
				got, err := s.UpsertSubject(ctx, "alice", func() store.Subject { return rec.(store.Subject) }, nil)
				checkUTCMicro(t, "UpsertSubject result", reflect.ValueOf(got))
				return err
			},
			func(ctx context.Context) (any, error) { return s.GetSubject(ctx, "alice") },
		},
		{
			"Grant",
			func(at time.Time) any {
				g := grant(store.GrantRefreshToken, "sig-1", "req-1", "alice", "sess-1")
				g.RotatedAt, g.GraceUsedAt, g.RequestedAt, g.ExpiresAt = at, at, at, at.Add(time.Hour)
				g.AccessExpiresAt = at.Add(5 * time.Minute)
				return g
			},
			func(ctx context.Context, rec any) error { return s.CreateGrant(ctx, rec.(store.Grant)) },
			func(ctx context.Context) (any, error) { return s.GetGrant(ctx, store.GrantRefreshToken, "sig-1") },
		},
		{
			"Grant via Apply",
			func(at time.Time) any {
				g := grant(store.GrantAuthorizeCode, "code-1", "req-1", "alice", "sess-1")
				g.RequestedAt, g.ExpiresAt, g.AccessExpiresAt = at, at.Add(time.Hour), at.Add(5*time.Minute)
				return g
			},
			func(ctx context.Context, rec any) error {
				_, err := s.Apply(ctx, store.Batch{GrantCreates: []store.Grant{rec.(store.Grant)}})
				return err
			},
			func(ctx context.Context) (any, error) { return s.GetGrant(ctx, store.GrantAuthorizeCode, "code-1") },
		},
		{
			"Session and Subject via Apply",
			func(at time.Time) any {
				x := subject("bob")
				x.NotBefore, x.CreatedAt, x.UpdatedAt, x.LastLoginAt = at, at, at, at.Add(time.Hour)
				return []any{session("sess-3", "bob", at), x}
			},
			func(ctx context.Context, rec any) error {
				parts := rec.([]any)
				res, err := s.Apply(ctx, store.Batch{
					SubjectUpserts: []store.SubjectUpsert{{ID: "bob", Create: func() store.Subject { return parts[1].(store.Subject) }}},
					SessionCreates: []store.Session{parts[0].(store.Session)},
				})
				checkUTCMicro(t, "Apply result", reflect.ValueOf(res))
				return err
			},
			func(ctx context.Context) (any, error) {
				sess, err := s.GetSession(ctx, "sess-3")
				if err != nil {
					return nil, err
				}
				x, err := s.GetSubject(ctx, "bob")
				return []any{sess, x}, err
			},
		},
		{
			"KeySet via UpdateKeySet",
			func(at time.Time) any {
				ks := keySet(1, "kid-1", "kid-2")
				ks.NextRotation, ks.UpdatedAt = at, at
				for i := range ks.Keys {
					k := &ks.Keys[i]
					k.CreatedAt, k.ActivatesAt, k.RetiredAt, k.ExpiresAt = at, at, at, at.Add(time.Hour)
				}
				return ks
			},
			func(ctx context.Context, rec any) error {
				return s.UpdateKeySet(ctx, func(store.KeySet) (store.KeySet, error) { return rec.(store.KeySet), nil })
			},
			func(ctx context.Context) (any, error) { return s.GetKeySet(ctx) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			must(t, "write at "+local.String(), tt.write(ctx, tt.build(local)))
			got, err := tt.read(ctx)
			must(t, "read back", err)
			checkUTCMicro(t, tt.name, reflect.ValueOf(got))
			// cmp compares times with Equal: the instant, truncated to µs.
			diff(t, tt.name+" read back", tt.build(utc), got)
		})
	}
}

// checkUTCMicro reports every time.Time in v that is not in UTC or not at µs
// precision.
func checkUTCMicro(t *testing.T, path string, v reflect.Value) {
	t.Helper()
	switch v.Kind() {
	case reflect.Struct:
		if tm, ok := v.Interface().(time.Time); ok {
			if tm.Location() != time.UTC || tm.Nanosecond()%1000 != 0 {
				t.Errorf("%s = %v (%s), want UTC at µs precision", path, tm, tm.Location())
			}
			return
		}
		for i := range v.NumField() {
			checkUTCMicro(t, path+"."+v.Type().Field(i).Name, v.Field(i))
		}
	case reflect.Slice:
		for i := range v.Len() {
			checkUTCMicro(t, fmt.Sprintf("%s[%d]", path, i), v.Index(i))
		}
	case reflect.Interface, reflect.Pointer:
		if !v.IsNil() {
			checkUTCMicro(t, path, v.Elem())
		}
	default:
	}
}
