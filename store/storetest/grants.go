package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/keyward/keyward/store"
)

func testGrants(t *testing.T, s store.Store) {
	ctx := t.Context()
	code := grant(store.GrantAuthorizeCode, "sig-1", "req-1", "alice", "sess-1")
	// The same signature under another kind is another record.
	pkce := grant(store.GrantPKCE, "sig-1", "req-1", "alice", "sess-1")
	must(t, "CreateGrant(code sig-1)", s.CreateGrant(ctx, code))
	must(t, "CreateGrant(pkce sig-1)", s.CreateGrant(ctx, pkce))
	wantErr(t, "CreateGrant(code sig-1 again)", s.CreateGrant(ctx, code), store.ErrConflict)

	for _, want := range []store.Grant{code, pkce} {
		got, err := s.GetGrant(ctx, want.Kind, want.Signature)
		must(t, "GetGrant("+string(want.Kind)+")", err)
		diff(t, "GetGrant("+string(want.Kind)+")", want, got)
	}
	_, err := s.GetGrant(ctx, store.GrantOIDC, "sig-1")
	wantErr(t, "GetGrant(oidc sig-1)", err, store.ErrNotFound)

	want := code
	want.Active, want.RotatedAt = false, t0().Add(time.Minute)
	must(t, "UpdateGrant(code sig-1)", s.UpdateGrant(ctx, store.GrantAuthorizeCode, "sig-1", func(old store.Grant) (store.Grant, error) {
		diff(t, "UpdateGrant(code sig-1) updater argument", code, old)
		old.Active, old.RotatedAt = false, t0().Add(time.Minute)
		return old, nil
	}))
	got, err := s.GetGrant(ctx, store.GrantAuthorizeCode, "sig-1")
	must(t, "GetGrant(code sig-1)", err)
	diff(t, "GetGrant(code sig-1) after update", want, got)
	got, err = s.GetGrant(ctx, store.GrantPKCE, "sig-1")
	must(t, "GetGrant(pkce sig-1)", err)
	diff(t, "GetGrant(pkce sig-1) after code update", pkce, got)

	err = s.UpdateGrant(ctx, store.GrantOIDC, "sig-1", neverCalled[store.Grant](t, "UpdateGrant(oidc sig-1)"))
	wantErr(t, "UpdateGrant(oidc sig-1)", err, store.ErrNotFound)
	wantErr(t, "DeleteGrant(oidc sig-1)", s.DeleteGrant(ctx, store.GrantOIDC, "sig-1"), store.ErrNotFound)

	must(t, "DeleteGrant(code sig-1)", s.DeleteGrant(ctx, store.GrantAuthorizeCode, "sig-1"))
	_, err = s.GetGrant(ctx, store.GrantAuthorizeCode, "sig-1")
	wantErr(t, "GetGrant(code sig-1) after delete", err, store.ErrNotFound)
	wantErr(t, "DeleteGrant(code sig-1 again)", s.DeleteGrant(ctx, store.GrantAuthorizeCode, "sig-1"), store.ErrNotFound)
	if _, err := s.GetGrant(ctx, store.GrantPKCE, "sig-1"); err != nil {
		t.Errorf("GetGrant(pkce sig-1) after code delete = %v, want nil", err)
	}
}

// grantFamily creates one grant of every kind for requestID, issued to
// client-1, and returns them.
func grantFamily(t *testing.T, s store.Store, requestID, subject, sessionID string) []store.Grant {
	t.Helper()
	return clientGrantFamily(t, s, "client-1", requestID, subject, sessionID)
}

// clientGrantFamily is grantFamily for another client.
func clientGrantFamily(t *testing.T, s store.Store, clientID, requestID, subject, sessionID string) []store.Grant {
	t.Helper()
	var gs []store.Grant
	for _, kind := range store.GrantKinds {
		g := grant(kind, requestID+"-"+string(kind), requestID, subject, sessionID)
		g.ClientID = clientID
		must(t, "CreateGrant("+g.Signature+")", s.CreateGrant(t.Context(), g))
		gs = append(gs, g)
	}
	return gs
}

