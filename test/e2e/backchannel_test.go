package e2e

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

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

// TestBackchannelLogoutToClients: ending a Keyward session (admin
// revocation, deprovisioning) sends every client with a back-channel logout
// URI a signed logout token; a failing endpoint is retried, at most three
// times, and a client's 400 is not retried.
func TestBackchannelLogoutToClients(t *testing.T) {
	flaky := newLogoutReceiver(t, http.StatusServiceUnavailable, 2) // fails twice, then 200
	refusing := newLogoutReceiver(t, http.StatusBadRequest, 100)
	e := newEnv(t, envOptions{broker: func(bc *broker.Config) {
		for i := range bc.Clients {
			switch bc.Clients[i].ID {
			case appID:
				bc.Clients[i].BackchannelLogoutURI = flaky.srv.URL + "/logout?tenant=1"
			case app2ID:
				bc.Clients[i].BackchannelLogoutURI = refusing.srv.URL + "/logout"
			}
		}
		bc.BackchannelRetryDelay = 10 * time.Millisecond
	}})
	b := e.b.Broker

	// Admin revocation of alice's session.
	tok, _ := e.client(appID, appSecret, appRedir, nil).signIn()
	sub, sid := idClaims(t, tok.Extra("id_token").(string))
	if _, err := b.RevokeSession(t.Context(), sid, "test", "admin"); err != nil {
		t.Fatalf("RevokeSession: %v", err)
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

	// Deprovisioning ends the subject's sessions: each is announced.
	tok2, _ := e.client(appID, appSecret, appRedir, nil).signIn()
	sub2, sid2 := idClaims(t, tok2.Extra("id_token").(string))
	if sub2 != sub || sid2 == sid {
		t.Fatalf("second sign-in: sub %s sid %s; want sub %s and a new sid", sub2, sid2, sub)
	}
	if _, err := b.Deprovision(t.Context(), sub, "left", "admin"); err != nil {
		t.Fatalf("Deprovision: %v", err)
	}
	b.WaitBackchannelLogout()
	attempts, tokens, _ = flaky.snapshot()
	if attempts != 4 {
		t.Fatalf("flaky client: %d attempts in all, want 4", attempts)
	}
	checkLogoutToken(t, e, tokens[3], appID, sub, sid2)
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
	// Posting the token again is still a success. Keyward keeps no list of
	// jti values: a replay within exp ends the new session too.
	if status, m := post("corp", good); status != http.StatusOK {
		t.Errorf("repeated logout token: %d %v, want 200", status, m)
	}
}
