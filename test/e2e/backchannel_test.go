package e2e

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/google/go-cmp/cmp"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/federation"
	"github.com/keyward/keyward/test/brokertest"
)

// logoutReceiver is a client's back-channel logout endpoint: it answers
// fail (e.g. 503) to the first failures posts, then 200.
type logoutReceiver struct {
	srv *httptest.Server

	mu       sync.Mutex
	fail     int
	failures int
	attempts int
	tokens   []string // of every attempt
	badForm  []string
}

func newLogoutReceiver(t *testing.T, fail, failures int) *logoutReceiver {
	t.Helper()
	rc := &logoutReceiver{fail: fail, failures: failures}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		rc.attempts++
		ct := r.Header.Get("Content-Type")
		if err := r.ParseForm(); err != nil || r.Method != http.MethodPost || ct != "application/x-www-form-urlencoded" {
			rc.badForm = append(rc.badForm, r.Method+" "+ct)
		}
		rc.tokens = append(rc.tokens, r.PostForm.Get("logout_token"))
		if rc.attempts <= rc.failures {
			w.WriteHeader(rc.fail)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *logoutReceiver) snapshot() (attempts int, tokens, badForm []string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.attempts, append([]string(nil), rc.tokens...), append([]string(nil), rc.badForm...)
}

// checkLogoutToken verifies raw against the broker's /keys and checks the
// claims of OIDC Back-Channel Logout 1.0 §2.4.
func checkLogoutToken(t *testing.T, e *env, raw, aud, sub, sid string) {
	t.Helper()
	payload, err := oidc.NewRemoteKeySet(t.Context(), e.issuer+"/keys").VerifySignature(t.Context(), raw)
	if err != nil {
		t.Fatalf("logout token does not verify against /keys: %v", err)
	}
	hdrRaw, err := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var hdr map[string]any
	if err := json.Unmarshal(hdrRaw, &hdr); err != nil {
		t.Fatal(err)
	}
	if hdr["typ"] != "logout+jwt" {
		t.Errorf("typ = %v, want logout+jwt", hdr["typ"])
	}
	var c map[string]any
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	if c["iss"] != e.issuer || c["aud"] != aud || c["sub"] != sub || c["sid"] != sid {
		t.Errorf("iss, aud, sub, sid = %v %v %v %v, want %v %v %v %v", c["iss"], c["aud"], c["sub"], c["sid"], e.issuer, aud, sub, sid)
	}
	if _, ok := c["nonce"]; ok {
		t.Error("logout token has a nonce")
	}
	if jti, _ := c["jti"].(string); jti == "" {
		t.Error("logout token has no jti")
	}
	iat, _ := c["iat"].(float64)
	exp, _ := c["exp"].(float64)
	if iat == 0 || exp-iat != 120 {
		t.Errorf("iat, exp = %v, %v; want exp = iat + 2m", iat, exp)
	}
	events, _ := c["events"].(map[string]any)
	if ev, ok := events[federation.BackchannelLogoutEvent].(map[string]any); !ok || len(ev) != 0 {
		t.Errorf("events = %v, want {%q: {}}", c["events"], federation.BackchannelLogoutEvent)
	}
}

// idClaims returns the sub and sid of an ID token (signature not checked:
// the broker issued it in this test).
func idClaims(t *testing.T, raw string) (sub, sid string) {
	t.Helper()
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct{ Sub, Sid string }
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	if c.Sub == "" || c.Sid == "" {
		t.Fatalf("id token has no sub or sid: %s", payload)
	}
	return c.Sub, c.Sid
}

// withBackchannelURIs registers back-channel logout URIs for the app and
// app2 clients, with a short retry delay.
func withBackchannelURIs(app, app2 string) func(*broker.Config) {
	return func(bc *broker.Config) {
		for i := range bc.Clients {
			switch bc.Clients[i].ID {
			case appID:
				bc.Clients[i].BackchannelLogoutURI = app
			case app2ID:
				bc.Clients[i].BackchannelLogoutURI = app2
			}
		}
		bc.BackchannelRetryDelay = 10 * time.Millisecond
	}
}

// TestBackchannelLogoutToClients: ending a Keyward session (admin
// revocation, deprovisioning) sends the clients that signed in through it a
// signed logout token; a failing endpoint is retried, at most three times,
// and a client's 400 is not retried.
func TestBackchannelLogoutToClients(t *testing.T) {
	flaky := newLogoutReceiver(t, http.StatusServiceUnavailable, 2) // fails twice, then 200
	refusing := newLogoutReceiver(t, http.StatusBadRequest, 100)
	e := newEnv(t, envOptions{broker: withBackchannelURIs(flaky.srv.URL+"/logout?tenant=1", refusing.srv.URL+"/logout")})
	b := e.b.Broker

	// Admin revocation of alice's session, used by both clients (single
	// sign-on in one browser).
	browser := newBrowser(t)
	tok, _ := e.client(appID, appSecret, appRedir, browser).signIn()
	sub, sid := idClaims(t, tok.Extra("id_token").(string))
	tok2, _ := e.client(app2ID, app2Secret, app2Redir, browser).signIn()
	if sub2, sid2 := idClaims(t, tok2.Extra("id_token").(string)); sub2 != sub || sid2 != sid {
		t.Fatalf("app2 sign-in: sub %s sid %s; want the same session, sub %s sid %s", sub2, sid2, sub, sid)
	}
	rev, err := b.RevokeSession(t.Context(), sid, "test", "admin")
	if err != nil {
		t.Fatalf("RevokeSession: %v", err)
	}
	if want := []string{appID, app2ID}; !slices.Equal(rev.Clients, want) {
		t.Errorf("RevokeSession clients = %v, want %v", rev.Clients, want)
	}
	b.WaitBackchannelLogout()
	attempts, tokens, bad := flaky.snapshot()
	if attempts != 3 || len(bad) != 0 {
		t.Fatalf("flaky client: %d attempts (bad requests %v), want 3", attempts, bad)
	}
	if tokens[0] != tokens[1] || tokens[1] != tokens[2] {
		t.Error("a retry sent another logout token")
	}
	checkLogoutToken(t, e, tokens[2], appID, sub, sid)
	attempts, tokens, _ = refusing.snapshot()
	if attempts != 1 {
		t.Fatalf("refusing client: %d attempts, want 1 (a 400 is not retried)", attempts)
	}
	checkLogoutToken(t, e, tokens[0], app2ID, sub, sid)

	// Deprovisioning ends the subject's sessions: each is announced to the
	// clients used in it, here the app only.
	tok3, _ := e.client(appID, appSecret, appRedir, nil).signIn()
	sub3, sid3 := idClaims(t, tok3.Extra("id_token").(string))
	if sub3 != sub || sid3 == sid {
		t.Fatalf("second sign-in: sub %s sid %s; want sub %s and a new sid", sub3, sid3, sub)
	}
	if _, err := b.Deprovision(t.Context(), sub, "left", "admin"); err != nil {
		t.Fatalf("Deprovision: %v", err)
	}
	b.WaitBackchannelLogout()
	attempts, tokens, _ = flaky.snapshot()
	if attempts != 4 {
		t.Fatalf("flaky client: %d attempts in all, want 4", attempts)
	}
	checkLogoutToken(t, e, tokens[3], appID, sub, sid3)
	if attempts, _, _ := refusing.snapshot(); attempts != 1 {
		t.Errorf("app2, not used in the deprovisioned session: %d attempts in all, want still 1", attempts)
	}
}

// TestBackchannelLogoutOnlySessionClients: two clients have back-channel
// logout URIs, the person signs in to one; however the session ends, that
// client gets exactly one logout token and the other none (it must not
// learn that the person exists). The client is known even after its code
// and tokens have expired and been collected (it asked for no refresh
// token).
func TestBackchannelLogoutOnlySessionClients(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(t *testing.T, e *env, c *rp, sub, sid, idToken string)
	}{
		{"end_session", func(t *testing.T, e *env, c *rp, _, _, idToken string) {
			resp := c.endSession(url.Values{"id_token_hint": {idToken}})
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("end_session = %d, want 200", resp.StatusCode)
			}
		}},
		{"admin revocation", func(t *testing.T, e *env, _ *rp, _, sid, _ string) {
			if _, err := e.b.Broker.RevokeSession(t.Context(), sid, "lost laptop", "admin"); err != nil {
				t.Fatalf("RevokeSession: %v", err)
			}
		}},
		{"deprovisioning", func(t *testing.T, e *env, _ *rp, sub, sid, _ string) {
			res, err := e.b.Broker.Deprovision(t.Context(), sub, "left", "admin")
			if err != nil {
				t.Fatalf("Deprovision: %v", err)
			}
			if d := cmp.Diff(map[string][]string{sid: {appID}}, res.SessionClients); d != "" {
				t.Errorf("Deprovision session clients (-want +got):\n%s", d)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			used := newLogoutReceiver(t, http.StatusOK, 0)
			unused := newLogoutReceiver(t, http.StatusOK, 0)
			e := newEnv(t, envOptions{broker: withBackchannelURIs(used.srv.URL, unused.srv.URL)})
			c := e.client(appID, appSecret, appRedir, nil)
			c.oauth.Scopes = []string{oidc.ScopeOpenID} // no refresh token
			tok, _ := c.signIn()
			idToken := idTokenOf(t, tok)
			sub, sid := idClaims(t, idToken)
			// Past the code's and the access token's expiry, within the
			// session's.
			gc, err := e.store.GarbageCollect(t.Context(), time.Now().Add(time.Hour))
			if err != nil || gc.Grants == 0 {
				t.Fatalf("GarbageCollect = %+v, %v; want the code and access token collected", gc, err)
			}
			tc.end(t, e, c, sub, sid, idToken)
			e.b.Broker.WaitBackchannelLogout()

			attempts, tokens, bad := used.snapshot()
			if attempts != 1 || len(bad) != 0 {
				t.Fatalf("the client signed in to: %d logout posts (bad %v), want 1", attempts, bad)
			}
			checkLogoutToken(t, e, tokens[0], appID, sub, sid)
			if attempts, _, _ := unused.snapshot(); attempts != 0 {
				t.Errorf("the client not signed in to: %d logout posts, want none", attempts)
			}
		})
	}
}

