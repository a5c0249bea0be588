package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/keyward/keyward/store"
)

// errLost is the precondition error of the batches below: the grant was
// no longer what the request had read.
var errLost = errors.New("precondition failed: grant already used")

// rotate is a GrantUpdate with a precondition, as the broker writes them:
// the grant must still be active; it becomes inactive, rotated at at.
func rotate(kind store.GrantKind, signature string, at time.Time) store.GrantUpdate {
	return store.GrantUpdate{Kind: kind, Signature: signature, Update: func(g store.Grant) (store.Grant, error) {
		if !g.Active {
			return g, errLost
		}
		g.Active, g.RotatedAt = false, at
		return g, nil
	}}
}

// tokenRevocation is a RevokeToken feed entry for jti.
func tokenRevocation(jti string, at time.Time) store.Revocation {
	return store.Revocation{
		Kind:      store.RevokeToken,
		Subject:   "alice",
		TokenID:   jti,
		NotBefore: at,
		ExpiresAt: at.Add(5 * time.Minute),
		CreatedAt: at,
	}
}

// batchSeed stores what the batch tests start from: login attempt la-1,
// session sess-1, subject alice, refresh token rt-1 (active) with its
// access-token jti, authorize code code-1, and one feed entry (Seq 1).
func batchSeed(t *testing.T, s store.Store) {
	t.Helper()
	ctx := t.Context()
	must(t, "CreateLoginAttempt(la-1)", s.CreateLoginAttempt(ctx, loginAttempt("la-1", "state-1")))
	must(t, "CreateSession(sess-1)", s.CreateSession(ctx, session("sess-1", "alice", t0())))
	must(t, "CreateSubject(alice)", s.CreateSubject(ctx, subject("alice")))
	must(t, "CreateGrant(rt-1)", s.CreateGrant(ctx, grant(store.GrantRefreshToken, "rt-1", "req-1", "alice", "sess-1")))
	must(t, "CreateGrant(code-1)", s.CreateGrant(ctx, grant(store.GrantAuthorizeCode, "code-1", "req-1", "alice", "sess-1")))
	_, err := s.AppendRevocation(ctx, revocation(store.RevokeSession, "alice", "sess-0", t0()))
	must(t, "AppendRevocation(first)", err)
}

// batchKeys are the records a batch test may touch, present or not.
var (
	batchAttempts = []string{"la-1", "la-2"}
	batchSessions = []string{"sess-1", "sess-2"}
	batchSubjects = []string{"alice", "bob"}
	batchGrants   = []store.GrantKey{
		{Kind: store.GrantRefreshToken, Signature: "rt-1"},
		{Kind: store.GrantRefreshToken, Signature: "rt-2"},
		{Kind: store.GrantAuthorizeCode, Signature: "code-1"},
		{Kind: store.GrantDeniedToken, Signature: "jti-rt-1"},
	}
)

// batchState reads every record of batchKeys (ErrNotFound recorded as
// "missing"), the grants of req-1 through the request index, the sessions
// of alice through the subject index, and the whole feed.
func batchState(t *testing.T, s store.Store) []any {
	t.Helper()
	ctx := t.Context()
	var out []any
	add := func(name string, v any, err error) {
		t.Helper()
		if errors.Is(err, store.ErrNotFound) {
			out = append(out, name+" missing")
			return
		}
		must(t, "read "+name, err)
		out = append(out, v)
	}
	for _, id := range batchAttempts {
		a, err := s.GetLoginAttempt(ctx, id)
		add("login attempt "+id, a, err)
	}
	a, err := s.GetLoginAttemptByState(ctx, "state-1")
	add("login attempt by state-1", a, err)
	for _, id := range batchSessions {
		x, err := s.GetSession(ctx, id)
		add("session "+id, x, err)
	}
	list, err := s.ListSessions(ctx, "alice")
	add("sessions of alice", list, err)
	for _, id := range batchSubjects {
		x, err := s.GetSubject(ctx, id)
		add("subject "+id, x, err)
	}
	for _, k := range batchGrants {
		g, err := s.GetGrant(ctx, k.Kind, k.Signature)
		add(fmt.Sprintf("grant %s/%s", k.Kind, k.Signature), g, err)
	}
	var family []string
	n, err := s.UpdateGrantsByRequest(ctx, "req-1", nil, func(g store.Grant) (store.Grant, error) {
		family = append(family, string(g.Kind)+"/"+g.Signature)
		return g, nil
	})
	slices.Sort(family)
	family = slices.Compact(family) // the updater may run more than once
	add("grants of req-1", fmt.Sprint(n, family), err)
	feed, highest, err := s.ListRevocations(ctx, 0, 0)
	add("feed", fmt.Sprint(feed, highest), err)
	return out
}

