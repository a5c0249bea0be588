package storetest

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/keyward/keyward/store"
)

func testLoginAttempts(t *testing.T, s store.Store) {
	ctx := t.Context()
	a, b := loginAttempt("la-1", "state-1"), loginAttempt("la-2", "state-2")
	must(t, "CreateLoginAttempt(la-1)", s.CreateLoginAttempt(ctx, a))
	must(t, "CreateLoginAttempt(la-2)", s.CreateLoginAttempt(ctx, b))

	got, err := s.GetLoginAttempt(ctx, "la-1")
	must(t, "GetLoginAttempt(la-1)", err)
	diff(t, "GetLoginAttempt(la-1)", a, got)
	got, err = s.GetLoginAttemptByState(ctx, "state-2")
	must(t, "GetLoginAttemptByState(state-2)", err)
	diff(t, "GetLoginAttemptByState(state-2)", b, got)

	_, err = s.GetLoginAttempt(ctx, "missing")
	wantErr(t, "GetLoginAttempt(missing)", err, store.ErrNotFound)
	_, err = s.GetLoginAttemptByState(ctx, "missing")
	wantErr(t, "GetLoginAttemptByState(missing)", err, store.ErrNotFound)

	// ID and State are both unique.
	wantErr(t, "CreateLoginAttempt(la-1 again)", s.CreateLoginAttempt(ctx, loginAttempt("la-1", "state-9")), store.ErrConflict)
	wantErr(t, "CreateLoginAttempt(la-3 with state-1)", s.CreateLoginAttempt(ctx, loginAttempt("la-3", "state-1")), store.ErrConflict)
	_, err = s.GetLoginAttemptByState(ctx, "state-9")
	wantErr(t, "GetLoginAttemptByState(state-9) after conflict", err, store.ErrNotFound)
	_, err = s.GetLoginAttempt(ctx, "la-3")
	wantErr(t, "GetLoginAttempt(la-3) after conflict", err, store.ErrNotFound)

	// An update may move State; the index follows.
	want := a
	want.UpstreamID, want.State = "upstream-2", "state-1b"
	must(t, "UpdateLoginAttempt(la-1)", s.UpdateLoginAttempt(ctx, "la-1", func(old store.LoginAttempt) (store.LoginAttempt, error) {
		old.UpstreamID, old.State = "upstream-2", "state-1b"
		return old, nil
	}))
	got, err = s.GetLoginAttemptByState(ctx, "state-1b")
	must(t, "GetLoginAttemptByState(state-1b)", err)
	diff(t, "GetLoginAttemptByState(state-1b)", want, got)
	_, err = s.GetLoginAttemptByState(ctx, "state-1")
	wantErr(t, "GetLoginAttemptByState(state-1) after update", err, store.ErrNotFound)
	must(t, "CreateLoginAttempt(la-3 with freed state-1)", s.CreateLoginAttempt(ctx, loginAttempt("la-3", "state-1")))

	// Moving onto another attempt's State conflicts and changes nothing.
	err = s.UpdateLoginAttempt(ctx, "la-1", func(old store.LoginAttempt) (store.LoginAttempt, error) {
		old.State = "state-2"
		return old, nil
	})
	wantErr(t, "UpdateLoginAttempt(la-1 to state-2)", err, store.ErrConflict)
	got, err = s.GetLoginAttempt(ctx, "la-1")
	must(t, "GetLoginAttempt(la-1)", err)
	diff(t, "GetLoginAttempt(la-1) after conflict", want, got)

	err = s.UpdateLoginAttempt(ctx, "missing", neverCalled[store.LoginAttempt](t, "UpdateLoginAttempt(missing)"))
	wantErr(t, "UpdateLoginAttempt(missing)", err, store.ErrNotFound)

	must(t, "DeleteLoginAttempt(la-1)", s.DeleteLoginAttempt(ctx, "la-1"))
	_, err = s.GetLoginAttempt(ctx, "la-1")
	wantErr(t, "GetLoginAttempt(la-1) after delete", err, store.ErrNotFound)
	_, err = s.GetLoginAttemptByState(ctx, "state-1b")
	wantErr(t, "GetLoginAttemptByState(state-1b) after delete", err, store.ErrNotFound)
	wantErr(t, "DeleteLoginAttempt(la-1 again)", s.DeleteLoginAttempt(ctx, "la-1"), store.ErrNotFound)
	// A deleted attempt frees its State.
	must(t, "CreateLoginAttempt(la-4 with freed state-1b)", s.CreateLoginAttempt(ctx, loginAttempt("la-4", "state-1b")))
	got, err = s.GetLoginAttemptByState(ctx, "state-2")
	must(t, "GetLoginAttemptByState(state-2) after other delete", err)
	diff(t, "GetLoginAttemptByState(state-2)", b, got)
}