// wantGrants reports whether each grant is stored (as in want) or gone.
func wantGrants(t *testing.T, s store.Store, stage string, want []store.Grant, present bool) {
	t.Helper()
	for _, w := range want {
		got, err := s.GetGrant(t.Context(), w.Kind, w.Signature)
		switch {
		case present && err != nil:
			t.Errorf("GetGrant(%s) %s = %v, want nil", w.Signature, stage, err)
		case present:
			diff(t, "GetGrant("+w.Signature+") "+stage, w, got)
		default:
			wantErr(t, "GetGrant("+w.Signature+") "+stage, err, store.ErrNotFound)
		}
	}
}

func testGrantsByRequest(t *testing.T, s store.Store) {
	ctx := t.Context()
	// GrantKinds order: code, pkce, oidc, access, refresh, jti, session client.
	req1 := grantFamily(t, s, "req-1", "alice", "sess-1")
	req2 := grantFamily(t, s, "req-2", "alice", "sess-1")

	n, err := s.DeleteGrantsByRequest(ctx, "req-1", store.GrantAuthorizeCode, store.GrantPKCE)
	wantCount(t, "DeleteGrantsByRequest(req-1, code, pkce)", n, err, 2)
	wantGrants(t, s, "after deleting code and pkce", req1[:2], false)
	wantGrants(t, s, "after deleting code and pkce", req1[2:], true)

	n, err = s.DeleteGrantsByRequest(ctx, "req-1")
	wantCount(t, "DeleteGrantsByRequest(req-1)", n, err, len(req1)-2)
	wantGrants(t, s, "after deleting req-1", req1, false)
	wantGrants(t, s, "after deleting req-1", req2, true)
	n, err = s.DeleteGrantsByRequest(ctx, "req-1")
	wantCount(t, "DeleteGrantsByRequest(req-1 again)", n, err, 0)
	n, err = s.DeleteGrantsByRequest(ctx, "missing", store.GrantRefreshToken)
	wantCount(t, "DeleteGrantsByRequest(missing, refresh)", n, err, 0)

	// Revoke the refresh token only.
	n, err = s.UpdateGrantsByRequest(ctx, "req-2", []store.GrantKind{store.GrantRefreshToken}, func(g store.Grant) (store.Grant, error) {
		if g.Kind != store.GrantRefreshToken {
			t.Errorf("UpdateGrantsByRequest(req-2, refresh) updater got kind %q", g.Kind)
		}
		g.Active = false
		return g, nil
	})
	wantCount(t, "UpdateGrantsByRequest(req-2, refresh)", n, err, 1)
	req2[4].Active = false
	wantGrants(t, s, "after revoking the refresh token", req2, true)

	// Every kind.
	n, err = s.UpdateGrantsByRequest(ctx, "req-2", nil, func(g store.Grant) (store.Grant, error) {
		g.ClientID = "client-2"
		return g, nil
	})
	wantCount(t, "UpdateGrantsByRequest(req-2)", n, err, len(req2))
	for i := range req2 {
		req2[i].ClientID = "client-2"
	}
	wantGrants(t, s, "after updating every kind", req2, true)

	n, err = s.UpdateGrantsByRequest(ctx, "missing", nil, neverCalled[store.Grant](t, "UpdateGrantsByRequest(missing)"))
	wantCount(t, "UpdateGrantsByRequest(missing)", n, err, 0)
}

func testDeleteGrantsBySubject(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice := append(grantFamily(t, s, "req-1", "alice", "sess-1"), grantFamily(t, s, "req-2", "alice", "sess-2")...)
	bob := grantFamily(t, s, "req-3", "bob", "sess-3")

	n, err := s.DeleteGrantsBySubject(ctx, "alice")
	wantCount(t, "DeleteGrantsBySubject(alice)", n, err, len(alice))
	wantGrants(t, s, "after deleting alice's grants", alice, false)
	wantGrants(t, s, "after deleting alice's grants", bob, true)
	// The request index no longer lists them.
	n, err = s.DeleteGrantsByRequest(ctx, "req-1")
	wantCount(t, "DeleteGrantsByRequest(req-1) after DeleteGrantsBySubject", n, err, 0)
	n, err = s.DeleteGrantsBySubject(ctx, "alice")
	wantCount(t, "DeleteGrantsBySubject(alice again)", n, err, 0)
	n, err = s.DeleteGrantsBySubject(ctx, "nobody")
	wantCount(t, "DeleteGrantsBySubject(nobody)", n, err, 0)
}

