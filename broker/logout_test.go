package broker

import (
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/keyward/keyward/federation"
	"github.com/keyward/keyward/store"
)

func newTestRPLogout(t *testing.T, ups ...*fakeUpstream) (*rpLogout, *fixture, *notified) {
	t.Helper()
	a, f, n := newTestAdmin(t)
	a.clients = f.clients(t,
		Client{ID: "app", Name: "The App", Secret: "s", RedirectURIs: []string{"https://app.example.com/cb"},
			PostLogoutRedirectURIs: []string{"https://app.example.com/bye", "https://app.example.com/bye?x=1"}},
		Client{ID: "other", Secret: "s", RedirectURIs: []string{"https://other.example.com/cb"}},
	)
	byID := map[string]Upstream{}
	for _, u := range ups {
		byID[u.id] = u
	}
	l := &rpLogout{store: f.st, clients: a.clients, upstreams: byID, keys: f.keys, issuer: testIssuer, sessions: a, log: slog.New(slog.DiscardHandler)}
	return l, f, n
}

// idTokenHint signs an ID token of Keyward's with claims over the defaults.
func idTokenHint(t *testing.T, f *fixture, claims map[string]any, header map[string]any) string {
	t.Helper()
	c := map[string]any{"iss": testIssuer, "aud": "app", "sub": "alice", "exp": f.now.Add(time.Minute).Unix(), "iat": f.now.Unix()}
	for k, v := range claims {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	if header == nil {
		header = map[string]any{"typ": "JWT"}
	}
	raw, err := f.keys.Sign(t.Context(), c, header)
	if err != nil {
		t.Fatalf("sign hint: %v", err)
	}
	return raw
}

func TestEndSessionWithMatchingHintEnds(t *testing.T) {
	l, f, n := newTestRPLogout(t)
	sub := f.subject(t, "corp", "alice", "")
	s := f.session(t, sub, "corp", "app")
	hint := idTokenHint(t, f, map[string]any{"sid": s.ID}, nil)
	out, err := l.EndSession(t.Context(), EndSessionInput{IDTokenHint: hint, PostLogoutRedirectURI: "https://app.example.com/bye?x=1", State: "st", SessionID: s.ID})
	if err != nil {
		t.Fatalf("EndSession: %v", err)
	}
	if !out.Ended || out.Confirm != nil || out.RedirectURL != "https://app.example.com/bye?state=st&x=1" || out.Upstream != nil {
		t.Errorf("EndSession() = %+v, want ended, redirected with state", out)
	}
	if _, err := f.st.GetSession(t.Context(), s.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("session after logout: %v, want ErrNotFound", err)
	}
	if len(n.calls) != 1 {
		t.Errorf("notified %q, want the session's client", n.calls)
	}
	// An expired hint is still a hint (RP-Initiated Logout §2).
	s2 := f.session(t, sub, "corp")
	old := idTokenHint(t, f, map[string]any{"sid": s2.ID, "exp": f.now.Add(-time.Hour).Unix(), "iat": f.now.Add(-2 * time.Hour).Unix()}, nil)
	if out, err := l.EndSession(t.Context(), EndSessionInput{IDTokenHint: old, SessionID: s2.ID}); err != nil || !out.Ended {
		t.Errorf("EndSession(expired hint) = %+v, %v; want ended", out, err)
	}
}

func TestEndSessionAsksToConfirm(t *testing.T) {
	l, f, _ := newTestRPLogout(t)
	sub := f.subject(t, "corp", "alice", "")
	s := f.session(t, sub, "corp")
	in := EndSessionInput{ClientID: "app", PostLogoutRedirectURI: "https://app.example.com/bye", State: "st", SessionID: s.ID}
	out, err := l.EndSession(t.Context(), in)
	if err != nil {
		t.Fatalf("EndSession: %v", err)
	}
	if out.Ended || out.Confirm == nil || out.Confirm.ClientName != "The App" || out.Confirm.State != "st" || out.RedirectURL != "" {
		t.Errorf("EndSession(no hint) = %+v, want a confirmation naming The App and nothing ended", out)
	}
	if _, err := f.st.GetSession(t.Context(), s.ID); err != nil {
		t.Errorf("session before confirmation: %v, want kept", err)
	}
	in.Confirmed = true
	out, err = l.EndSession(t.Context(), in)
	if err != nil || !out.Ended || out.RedirectURL != "https://app.example.com/bye?state=st" {
		t.Errorf("EndSession(confirmed) = %+v, %v; want ended and redirected", out, err)
	}
	// No live session: nothing to end or confirm.
	out, err = l.EndSession(t.Context(), EndSessionInput{SessionID: s.ID})
	if err != nil || out.Ended || out.Confirm != nil {
		t.Errorf("EndSession(ended session) = %+v, %v; want nothing to do", out, err)
	}
}

func TestEndSessionRefusals(t *testing.T) {
	l, f, _ := newTestRPLogout(t)
	good := idTokenHint(t, f, nil, nil)
	for _, tt := range []struct {
		name string
		in   EndSessionInput
		want RefusalKind
	}{
		{"hint of another issuer", EndSessionInput{IDTokenHint: idTokenHint(t, f, map[string]any{"iss": "https://evil.example.com"}, nil)}, RefusedLogoutHint},
		{"access token as hint", EndSessionInput{IDTokenHint: idTokenHint(t, f, nil, map[string]any{"typ": "at+jwt"})}, RefusedLogoutHint},
		{"not a JWT", EndSessionInput{IDTokenHint: "abc.def.ghi"}, RefusedLogoutHint},
		{"hint without a single client", EndSessionInput{IDTokenHint: idTokenHint(t, f, map[string]any{"aud": []string{"app", "other"}}, nil)}, RefusedLogoutHint},
		{"client_id not the hint's", EndSessionInput{IDTokenHint: good, ClientID: "other"}, RefusedLogoutClientMismatch},
		{"unknown client", EndSessionInput{ClientID: "ghost"}, RefusedLogoutUnknownClient},
		{"redirect without client", EndSessionInput{PostLogoutRedirectURI: "https://app.example.com/bye"}, RefusedLogoutNoClient},
		{"redirect of unknown client", EndSessionInput{ClientID: "ghost", PostLogoutRedirectURI: "https://app.example.com/bye"}, RefusedLogoutUnknownClient},
		{"unregistered redirect", EndSessionInput{ClientID: "app", PostLogoutRedirectURI: "https://evil.example.com/"}, RefusedLogoutUnregisteredRedirect},
	} {
		if _, err := l.EndSession(t.Context(), tt.in); !isKind(err, tt.want) {
			t.Errorf("%s: EndSession() = %v, want %s", tt.name, err, tt.want)
		}
	}
	// azp names the client of a hint with several audiences.
	azp := idTokenHint(t, f, map[string]any{"aud": []string{"app", "other"}, "azp": "other"}, nil)
	if _, err := l.EndSession(t.Context(), EndSessionInput{IDTokenHint: azp}); err != nil {
		t.Errorf("EndSession(azp hint) = %v, want accepted", err)
	}
}

func TestEndSessionUpstreamLogout(t *testing.T) {
	up := &fakeUpstream{id: "corp", name: "Corp", upstreamLogout: true, logoutReq: federation.LogoutRequest{URL: "https://idp.example.com/logout", StateSent: true}}
	noURL := &fakeUpstream{id: "nourl", name: "No URL", upstreamLogout: true, logoutReqErr: federation.ErrNoLogoutURL}
	off := &fakeUpstream{id: "off", name: "Off"}
	l, f, _ := newTestRPLogout(t, up, noURL, off)
	sub := f.subject(t, "corp", "alice", "")

	s := f.session(t, sub, "corp")
	out, err := l.EndSession(t.Context(), EndSessionInput{ClientID: "app", PostLogoutRedirectURI: "https://app.example.com/bye", SessionID: s.ID, Confirmed: true})
	if err != nil || out.Upstream == nil || out.Upstream.URL != up.logoutReq.URL || out.Upstream.State == "" || out.Upstream.Next != "https://app.example.com/bye" {
		t.Errorf("EndSession(upstream logout on) = %+v, %v; want a sign-out at corp, then the client", out, err)
	}
	up.logoutReq.StateSent = false
	s = f.session(t, sub, "corp")
	if out, _ := l.EndSession(t.Context(), EndSessionInput{SessionID: s.ID, Confirmed: true}); out.Upstream == nil || out.Upstream.State != "" {
		t.Errorf("EndSession(configured logoutURL) = %+v, want no state kept", out.Upstream)
	}
	for _, id := range []string{"nourl", "off", "gone"} {
		s := f.session(t, sub, id)
		out, err := l.EndSession(t.Context(), EndSessionInput{SessionID: s.ID, Confirmed: true})
		if err != nil || !out.Ended || out.Upstream != nil {
			t.Errorf("EndSession(upstream %s) = %+v, %v; want ended in Keyward only", id, out, err)
		}
	}
}