func testSessions(t *testing.T, s store.Store) {
	ctx := t.Context()
	sess := session("sess-1", "alice", t0())
	must(t, "CreateSession(sess-1)", s.CreateSession(ctx, sess))
	wantErr(t, "CreateSession(sess-1 again)", s.CreateSession(ctx, session("sess-1", "bob", t0())), store.ErrConflict)

	got, err := s.GetSession(ctx, "sess-1")
	must(t, "GetSession(sess-1)", err)
	diff(t, "GetSession(sess-1)", sess, got)

	want := sess
	want.LastSeenAt = t0().Add(2 * time.Hour)
	want.Identity.Groups = []string{"admins"}
	must(t, "UpdateSession(sess-1)", s.UpdateSession(ctx, "sess-1", func(old store.Session) (store.Session, error) {
		diff(t, "UpdateSession(sess-1) updater argument", sess, old)
		old.LastSeenAt = t0().Add(2 * time.Hour)
		old.Identity.Groups = []string{"admins"}
		return old, nil
	}))
	got, err = s.GetSession(ctx, "sess-1")
	must(t, "GetSession(sess-1)", err)
	diff(t, "GetSession(sess-1) after update", want, got)

	_, err = s.GetSession(ctx, "missing")
	wantErr(t, "GetSession(missing)", err, store.ErrNotFound)
	err = s.UpdateSession(ctx, "missing", neverCalled[store.Session](t, "UpdateSession(missing)"))
	wantErr(t, "UpdateSession(missing)", err, store.ErrNotFound)
	wantErr(t, "DeleteSession(missing)", s.DeleteSession(ctx, "missing"), store.ErrNotFound)

	must(t, "DeleteSession(sess-1)", s.DeleteSession(ctx, "sess-1"))
	_, err = s.GetSession(ctx, "sess-1")
	wantErr(t, "GetSession(sess-1) after delete", err, store.ErrNotFound)
	list, err := s.ListSessions(ctx, "alice")
	must(t, "ListSessions(alice)", err)
	diff(t, "ListSessions(alice) after delete", []store.Session(nil), list, cmpopts.EquateEmpty())
}

func testListSessions(t *testing.T, s store.Store) {
	ctx := t.Context()
	list, err := s.ListSessions(ctx, "")
	must(t, "ListSessions() on an empty store", err)
	diff(t, "ListSessions() on an empty store", []store.Session(nil), list, cmpopts.EquateEmpty())

	byID := map[string]store.Session{}
	for _, sess := range []store.Session{
		session("s-b", "alice", t0().Add(time.Hour)),
		session("s-a", "alice", t0().Add(time.Hour)), // same CreatedAt: ID decides
		session("s-c", "alice", t0()),
		session("s-d", "bob", t0().Add(30*time.Minute)),
		session("s-e", "carol", t0().Add(2*time.Hour)),
	} {
		must(t, "CreateSession("+sess.ID+")", s.CreateSession(ctx, sess))
		byID[sess.ID] = sess
	}
	type listCase struct {
		subject string
		want    []string // IDs, in order
	}
	check := func(stage string, tests []listCase) {
		t.Helper()
		for _, tt := range tests {
			got, err := s.ListSessions(ctx, tt.subject)
			if err != nil {
				t.Errorf("ListSessions(%q) %s = %v", tt.subject, stage, err)
				continue
			}
			var want []store.Session
			for _, id := range tt.want {
				want = append(want, byID[id])
			}
			diff(t, "ListSessions("+tt.subject+") "+stage, want, got, cmpopts.EquateEmpty())
		}
	}
	check("after create", []listCase{
		{"alice", []string{"s-c", "s-a", "s-b"}},
		{"bob", []string{"s-d"}},
		{"", []string{"s-c", "s-d", "s-a", "s-b", "s-e"}},
		{"nobody", nil},
	})

	// Moving a session to another subject moves it between lists.
	must(t, "UpdateSession(s-d)", s.UpdateSession(ctx, "s-d", func(old store.Session) (store.Session, error) {
		old.Subject = "alice"
		return old, nil
	}))
	moved := byID["s-d"]
	moved.Subject = "alice"
	byID["s-d"] = moved
	must(t, "DeleteSession(s-a)", s.DeleteSession(ctx, "s-a"))
	check("after update and delete", []listCase{
		{"alice", []string{"s-c", "s-d", "s-b"}},
		{"bob", nil},
		{"", []string{"s-c", "s-d", "s-b", "s-e"}},
	})
}

