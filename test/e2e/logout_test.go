package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/store"
)

// appLogout is the app's registered post-logout redirect URI.
const appLogout = "http://127.0.0.1:1/app/signed-out"

// withLogoutURIs registers appLogout for the app client.
func withLogoutURIs(more func(*broker.Config)) func(*broker.Config) {
	return func(c *broker.Config) {
		for i := range c.Clients {
			if c.Clients[i].ID == appID {
				c.Clients[i].PostLogoutRedirectURIs = []string{appLogout}
			}
		}
		if more != nil {
			more(c)
		}
	}
}

// endSession sends the browser to /end_session with q.
func (c *rp) endSession(q url.Values) *http.Response {
	c.t.Helper()
	return c.get(c.e.issuer + "/end_session?" + q.Encode())
}

// sessionCookie reports whether the browser holds Keyward's session cookie.
func (c *rp) sessionCookie() bool {
	u, _ := url.Parse(c.e.issuer)
	for _, ck := range c.browser.Jar.Cookies(u) {
		if strings.HasSuffix(ck.Name, "keyward-session") {
			return true
		}
	}
	return false
}

func idTokenOf(t *testing.T, tok interface{ Extra(string) any }) string {
	t.Helper()
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		t.Fatal("no id_token in the token response")
	}
	return raw
}

func TestRPInitiatedLogout(t *testing.T) {
	e := newEnv(t, envOptions{broker: withLogoutURIs(nil)})
	c := e.client(appID, appSecret, appRedir, nil)

	var doc map[string]any
	resp := c.get(e.issuer + "/.well-known/openid-configuration")
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if got := doc["end_session_endpoint"]; got != e.issuer+"/end_session" {
		t.Errorf("discovery end_session_endpoint = %v, want %s/end_session", got, e.issuer)
	}

	tok, _ := c.signIn()
	hint := idTokenOf(t, tok)
	idt, err := c.verifier.Verify(t.Context(), hint)
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		SID string `json:"sid"`
	}
	if err := idt.Claims(&claims); err != nil || claims.SID == "" {
		t.Fatalf("ID token sid: %q, %v", claims.SID, err)
	}
	authorizeHits := e.idps[0].Hits("authorize")

	// Bad requests are an error page, never a redirect, and end nothing.
	bad := []struct {
		name string
		q    url.Values
	}{
		{"unregistered post_logout_redirect_uri", url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {"http://127.0.0.1:1/evil"}, "state": {"s"}}},
		{"redirect without client", url.Values{"post_logout_redirect_uri": {appLogout}}},
		{"client_id not the hint's audience", url.Values{"id_token_hint": {hint}, "client_id": {app2ID}, "post_logout_redirect_uri": {appLogout}}},
		{"hint with a broken signature", url.Values{"id_token_hint": {hint[:len(hint)-4] + "AAAA"}, "post_logout_redirect_uri": {appLogout}}},
		{"access token as hint", url.Values{"id_token_hint": {tok.AccessToken}, "client_id": {appID}, "post_logout_redirect_uri": {appLogout}}},
	}
	for _, tc := range bad {
		resp := c.endSession(tc.q)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" || !strings.Contains(string(body), "Invalid sign-out request") {
			t.Errorf("%s: %d, Location %q, want the 400 error page; body: %.300s", tc.name, resp.StatusCode, resp.Header.Get("Location"), body)
		}
	}
	if !c.sessionCookie() {
		t.Fatal("a refused sign-out cleared the session cookie")
	}
	status, m := c.refresh(tok.RefreshToken)
	if status != http.StatusOK {
		t.Fatalf("refresh after refused sign-outs = %d %v, want 200", status, m)
	}
	refreshToken, _ := m["refresh_token"].(string)

	// The real thing: 303 to the registered URI with state.
	resp = c.endSession(url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {appLogout}, "state": {"st-123"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != appLogout+"?state=st-123" {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("end_session = %d to %q, want 303 to %s?state=st-123; body: %.300s", resp.StatusCode, resp.Header.Get("Location"), appLogout, body)
	}
	if c.sessionCookie() {
		t.Error("session cookie survived end_session")
	}
	if status, m := c.refresh(refreshToken); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Errorf("refresh after end_session = %d %v, want 400 invalid_grant", status, m)
	}
	audit, err := e.store.ListAudit(t.Context(), 10)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, a := range audit {
		if a.Actor == broker.ActorEndSession && a.Action == broker.ActionRevokeSession && a.Target == claims.SID {
			found = true
		}
	}
	if !found {
		t.Errorf("no audit event by %q for session %s: %+v", broker.ActorEndSession, claims.SID, audit)
	}
	feed, _, err := e.store.ListRevocations(t.Context(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	found = false
	for _, r := range feed {
		if r.Kind == store.RevokeSession && r.SessionID == claims.SID {
			found = true
		}
	}
	if !found {
		t.Errorf("no session feed entry for %s: %+v", claims.SID, feed)
	}

	// The next sign-in goes to the upstream again.
	c.signIn()
	if got := e.idps[0].Hits("authorize"); got <= authorizeHits {
		t.Errorf("upstream authorize hits = %d after end_session, want more than %d", got, authorizeHits)
	}

	// Without a redirect URI: the "Signed out" page, and the cookie goes.
	resp = c.endSession(url.Values{"client_id": {appID}})
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "Signed out") {
		t.Errorf("end_session without redirect = %d, want 200 Signed out; body: %.300s", resp.StatusCode, body)
	}
	if c.sessionCookie() {
		t.Error("session cookie survived end_session without redirect")
	}
	// POST works too, and with nothing to end it still says signed out.
	presp, err := c.browser.PostForm(e.issuer+"/end_session", url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {appLogout}})
	if err != nil {
		t.Fatal(err)
	}
	presp.Body.Close()
	if presp.StatusCode != http.StatusSeeOther || presp.Header.Get("Location") != appLogout {
		t.Errorf("POST end_session = %d to %q, want 303 to %s", presp.StatusCode, presp.Header.Get("Location"), appLogout)
	}
}