func testEndSession(t *testing.T, s store.Store) {
	ctx := t.Context()
	one := grantFamily(t, s, "req-1", "alice", "sess-1") // client-1
	other := clientGrantFamily(t, s, "client-0", "req-3", "alice", "sess-1")
	noClient := grant(store.GrantAssertionJTI, "jti-1", "", "alice", "sess-1")
	noClient.ClientID = ""
	must(t, "CreateGrant(jti-1)", s.CreateGrant(ctx, noClient))
	two := grantFamily(t, s, "req-2", "alice", "sess-2")
	outside := grantFamily(t, s, "req-4", "alice", "") // no session: token exchange
	must(t, "CreateSession(sess-1)", s.CreateSession(ctx, session("sess-1", "alice", t0())))
	must(t, "CreateSession(sess-2)", s.CreateSession(ctx, session("sess-2", "alice", t0())))

	res, err := s.EndSession(ctx, "sess-1", store.Revocation{})
	must(t, "EndSession(sess-1)", err)
	diff(t, "EndSession(sess-1)", store.GrantDeletion{
		Grants:    len(one) + len(other) + 1,
		ClientIDs: []string{"client-0", "client-1"}, // distinct, sorted, no empty id
	}, res)
	wantGrants(t, s, "after deleting sess-1's grants", append(append(one, other...), noClient), false)
	wantGrants(t, s, "after deleting sess-1's grants", append(two, outside...), true)
	if _, err := s.GetSession(ctx, "sess-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetSession(sess-1) after EndSession = %v, want ErrNotFound (deleted with its grants)", err)
	}
	if _, err := s.GetSession(ctx, "sess-2"); err != nil {
		t.Errorf("GetSession(sess-2) after EndSession(sess-1) = %v, want it kept", err)
	}
	n, err := s.DeleteGrantsByRequest(ctx, "req-1")
	wantCount(t, "DeleteGrantsByRequest(req-1) after EndSession", n, err, 0)
	res, err = s.EndSession(ctx, "sess-1", store.Revocation{})
	must(t, "EndSession(sess-1 again)", err)
	diff(t, "EndSession(sess-1 again)", store.GrantDeletion{}, res)

	// An empty session id matches nothing, not the grants issued outside a
	// session; nor does an empty subject match the grants without one.
	res, err = s.EndSession(ctx, "", store.Revocation{Kind: store.RevokeSession, NotBefore: t0()})
	must(t, `EndSession("")`, err)
	diff(t, `EndSession("")`, store.GrantDeletion{}, res)
	jti := grant(store.GrantAssertionJTI, "jti-2", "", "", "")
	must(t, "CreateGrant(jti-2)", s.CreateGrant(ctx, jti))
	n, err = s.DeleteGrantsBySubject(ctx, "")
	wantCount(t, `DeleteGrantsBySubject("")`, n, err, 0)
	wantGrants(t, s, "after deleting by an empty session id and subject", append(append(two, outside...), jti), true)

	// With a feed entry, the entry is appended in the same transaction.
	feed := store.Revocation{Kind: store.RevokeSession, SessionID: "sess-2", NotBefore: t0(), ExpiresAt: t0().Add(time.Hour), CreatedAt: t0()}
	_, before, err := s.ListRevocations(ctx, 0, 0)
	must(t, "ListRevocations before EndSession(sess-2)", err)
	res, err = s.EndSession(ctx, "sess-2", feed)
	must(t, "EndSession(sess-2)", err)
	feed.Seq = before + 1
	diff(t, "EndSession(sess-2)", store.GrantDeletion{Grants: len(two), ClientIDs: []string{"client-1"}, Revocation: feed}, res)
	entries, _, err := s.ListRevocations(ctx, before, 0)
	must(t, "ListRevocations after EndSession(sess-2)", err)
	diff(t, "the feed after EndSession(sess-2)", []store.Revocation{feed}, entries)
	if _, err := s.GetSession(ctx, "sess-2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetSession(sess-2) after EndSession = %v, want ErrNotFound", err)
	}
}