// testApply applies one batch with every part and checks the order of the
// parts, the result and every record afterwards.
func testApply(t *testing.T, s store.Store) {
	ctx := t.Context()
	batchSeed(t, s)
	at := t0().Add(time.Hour)

	newRT := grant(store.GrantRefreshToken, "rt-2", "req-1", "alice", "sess-1")
	newRT.RequestedAt = at
	// A later part sees the earlier parts: code-1 is updated (1), deleted
	// (3) and created again (5) within the batch.
	code := grant(store.GrantAuthorizeCode, "code-1", "req-1", "alice", "sess-1")
	code.Data = []byte("re-created")
	createdBob := subject("bob")
	var seenRT store.Grant
	b := store.Batch{
		GrantUpdates: []store.GrantUpdate{
			{Kind: store.GrantRefreshToken, Signature: "rt-1", Update: func(g store.Grant) (store.Grant, error) {
				seenRT = g
				return rotate(g.Kind, g.Signature, at).Update(g)
			}},
			rotate(store.GrantAuthorizeCode, "code-1", at),
		},
		LoginAttemptDeletes: []string{"la-1"},
		GrantDeletes: []store.GrantKey{
			{Kind: store.GrantAuthorizeCode, Signature: "code-1"},
			{Kind: store.GrantAuthorizeCode, Signature: "missing"}, // ignored
		},
		SubjectUpserts: []store.SubjectUpsert{
			{ID: "bob", Create: func() store.Subject { return createdBob }, Update: neverCalled[store.Subject](t, "upsert of new bob")},
			{ID: "alice", Create: func() store.Subject {
				t.Error("upsert of existing alice called create")
				return subject("alice")
			}, Update: func(x store.Subject) (store.Subject, error) {
				x.LastLoginAt = at
				return x, nil
			}},
			// The second upsert of carol updates what the first created.
			{ID: "carol", Create: func() store.Subject { return subject("carol") }, Update: neverCalled[store.Subject](t, "first upsert of carol")},
			{ID: "carol", Create: func() store.Subject {
				t.Error("second upsert of carol called create")
				return subject("carol")
			}, Update: func(x store.Subject) (store.Subject, error) {
				x.Name += " (updated)"
				return x, nil
			}},
		},
		SessionCreates: []store.Session{session("sess-2", "alice", at)},
		GrantCreates:   []store.Grant{newRT, code},
		Revocations:    []store.Revocation{tokenRevocation("jti-a", at), tokenRevocation("jti-b", at)},
	}
	res, err := s.Apply(ctx, b)
	must(t, "Apply(every part)", err)

	// The update saw the stored grant, AccessTokenID included.
	diff(t, "GrantUpdate argument", grant(store.GrantRefreshToken, "rt-1", "req-1", "alice", "sess-1"), seenRT)
	wantAlice := subject("alice")
	wantAlice.LastLoginAt = at
	first, second := tokenRevocation("jti-a", at), tokenRevocation("jti-b", at)
	first.Seq, second.Seq = 2, 3 // the feed continues after the seeded entry
	updatedCarol := subject("carol")
	updatedCarol.Name += " (updated)"
	diff(t, "Apply(every part) result", store.BatchResult{
		Subjects:    []store.Subject{createdBob, wantAlice, subject("carol"), updatedCarol},
		Revocations: []store.Revocation{first, second},
	}, res)

	rotated := grant(store.GrantRefreshToken, "rt-1", "req-1", "alice", "sess-1")
	rotated.Active, rotated.RotatedAt = false, at
	got, err := s.GetGrant(ctx, store.GrantRefreshToken, "rt-1")
	must(t, "GetGrant(rt-1)", err)
	diff(t, "GetGrant(rt-1) after Apply", rotated, got)
	for _, g := range []store.Grant{newRT, code} {
		got, err := s.GetGrant(ctx, g.Kind, g.Signature)
		must(t, "GetGrant("+g.Signature+")", err)
		diff(t, "GetGrant("+g.Signature+") after Apply", g, got)
	}
	n, err := s.UpdateGrantsByRequest(ctx, "req-1", []store.GrantKind{store.GrantRefreshToken}, func(g store.Grant) (store.Grant, error) { return g, nil })
	wantCount(t, "UpdateGrantsByRequest(req-1, refresh tokens) after Apply", n, err, 2)
	_, err = s.GetLoginAttempt(ctx, "la-1")
	wantErr(t, "GetLoginAttempt(la-1) after Apply", err, store.ErrNotFound)
	_, err = s.GetLoginAttemptByState(ctx, "state-1")
	wantErr(t, "GetLoginAttemptByState(state-1) after Apply", err, store.ErrNotFound)
	for _, x := range []store.Subject{createdBob, wantAlice, updatedCarol} {
		got, err := s.GetSubject(ctx, x.ID)
		must(t, "GetSubject("+x.ID+")", err)
		diff(t, "GetSubject("+x.ID+") after Apply", x, got)
	}
	list, err := s.ListSessions(ctx, "alice")
	must(t, "ListSessions(alice)", err)
	diff(t, "ListSessions(alice) after Apply", []store.Session{session("sess-1", "alice", t0()), session("sess-2", "alice", at)}, list)
	feed, _, err := s.ListRevocations(ctx, 1, 0)
	must(t, "ListRevocations(1, 0)", err)
	diff(t, "ListRevocations(1, 0) after Apply", []store.Revocation{first, second}, feed)
	// AppendRevocation continues after the batch's entries.
	r, err := s.AppendRevocation(ctx, revocation(store.RevokeSubject, "bob", "", at))
	must(t, "AppendRevocation after Apply", err)
	if r.Seq != 4 {
		t.Errorf("AppendRevocation after Apply: Seq = %d, want 4", r.Seq)
	}
}