// An expired id_token_hint is still a hint (RP-Initiated Logout §2), and
// its sid ends the session even from a browser without Keyward's cookie.
func TestRPInitiatedLogoutExpiredHint(t *testing.T) {
	e := newEnv(t, envOptions{broker: withLogoutURIs(func(c *broker.Config) { c.IDTokenTTL = time.Second })})
	c := e.client(appID, appSecret, appRedir, nil)
	tok, _ := c.signIn()
	hint := idTokenOf(t, tok)
	idt, err := c.verifier.Verify(t.Context(), hint)
	if err != nil {
		t.Fatal(err)
	}
	// Wait until the hint has expired by whole seconds, as JWT validators
	// (fosite's included) compare exp.
	time.Sleep(time.Until(idt.Expiry.Truncate(time.Second).Add(time.Second + 50*time.Millisecond)))
	if _, err := c.verifier.Verify(t.Context(), hint); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("ID token (exp %s) still valid at %s: %v", idt.Expiry, time.Now(), err)
	}

	other := e.client(appID, appSecret, appRedir, nil) // no Keyward cookie
	resp := other.endSession(url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {appLogout}, "state": {"x"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != appLogout+"?state=x" {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("end_session with an expired hint = %d to %q, want 303 to %s?state=x; body: %.300s", resp.StatusCode, resp.Header.Get("Location"), appLogout, body)
	}
	if status, m := c.refresh(tok.RefreshToken); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Errorf("refresh after end_session by sid = %d %v, want 400 invalid_grant", status, m)
	}
	// The first browser's cookie now names an ended session: upstream again.
	hits := e.idps[0].Hits("authorize")
	c.signIn()
	if got := e.idps[0].Hits("authorize"); got <= hits {
		t.Errorf("upstream authorize hits = %d, want more than %d", got, hits)
	}
}
