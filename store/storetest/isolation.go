package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/keyward/keyward/store"
)

// testNoAliasing checks that no slice or map is shared between the store and
// its callers, in either direction.
func testNoAliasing(t *testing.T, s store.Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, ctx context.Context)
	}{
		{"LoginAttempt.AuthorizeForm", func(t *testing.T, ctx context.Context) {
			a := loginAttempt("la-1", "state-1")
			must(t, "CreateLoginAttempt(la-1)", s.CreateLoginAttempt(ctx, a))
			a.AuthorizeForm["scope"][0] = "written after create"
			got, err := s.GetLoginAttempt(ctx, "la-1")
			must(t, "GetLoginAttempt(la-1)", err)
			diff(t, "GetLoginAttempt(la-1) after the caller's change", loginAttempt("la-1", "state-1"), got)
			got.AuthorizeForm["scope"][0] = "written after get"
			got.AuthorizeForm.Set("extra", "x")
			got, err = s.GetLoginAttempt(ctx, "la-1")
			must(t, "GetLoginAttempt(la-1)", err)
			diff(t, "GetLoginAttempt(la-1) after changing a read copy", loginAttempt("la-1", "state-1"), got)
		}},
		{"Session.Identity", func(t *testing.T, ctx context.Context) {
			want := session("sess-1", "alice", t0())
			x := session("sess-1", "alice", t0())
			must(t, "CreateSession(sess-1)", s.CreateSession(ctx, x))
			x.Identity.Groups[0], x.Identity.Extra["department"] = "changed", "changed"
			got, err := s.GetSession(ctx, "sess-1")
			must(t, "GetSession(sess-1)", err)
			diff(t, "GetSession(sess-1) after the caller's change", want, got)

			// What an updater returns is not kept either.
			var returned store.Session
			must(t, "UpdateSession(sess-1)", s.UpdateSession(ctx, "sess-1", func(old store.Session) (store.Session, error) {
				returned = old
				return old, nil
			}))
			returned.Identity.Groups[0], returned.Identity.Extra["department"] = "changed", "changed"
			got, err = s.GetSession(ctx, "sess-1")
			must(t, "GetSession(sess-1)", err)
			diff(t, "GetSession(sess-1) after changing the updater's result", want, got)
			got.Identity.Groups[1] = "changed"
			got, err = s.GetSession(ctx, "sess-1")
			must(t, "GetSession(sess-1)", err)
			diff(t, "GetSession(sess-1) after changing a read copy", want, got)
		}},
		{"Grant.Data", func(t *testing.T, ctx context.Context) {
			want := grant(store.GrantAccessToken, "sig-1", "req-1", "alice", "sess-1")
			g := grant(store.GrantAccessToken, "sig-1", "req-1", "alice", "sess-1")
			must(t, "CreateGrant(sig-1)", s.CreateGrant(ctx, g))
			g.Data[0] = 'X'
			got, err := s.GetGrant(ctx, g.Kind, g.Signature)
			must(t, "GetGrant(sig-1)", err)
			diff(t, "GetGrant(sig-1) after the caller's change", want, got)
			got.Data[0] = 'Y'
			got, err = s.GetGrant(ctx, g.Kind, g.Signature)
			must(t, "GetGrant(sig-1)", err)
			diff(t, "GetGrant(sig-1) after changing a read copy", want, got)
		}},
		{"KeySet.Keys", func(t *testing.T, ctx context.Context) {
			want := keySet(1, "kid-1")
			ks := keySet(1, "kid-1")
			must(t, "UpdateKeySet()", s.UpdateKeySet(ctx, func(store.KeySet) (store.KeySet, error) { return ks, nil }))
			ks.Keys[0].ID, ks.Keys[0].PrivateKey[0] = "changed", 0xff
			got, err := s.GetKeySet(ctx)
			must(t, "GetKeySet()", err)
			diff(t, "GetKeySet() after changing the updater's result", want, got)
			got.Keys[0].PublicKey[0] = 0xff
			got, err = s.GetKeySet(ctx)
			must(t, "GetKeySet()", err)
			diff(t, "GetKeySet() after changing a read copy", want, got)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, t.Context()) })
	}
}