// testApplyAllOrNothing checks that a batch failing in any part stores
// nothing of any part, earlier parts included, and returns the sentinel or
// the updater's error.
func testApplyAllOrNothing(t *testing.T, s store.Store) {
	batchSeed(t, s)
	before := batchState(t, s)
	at := t0().Add(time.Hour)
	errBoom := errors.New("boom")

	// full writes something in every part; each case breaks one part.
	full := func() store.Batch {
		return store.Batch{
			GrantUpdates:        []store.GrantUpdate{rotate(store.GrantRefreshToken, "rt-1", at)},
			LoginAttemptDeletes: []string{"la-1"},
			GrantDeletes:        []store.GrantKey{{Kind: store.GrantAuthorizeCode, Signature: "code-1"}},
			SubjectUpserts: []store.SubjectUpsert{
				{ID: "bob", Create: func() store.Subject { return subject("bob") }},
				{ID: "alice", Create: func() store.Subject { return subject("alice") }, Update: func(x store.Subject) (store.Subject, error) {
					x.Disabled = true
					return x, nil
				}},
			},
			SessionCreates: []store.Session{session("sess-2", "alice", at)},
			GrantCreates: []store.Grant{
				grant(store.GrantRefreshToken, "rt-2", "req-1", "alice", "sess-1"),
				grant(store.GrantDeniedToken, "jti-rt-1", "", "alice", ""),
			},
			Revocations: []store.Revocation{tokenRevocation("jti-rt-1", at)},
		}
	}
	tests := []struct {
		name   string
		mutate func(b *store.Batch)
		want   error
	}{
		{"first GrantUpdate's precondition fails", func(b *store.Batch) {
			b.GrantUpdates[0] = store.GrantUpdate{Kind: store.GrantRefreshToken, Signature: "rt-1",
				Update: func(g store.Grant) (store.Grant, error) { g.Active = false; return g, errLost }}
		}, errLost},
		{"second GrantUpdate's updater fails", func(b *store.Batch) {
			b.GrantUpdates = append(b.GrantUpdates, store.GrantUpdate{Kind: store.GrantAuthorizeCode, Signature: "code-1",
				Update: func(g store.Grant) (store.Grant, error) { g.Active = false; return g, errBoom }})
		}, errBoom},
		{"GrantUpdate of a missing grant", func(b *store.Batch) {
			b.GrantUpdates = append(b.GrantUpdates, store.GrantUpdate{Kind: store.GrantRefreshToken, Signature: "missing",
				Update: neverCalled[store.Grant](t, "update of a missing grant")})
		}, store.ErrNotFound},
		{"LoginAttemptDelete of a missing attempt", func(b *store.Batch) {
			b.LoginAttemptDeletes = append(b.LoginAttemptDeletes, "missing")
		}, store.ErrNotFound},
		{"only a LoginAttemptDelete of a missing attempt", func(b *store.Batch) {
			*b = store.Batch{LoginAttemptDeletes: []string{"missing"}}
		}, store.ErrNotFound},
		{"SubjectUpsert's updater fails", func(b *store.Batch) {
			b.SubjectUpserts[1].Update = func(x store.Subject) (store.Subject, error) { x.Disabled = true; return x, errBoom }
		}, errBoom},
		{"SessionCreate of an existing session", func(b *store.Batch) {
			b.SessionCreates = append(b.SessionCreates, session("sess-1", "alice", at))
		}, store.ErrConflict},
		{"GrantCreate of an existing grant", func(b *store.Batch) {
			b.GrantCreates = append(b.GrantCreates, grant(store.GrantRefreshToken, "rt-1", "req-9", "bob", ""))
		}, store.ErrConflict},
		{"GrantCreates of one key twice", func(b *store.Batch) {
			b.GrantCreates = append(b.GrantCreates, grant(store.GrantRefreshToken, "rt-2", "req-9", "bob", ""))
		}, store.ErrConflict},
		{"only GrantCreates, the second conflicting", func(b *store.Batch) {
			*b = store.Batch{GrantCreates: []store.Grant{
				grant(store.GrantRefreshToken, "rt-2", "req-1", "alice", "sess-1"),
				grant(store.GrantAuthorizeCode, "code-1", "req-1", "alice", "sess-1"),
			}}
		}, store.ErrConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := full()
			tt.mutate(&b)
			res, err := s.Apply(t.Context(), b)
			wantErr(t, "Apply", err, tt.want)
			diff(t, "Apply result", store.BatchResult{}, res, cmpopts.EquateEmpty())
			diff(t, "records after a failed Apply", before, batchState(t, s))
		})
	}
	// The unbroken batch succeeds: each failure above came from the part
	// the case broke.
	_, err := s.Apply(t.Context(), full())
	must(t, "Apply(unbroken batch)", err)
	if after := batchState(t, s); slices.EqualFunc(before, after, func(a, b any) bool { return fmt.Sprint(a) == fmt.Sprint(b) }) {
		t.Error("records after Apply(unbroken batch) are unchanged, want every part written")
	}
}