// testGrantIndexes checks that the request and subject indexes follow a
// grant that an update moves, and forget a grant that is deleted.
func testGrantIndexes(t *testing.T, s store.Store) {
	ctx := t.Context()
	g := grant(store.GrantRefreshToken, "sig-1", "req-1", "alice", "sess-1")
	must(t, "CreateGrant(sig-1)", s.CreateGrant(ctx, g))
	must(t, "UpdateGrant(sig-1)", s.UpdateGrant(ctx, g.Kind, g.Signature, func(old store.Grant) (store.Grant, error) {
		old.RequestID, old.Subject, old.SessionID = "req-2", "bob", "sess-2"
		return old, nil
	}))
	noop := func(g store.Grant) (store.Grant, error) { return g, nil }

	n, err := s.UpdateGrantsByRequest(ctx, "req-1", nil, noop)
	wantCount(t, "UpdateGrantsByRequest(old request)", n, err, 0)
	n, err = s.DeleteGrantsByRequest(ctx, "req-1")
	wantCount(t, "DeleteGrantsByRequest(old request)", n, err, 0)
	n, err = s.DeleteGrantsBySubject(ctx, "alice")
	wantCount(t, "DeleteGrantsBySubject(old subject)", n, err, 0)
	n, err = s.UpdateGrantsByRequest(ctx, "req-2", nil, noop)
	wantCount(t, "UpdateGrantsByRequest(new request)", n, err, 1)
	n, err = s.DeleteGrantsBySubject(ctx, "bob")
	wantCount(t, "DeleteGrantsBySubject(new subject)", n, err, 1)
	_, err = s.GetGrant(ctx, g.Kind, g.Signature)
	wantErr(t, "GetGrant(sig-1) after DeleteGrantsBySubject", err, store.ErrNotFound)

	// A deleted grant leaves no index entry behind, even when its key is
	// reused for another request.
	must(t, "CreateGrant(sig-1 in req-3)", s.CreateGrant(ctx, grant(store.GrantRefreshToken, "sig-1", "req-3", "carol", "")))
	must(t, "DeleteGrant(sig-1)", s.DeleteGrant(ctx, store.GrantRefreshToken, "sig-1"))
	n, err = s.UpdateGrantsByRequest(ctx, "req-3", nil, noop)
	wantCount(t, "UpdateGrantsByRequest(req-3) after DeleteGrant", n, err, 0)
	must(t, "CreateGrant(sig-1 in req-4)", s.CreateGrant(ctx, grant(store.GrantRefreshToken, "sig-1", "req-4", "carol", "")))
	n, err = s.DeleteGrantsByRequest(ctx, "req-3")
	wantCount(t, "DeleteGrantsByRequest(req-3) after key reuse", n, err, 0)
	n, err = s.DeleteGrantsBySubject(ctx, "carol")
	wantCount(t, "DeleteGrantsBySubject(carol)", n, err, 1)
}

func testKeySet(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.GetKeySet(ctx)
	wantErr(t, "GetKeySet() before the first update", err, store.ErrNotFound)

	first := keySet(1, "kid-1", "kid-2")
	must(t, "UpdateKeySet(first)", s.UpdateKeySet(ctx, func(old store.KeySet) (store.KeySet, error) {
		diff(t, "UpdateKeySet(first) updater argument", store.KeySet{}, old)
		return first, nil
	}))
	got, err := s.GetKeySet(ctx)
	must(t, "GetKeySet()", err)
	diff(t, "GetKeySet() after the first update", first, got)

	second := keySet(2, "kid-2", "kid-3")
	second.Keys[0].State, second.Keys[0].RetiredAt = store.KeyRetired, t0().Add(time.Hour)
	second.Keys[0].ExpiresAt = t0().Add(2 * time.Hour)
	must(t, "UpdateKeySet(second)", s.UpdateKeySet(ctx, func(old store.KeySet) (store.KeySet, error) {
		diff(t, "UpdateKeySet(second) updater argument", first, old)
		return second, nil
	}))
	got, err = s.GetKeySet(ctx)
	must(t, "GetKeySet()", err)
	diff(t, "GetKeySet() after the second update", second, got)
}