// testContextCancelled calls every method with a cancelled context: each
// returns context.Canceled, calls no updater and changes nothing.
func testContextCancelled(t *testing.T, s store.Store) {
	seed(t, s)
	expired := grant(store.GrantAccessToken, "sig-expired", "req-2", "bob", "")
	expired.ExpiresAt = t0().Add(-time.Hour)
	must(t, "CreateGrant(sig-expired)", s.CreateGrant(t.Context(), expired))
	before := snapshot(t, s)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	la := neverCalled[store.LoginAttempt](t, "cancelled update")
	sess := neverCalled[store.Session](t, "cancelled update")
	sub := neverCalled[store.Subject](t, "cancelled update")
	g := neverCalled[store.Grant](t, "cancelled update")
	ks := neverCalled[store.KeySet](t, "cancelled update")
	ignore := func(_ any, err error) error { return err }
	tests := []struct {
		name string
		call func() error
	}{
		{"CreateLoginAttempt", func() error { return s.CreateLoginAttempt(ctx, loginAttempt("la-2", "state-2")) }},
		{"GetLoginAttempt", func() error { return ignore(s.GetLoginAttempt(ctx, "la-1")) }},
		{"GetLoginAttemptByState", func() error { return ignore(s.GetLoginAttemptByState(ctx, "state-1")) }},
		{"UpdateLoginAttempt", func() error { return s.UpdateLoginAttempt(ctx, "la-1", la) }},
		{"DeleteLoginAttempt", func() error { return s.DeleteLoginAttempt(ctx, "la-1") }},
		{"CreateSession", func() error { return s.CreateSession(ctx, session("sess-2", "alice", t0())) }},
		{"GetSession", func() error { return ignore(s.GetSession(ctx, "sess-1")) }},
		{"UpdateSession", func() error { return s.UpdateSession(ctx, "sess-1", sess) }},
		{"DeleteSession", func() error { return s.DeleteSession(ctx, "sess-1") }},
		{"ListSessions", func() error { return ignore(s.ListSessions(ctx, "alice")) }},
		{"CreateSubject", func() error { return s.CreateSubject(ctx, subject("bob")) }},
		{"GetSubject", func() error { return ignore(s.GetSubject(ctx, "alice")) }},
		{"UpdateSubject", func() error { return s.UpdateSubject(ctx, "alice", sub) }},
		{"UpsertSubject", func() error {
			return ignore(s.UpsertSubject(ctx, "carol", func() store.Subject {
				t.Error("cancelled UpsertSubject called create")
				return subject("carol")
			}, sub))
		}},
		{"ListSubjects", func() error { return ignore(s.ListSubjects(ctx)) }},
		{"CreateGrant", func() error {
			return s.CreateGrant(ctx, grant(store.GrantAccessToken, "sig-3", "req-1", "alice", "sess-1"))
		}},
		{"GetGrant", func() error { return ignore(s.GetGrant(ctx, store.GrantAccessToken, "sig-1")) }},
		{"UpdateGrant", func() error { return s.UpdateGrant(ctx, store.GrantAccessToken, "sig-1", g) }},
		{"DeleteGrant", func() error { return s.DeleteGrant(ctx, store.GrantAccessToken, "sig-1") }},
		{"DeleteGrantsByRequest", func() error { return ignore(s.DeleteGrantsByRequest(ctx, "req-1")) }},
		{"UpdateGrantsByRequest", func() error { return ignore(s.UpdateGrantsByRequest(ctx, "req-1", nil, g)) }},
		{"DeleteGrantsBySubject", func() error { return ignore(s.DeleteGrantsBySubject(ctx, "alice")) }},
		{"GetKeySet", func() error { return ignore(s.GetKeySet(ctx)) }},
		{"UpdateKeySet", func() error { return s.UpdateKeySet(ctx, ks) }},
		{"GarbageCollect", func() error { return ignore(s.GarbageCollect(ctx, t0())) }},
		{"Deprovision", func() error { return ignore(s.Deprovision(ctx, deprovisioning("alice", t0()))) }},
		{"AppendRevocation", func() error {
			return ignore(s.AppendRevocation(ctx, revocation(store.RevokeSubject, "alice", "", t0())))
		}},
		{"ListRevocations", func() error { _, _, err := s.ListRevocations(ctx, 0, 0); return err }},
		{"AppendAudit", func() error { return ignore(s.AppendAudit(ctx, auditEvent("deprovision", "alice", t0()))) }},
		{"ListAudit", func() error { return ignore(s.ListAudit(ctx, 10)) }},
		{"Apply", func() error {
			return ignore(s.Apply(ctx, store.Batch{
				GrantUpdates:   []store.GrantUpdate{{Kind: store.GrantAccessToken, Signature: "sig-1", Update: g}},
				SubjectUpserts: []store.SubjectUpsert{{ID: "carol", Create: func() store.Subject { return subject("carol") }, Update: sub}},
				SessionCreates: []store.Session{session("sess-2", "alice", t0())},
				GrantCreates:   []store.Grant{grant(store.GrantAccessToken, "sig-3", "req-1", "alice", "sess-1")},
				Revocations:    []store.Revocation{revocation(store.RevokeSubject, "alice", "", t0())},
			}))
		}},
		{"Apply(empty batch)", func() error { return ignore(s.Apply(ctx, store.Batch{})) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErr(t, tt.name+" with a cancelled context", tt.call(), context.Canceled)
		})
	}

	diff(t, "records after cancelled calls", before, snapshot(t, s))
	live := t.Context()
	absent := []struct {
		name string
		err  error
	}{
		{"GetLoginAttempt(la-2)", ignore(s.GetLoginAttempt(live, "la-2"))},
		{"GetSession(sess-2)", ignore(s.GetSession(live, "sess-2"))},
		{"GetSubject(bob)", ignore(s.GetSubject(live, "bob"))},
		{"GetSubject(carol)", ignore(s.GetSubject(live, "carol"))},
		{"GetGrant(sig-3)", ignore(s.GetGrant(live, store.GrantAccessToken, "sig-3"))},
	}
	for _, a := range absent {
		wantErr(t, a.name+" after a cancelled create", a.err, store.ErrNotFound)
	}
	wantFeed(t, s, 0, 0, nil, 0)
	wantAudit(t, s, 10, nil)
	if _, err := s.GetGrant(live, expired.Kind, expired.Signature); err != nil {
		t.Errorf("GetGrant(sig-expired) after a cancelled GarbageCollect = %v, want nil", err)
	}
}

// testClose checks that calls after Close fail.
func testClose(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, "CreateSession(sess-1)", s.CreateSession(ctx, session("sess-1", "alice", t0())))
	must(t, "Close()", s.Close())
	if _, err := s.GetSession(ctx, "sess-1"); err == nil {
		t.Error("GetSession(sess-1) after Close = nil, want an error")
	}
	err := s.CreateSession(ctx, session("sess-2", "alice", t0()))
	if err == nil {
		t.Error("CreateSession(sess-2) after Close = nil, want an error")
	}
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		t.Errorf("CreateSession(sess-2) after Close = %v, want an error that is no store sentinel", err)
	}
}