// testApplyEmpty checks that an empty batch writes nothing and returns a
// zero result, and that a GrantDelete of a missing grant is no error.
func testApplyEmpty(t *testing.T, s store.Store) {
	ctx := t.Context()
	batchSeed(t, s)
	before := batchState(t, s)
	for _, b := range []store.Batch{
		{},
		{GrantUpdates: []store.GrantUpdate{}, Revocations: []store.Revocation{}},
	} {
		res, err := s.Apply(ctx, b)
		must(t, "Apply(empty batch)", err)
		diff(t, "Apply(empty batch)", store.BatchResult{}, res)
	}
	res, err := s.Apply(ctx, store.Batch{GrantDeletes: []store.GrantKey{
		{Kind: store.GrantRefreshToken, Signature: "missing"},
		{Kind: store.GrantDeniedToken, Signature: "rt-1"}, // another kind
	}})
	must(t, "Apply(deletes of missing grants)", err)
	diff(t, "Apply(deletes of missing grants)", store.BatchResult{}, res)
	diff(t, "records after empty batches", before, batchState(t, s))
}

// testApplyNewFields checks that the fields of self-contained access
// tokens round-trip through every path: GrantDeniedToken grants and
// RevokeToken entries written by Apply, AccessTokenID and AccessExpiresAt
// set by a GrantUpdate, all in UTC at µs whatever the zone written.
func testApplyNewFields(t *testing.T, s store.Store) {
	ctx := t.Context()
	zone := time.FixedZone("X", -(3*3600 + 1800))
	local := time.Date(2030, 6, 1, 1, 2, 3, 987654321, zone)
	utc := local.UTC().Truncate(time.Microsecond)
	must(t, "CreateGrant(rt-1)", s.CreateGrant(ctx, grant(store.GrantRefreshToken, "rt-1", "req-1", "alice", "sess-1")))

	denied := grant(store.GrantDeniedToken, "jti-1", "req-1", "alice", "sess-1")
	denied.Data, denied.ExpiresAt = nil, local
	res, err := s.Apply(ctx, store.Batch{
		GrantUpdates: []store.GrantUpdate{{Kind: store.GrantRefreshToken, Signature: "rt-1", Update: func(g store.Grant) (store.Grant, error) {
			g.AccessTokenID, g.AccessExpiresAt = "jti-2", local
			return g, nil
		}}},
		GrantCreates: []store.Grant{denied},
		Revocations:  []store.Revocation{tokenRevocation("jti-1", local)},
	})
	must(t, "Apply", err)
	wantR := tokenRevocation("jti-1", utc)
	wantR.Seq = 1
	diff(t, "Apply result", store.BatchResult{Revocations: []store.Revocation{wantR}}, res)
	checkUTCMicro(t, "Apply result", reflect.ValueOf(res))

	wantRT := grant(store.GrantRefreshToken, "rt-1", "req-1", "alice", "sess-1")
	wantRT.AccessTokenID, wantRT.AccessExpiresAt = "jti-2", utc
	got, err := s.GetGrant(ctx, store.GrantRefreshToken, "rt-1")
	must(t, "GetGrant(rt-1)", err)
	checkUTCMicro(t, "GetGrant(rt-1)", reflect.ValueOf(got))
	diff(t, "GetGrant(rt-1)", wantRT, got)
	wantDenied := denied
	wantDenied.ExpiresAt = utc
	got, err = s.GetGrant(ctx, store.GrantDeniedToken, "jti-1")
	must(t, "GetGrant(denied jti-1)", err)
	checkUTCMicro(t, "GetGrant(denied jti-1)", reflect.ValueOf(got))
	diff(t, "GetGrant(denied jti-1)", wantDenied, got, cmpopts.EquateEmpty())
	wantFeed(t, s, 0, 0, []store.Revocation{wantR}, 1)

	// Deprovision reports the removed grants of both kinds.
	dres, err := s.Deprovision(ctx, deprovisioning("alice", utc))
	must(t, "Deprovision(alice)", err)
	if dres.Grants != 2 {
		t.Errorf("Deprovision(alice).Grants = %d, want 2 (the refresh token and the denied jti)", dres.Grants)
	}
}