func testSubjects(t *testing.T, s store.Store) {
	ctx := t.Context()
	list, err := s.ListSubjects(ctx)
	must(t, "ListSubjects() on an empty store", err)
	diff(t, "ListSubjects() on an empty store", []store.Subject(nil), list, cmpopts.EquateEmpty())

	alice, bob := subject("alice"), subject("bob")
	must(t, "CreateSubject(bob)", s.CreateSubject(ctx, bob))
	must(t, "CreateSubject(alice)", s.CreateSubject(ctx, alice))
	wantErr(t, "CreateSubject(alice again)", s.CreateSubject(ctx, subject("alice")), store.ErrConflict)

	got, err := s.GetSubject(ctx, "alice")
	must(t, "GetSubject(alice)", err)
	diff(t, "GetSubject(alice)", alice, got)
	_, err = s.GetSubject(ctx, "missing")
	wantErr(t, "GetSubject(missing)", err, store.ErrNotFound)

	want := bob
	want.Disabled, want.NotBefore = true, t0().Add(time.Hour)
	must(t, "UpdateSubject(bob)", s.UpdateSubject(ctx, "bob", func(old store.Subject) (store.Subject, error) {
		diff(t, "UpdateSubject(bob) updater argument", bob, old)
		old.Disabled, old.NotBefore = true, t0().Add(time.Hour)
		return old, nil
	}))
	got, err = s.GetSubject(ctx, "bob")
	must(t, "GetSubject(bob)", err)
	diff(t, "GetSubject(bob) after update", want, got)
	err = s.UpdateSubject(ctx, "missing", neverCalled[store.Subject](t, "UpdateSubject(missing)"))
	wantErr(t, "UpdateSubject(missing)", err, store.ErrNotFound)

	// The contract does not order ListSubjects.
	list, err = s.ListSubjects(ctx)
	must(t, "ListSubjects()", err)
	slices.SortFunc(list, func(a, b store.Subject) int { return strings.Compare(a.ID, b.ID) })
	diff(t, "ListSubjects()", []store.Subject{alice, want}, list)
}

func testUpsertSubject(t *testing.T, s store.Store) {
	ctx := t.Context()
	created := subject("alice")
	got, err := s.UpsertSubject(ctx, "alice",
		func() store.Subject { return created },
		neverCalled[store.Subject](t, "UpsertSubject(new alice)"))
	must(t, "UpsertSubject(new alice)", err)
	diff(t, "UpsertSubject(new alice)", created, got)

	want := created
	want.Name, want.LastLoginAt = "Alice Renamed", t0().Add(3*time.Hour)
	got, err = s.UpsertSubject(ctx, "alice",
		func() store.Subject {
			t.Error("UpsertSubject(existing alice) called create")
			return store.Subject{ID: "alice"}
		},
		func(old store.Subject) (store.Subject, error) {
			diff(t, "UpsertSubject(existing alice) updater argument", created, old)
			old.Name, old.LastLoginAt = "Alice Renamed", t0().Add(3*time.Hour)
			return old, nil
		})
	must(t, "UpsertSubject(existing alice)", err)
	diff(t, "UpsertSubject(existing alice)", want, got)
	got, err = s.GetSubject(ctx, "alice")
	must(t, "GetSubject(alice)", err)
	diff(t, "GetSubject(alice) after upsert", want, got)
}