// TestBackchannelLogoutFromUpstream: the upstream's signed logout token for
// alice ends her Keyward sessions (refresh fails, the next sign-in goes to
// the upstream again) and leaves bob's alone; bad tokens are refused with
// 400 and a JSON error.
func TestBackchannelLogoutFromUpstream(t *testing.T) {
	e := newEnv(t, envOptions{})
	idp := e.idps[0]
	idpHost := strings.TrimPrefix(idp.URL(), "http://")

	var mu sync.Mutex
	var visited []string
	browser := newBrowser(t)
	stop := browser.CheckRedirect
	browser.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		mu.Lock()
		visited = append(visited, req.URL.Host)
		mu.Unlock()
		return stop(req, via)
	}
	wentUpstream := func() bool {
		mu.Lock()
		defer mu.Unlock()
		defer func() { visited = nil }()
		for _, h := range visited {
			if h == idpHost {
				return true
			}
		}
		return false
	}
	alice := e.client(appID, appSecret, appRedir, browser)
	aliceTok, _ := alice.signIn()
	if !wentUpstream() {
		t.Fatal("first sign-in did not go to the upstream")
	}
	alice.signIn()
	if wentUpstream() {
		t.Fatal("second sign-in went to the upstream despite the single sign-on session")
	}
	_, bobRefresh := e.signInAs(t, "bob")
	rp := e.client(appID, appSecret, appRedir, nil)

	events := map[string]any{federation.BackchannelLogoutEvent: map[string]any{}}
	logoutClaims := func(extra map[string]any) map[string]any {
		c := map[string]any{"aud": brokertest.UpstreamClientID, "sub": "demo-alice", "jti": randomString(), "events": events}
		for k, v := range extra {
			c[k] = v
		}
		return c
	}
	post := func(upstream, token string) (int, map[string]any) {
		t.Helper()
		status, _, m := call(t, http.MethodPost, e.issuer+"/backchannel_logout/"+upstream, "application/x-www-form-urlencoded",
			url.Values{"logout_token": {token}}.Encode(), nil, "")
		return status, m
	}

	good := idp.MintJWT(logoutClaims(nil))
	for _, tc := range []struct{ name, upstream, token string }{
		{"nonce", "corp", idp.MintJWT(logoutClaims(map[string]any{"nonce": "n"}))},
		{"bad signature", "corp", tamperClaim(t, good, "sub", "demo-alice ")},
		{"wrong aud", "corp", idp.MintJWT(logoutClaims(map[string]any{"aud": "someone-else"}))},
		{"no events", "corp", idp.MintJWT(logoutClaims(map[string]any{"events": nil}))},
		{"other event", "corp", idp.MintJWT(logoutClaims(map[string]any{"events": map[string]any{"urn:x": map[string]any{}}}))},
		{"no iat", "corp", idp.MintJWT(logoutClaims(map[string]any{"iat": nil}))},
		{"expired", "corp", idp.MintJWT(logoutClaims(map[string]any{"exp": time.Now().Add(-time.Minute).Unix()}))},
		{"no sub nor sid", "corp", idp.MintJWT(logoutClaims(map[string]any{"sub": nil}))},
		{"sid only", "corp", idp.MintJWT(logoutClaims(map[string]any{"sub": nil, "sid": "upstream-session"}))},
		{"no jti", "corp", idp.MintJWT(logoutClaims(map[string]any{"jti": nil}))},
		{"unknown upstream", "nope", good},
		{"empty", "corp", ""},
	} {
		status, m := post(tc.upstream, tc.token)
		if status != http.StatusBadRequest || m["error"] != "invalid_request" {
			t.Errorf("%s: %d %v, want 400 invalid_request", tc.name, status, m)
		}
	}
	// Nothing ended so far.
	if status, m := rp.refresh(aliceTok.RefreshToken); status != http.StatusOK {
		t.Fatalf("alice's refresh after refused logout tokens: %d %v", status, m)
	}

	if status, m := post("corp", good); status != http.StatusOK {
		t.Fatalf("logout token: %d %v, want 200", status, m)
	}
	if status, m := rp.refresh(aliceTok.RefreshToken); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Errorf("alice's refresh after the upstream logout: %d %v, want 400 invalid_grant", status, m)
	}
	sessions, err := e.store.ListSessions(t.Context(), broker.SubjectID("corp", "demo-alice"))
	if err != nil || len(sessions) != 0 {
		t.Errorf("alice's sessions after the upstream logout: %d (%v), want none", len(sessions), err)
	}
	if status, m := rp.refresh(bobRefresh); status != http.StatusOK {
		t.Errorf("bob's refresh after alice's upstream logout: %d %v, want 200", status, m)
	}
	alice.signIn()
	if !wentUpstream() {
		t.Error("sign-in after the upstream logout did not go to the upstream")
	}
	aliceTok2, _ := alice.signIn()
	// A replay within exp is refused and ends nothing: the session begun
	// since survives, and no audit event is written.
	audit, err := e.store.ListAudit(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if status, m := post("corp", good); status != http.StatusBadRequest || m["error"] != "invalid_request" {
		t.Errorf("replayed logout token: %d %v, want 400 invalid_request", status, m)
	}
	if status, m := rp.refresh(aliceTok2.RefreshToken); status != http.StatusOK {
		t.Errorf("alice's new refresh token after a replayed logout token: %d %v, want 200", status, m)
	}
	sessions, err = e.store.ListSessions(t.Context(), broker.SubjectID("corp", "demo-alice"))
	if err != nil || len(sessions) != 1 {
		t.Errorf("alice's sessions after a replayed logout token: %d (%v), want 1", len(sessions), err)
	}
	if after, err := e.store.ListAudit(t.Context(), 0); err != nil || len(after) != len(audit) {
		t.Errorf("audit events after a replayed logout token: %d (%v), want still %d", len(after), err, len(audit))
	}
	// Another token (new jti) for the same person works.
	if status, m := post("corp", idp.MintJWT(logoutClaims(nil))); status != http.StatusOK {
		t.Errorf("a second logout token: %d %v, want 200", status, m)
	}
	if status, m := rp.refresh(aliceTok2.RefreshToken); status != http.StatusBadRequest {
		t.Errorf("alice's refresh after the second logout token: %d %v, want 400", status, m)
	}
}