// testApplyConcurrent has n goroutines apply, at once, a batch rotating
// the same refresh token (precondition: still active) and creating a
// grant of its own: exactly one wins, and only its grant exists.
func testApplyConcurrent(t *testing.T, s store.Store) {
	const n = 16
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	must(t, "CreateGrant(rt-1)", s.CreateGrant(ctx, grant(store.GrantRefreshToken, "rt-1", "req-1", "alice", "sess-1")))

	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			_, errs[i] = s.Apply(ctx, store.Batch{
				GrantUpdates: []store.GrantUpdate{rotate(store.GrantRefreshToken, "rt-1", t0().Add(time.Duration(i)*time.Second))},
				GrantCreates: []store.Grant{grant(store.GrantRefreshToken, fmt.Sprintf("rt-new-%02d", i), "req-1", "alice", "sess-1")},
				Revocations:  []store.Revocation{tokenRevocation(fmt.Sprintf("jti-%02d", i), t0())},
			})
		})
	}
	close(start)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatalf("%d concurrent Applies did not finish: %v", n, ctx.Err())
	}

	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("Apply %d and Apply %d both succeeded, want exactly one", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, errLost):
			t.Errorf("losing Apply %d = %v, want %v", i, err, errLost)
		}
	}
	if winner < 0 {
		t.Fatalf("no Apply of %d succeeded, want exactly one", n)
	}
	var created []string
	family, err := s.UpdateGrantsByRequest(ctx, "req-1", nil, func(g store.Grant) (store.Grant, error) {
		if strings.HasPrefix(g.Signature, "rt-new-") && !slices.Contains(created, g.Signature) {
			created = append(created, g.Signature)
		}
		return g, nil
	})
	must(t, "UpdateGrantsByRequest(req-1)", err)
	diff(t, "grants created by the concurrent Applies", []string{fmt.Sprintf("rt-new-%02d", winner)}, created)
	if family != 2 {
		t.Errorf("grants of req-1 after concurrent Applies = %d, want 2 (rt-1 and the winner's)", family)
	}
	got, err := s.GetGrant(ctx, store.GrantRefreshToken, "rt-1")
	must(t, "GetGrant(rt-1)", err)
	if got.Active || !got.RotatedAt.Equal(t0().Add(time.Duration(winner)*time.Second)) {
		t.Errorf("GetGrant(rt-1) = Active %v, RotatedAt %v; want false, the winner's %v", got.Active, got.RotatedAt, t0().Add(time.Duration(winner)*time.Second))
	}
	want := tokenRevocation(fmt.Sprintf("jti-%02d", winner), t0())
	want.Seq = 1
	wantFeed(t, s, 0, 0, []store.Revocation{want}, 1)
}
