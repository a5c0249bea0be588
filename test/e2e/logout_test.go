package e2e

import (
	"encoding/json"
	"errors"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
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

	// Without a hint the person confirms first; without a redirect URI
	// it ends on the "Signed out" page, and the cookie goes.
	action, fields := c.wantConfirmation("end_session without a hint", c.endSession(url.Values{"client_id": {appID}}))
	resp, body := c.post(action, fields)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Signed out") {
		t.Errorf("confirmed end_session without redirect = %d, want 200 Signed out; body: %.300s", resp.StatusCode, body)
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

// An expired id_token_hint is still a hint (RP-Initiated Logout §2): when
// its sid names the browser's own session, that session ends without a
// confirmation. From a browser without that cookie it ends nothing.
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
		t.Fatalf("end_session with an expired hint, other browser = %d to %q, want 303 to %s?state=x; body: %.300s", resp.StatusCode, resp.Header.Get("Location"), appLogout, body)
	}
	status, m := c.refresh(tok.RefreshToken)
	if status != http.StatusOK {
		t.Fatalf("refresh after end_session from another browser = %d %v, want 200 (nothing ended)", status, m)
	}
	resp = c.endSession(url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {appLogout}, "state": {"y"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != appLogout+"?state=y" {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("end_session with an expired hint = %d to %q, want 303 to %s?state=y; body: %.300s", resp.StatusCode, resp.Header.Get("Location"), appLogout, body)
	}
	if status, m := c.refresh(m["refresh_token"].(string)); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Errorf("refresh after end_session = %d %v, want 400 invalid_grant", status, m)
	}
	// The first browser's cookie now names an ended session: upstream again.
	hits := e.idps[0].Hits("authorize")
	c.signIn()
	if got := e.idps[0].Hits("authorize"); got <= hits {
		t.Errorf("upstream authorize hits = %d, want more than %d", got, hits)
	}
}

// sidOf returns the sid claim of an ID token c received.
func (c *rp) sidOf(idToken string) string {
	c.t.Helper()
	idt, err := c.verifier.Verify(c.t.Context(), idToken)
	if err != nil {
		c.t.Fatal(err)
	}
	var claims struct {
		SID string `json:"sid"`
	}
	if err := idt.Claims(&claims); err != nil || claims.SID == "" {
		c.t.Fatalf("ID token sid: %q, %v", claims.SID, err)
	}
	return claims.SID
}

// sessionAlive reports whether the Keyward session sid is still stored.
func (e *env) sessionAlive(sid string) bool {
	e.t.Helper()
	_, err := e.store.GetSession(e.t.Context(), sid)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		e.t.Fatal(err)
	}
	return err == nil
}

var (
	confirmFormRE  = regexp.MustCompile(`<form method="post" action="([^"]*)"`)
	hiddenInputRE  = regexp.MustCompile(`<input type="hidden" name="([^"]*)" value="([^"]*)">`)
	confirmPageFor = "Sign out of Keyward?"
)

// confirmation returns the form of Keyward's sign-out confirmation page
// in body: where it posts and its hidden fields; "" when body is no
// confirmation page.
func confirmation(body string) (action string, fields url.Values) {
	m := confirmFormRE.FindStringSubmatch(body)
	if m == nil || !strings.Contains(body, confirmPageFor) {
		return "", nil
	}
	fields = url.Values{}
	for _, in := range hiddenInputRE.FindAllStringSubmatch(body, -1) {
		fields.Add(html.UnescapeString(in[1]), html.UnescapeString(in[2]))
	}
	return html.UnescapeString(m[1]), fields
}

// wantConfirmation fails unless resp is the confirmation page, and
// returns its form.
func (c *rp) wantConfirmation(what string, resp *http.Response) (action string, fields url.Values) {
	c.t.Helper()
	body, _ := io.ReadAll(resp.Body)
	action, fields = confirmation(string(body))
	if resp.StatusCode != http.StatusOK || action == "" || fields.Get("csrf") == "" {
		c.t.Fatalf("%s = %d Location %q, want the confirmation page with a CSRF token; body: %.500s", what, resp.StatusCode, resp.Header.Get("Location"), body)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		c.t.Errorf("%s Cache-Control = %q, want no-store", what, cc)
	}
	return action, fields
}

// post sends form to the broker's path in c's browser, without following
// redirects.
func (c *rp) post(path string, form url.Values) (*http.Response, string) {
	c.t.Helper()
	stepper := &http.Client{Jar: c.browser.Jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := stepper.PostForm(c.e.issuer+path, form)
	if err != nil {
		c.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// A logout ends only the session of the browser's own cookie (OpenID
// RP-Initiated Logout 1.0 §2, §6): someone else's ID token as
// id_token_hint ends nothing, and a request whose hint does not name the
// cookie's session, or that has no hint, asks first with a form whose
// CSRF token is bound to that browser's session.
func TestEndSessionOnlyEndsTheCookieSession(t *testing.T) {
	e := newEnv(t, envOptions{broker: withLogoutURIs(nil)})
	victim := e.client(appID, appSecret, appRedir, nil)
	vtok, _ := victim.signIn()
	vhint := idTokenOf(t, vtok)
	vsid := victim.sidOf(vhint)
	attacker := e.client(appID, appSecret, appRedir, nil)

	// Someone else's hint, no cookie: nothing ends.
	resp := attacker.endSession(url.Values{"id_token_hint": {vhint}, "post_logout_redirect_uri": {appLogout}, "state": {"x"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != appLogout+"?state=x" {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("end_session with another's hint, no cookie = %d to %q, want 303 to %s?state=x; body: %.300s", resp.StatusCode, resp.Header.Get("Location"), appLogout, body)
	}
	if !e.sessionAlive(vsid) {
		t.Fatal("another person's id_token_hint ended the victim's session")
	}

	// A hint naming another session, with the victim's cookie: the
	// confirmation page; nothing ends.
	atok, _ := attacker.signIn()
	ahint := idTokenOf(t, atok)
	asid := attacker.sidOf(ahint)
	victim.wantConfirmation("end_session with another session's hint", victim.endSession(url.Values{"id_token_hint": {ahint}, "post_logout_redirect_uri": {appLogout}}))
	if !e.sessionAlive(vsid) || !e.sessionAlive(asid) {
		t.Fatalf("sessions alive after a hint for another session: victim %v, hint's %v; want both", e.sessionAlive(vsid), e.sessionAlive(asid))
	}
	if !victim.sessionCookie() {
		t.Fatal("the confirmation page cleared the session cookie")
	}

	// No hint: the confirmation page too.
	action, fields := victim.wantConfirmation("end_session without a hint",
		victim.endSession(url.Values{"client_id": {appID}, "post_logout_redirect_uri": {appLogout}, "state": {"st-7"}}))
	if !e.sessionAlive(vsid) {
		t.Fatal("end_session without a hint ended the session before confirmation")
	}
	_, attackerFields := attacker.wantConfirmation("the attacker's own confirmation page", attacker.endSession(url.Values{"client_id": {appID}}))

	// The form without, or with a wrong CSRF token, is refused and ends
	// nothing; a token from another browser's page is a wrong one.
	for _, tc := range []struct {
		name string
		csrf []string
	}{
		{"no CSRF token", nil},
		{"an empty CSRF token", []string{""}},
		{"a forged CSRF token", []string{"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}},
		{"another browser's CSRF token", []string{attackerFields.Get("csrf")}},
	} {
		f := url.Values{}
		for k, v := range fields {
			f[k] = v
		}
		f.Del("csrf")
		if tc.csrf != nil {
			f["csrf"] = tc.csrf
		}
		resp, body := victim.post(action, f)
		if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Location") != "" || pageTitle(body) != "Sign-out not confirmed" {
			t.Errorf("confirmation with %s = %d %q Location %q, want the 403 page; body: %.300s", tc.name, resp.StatusCode, pageTitle(body), resp.Header.Get("Location"), body)
		}
		if !e.sessionAlive(vsid) || !victim.sessionCookie() {
			t.Fatalf("confirmation with %s ended the session (alive %v, cookie %v)", tc.name, e.sessionAlive(vsid), victim.sessionCookie())
		}
	}
	// The form posted from another browser (no cookie) is refused too.
	if resp, body := attacker.post(action, fields); resp.StatusCode != http.StatusForbidden || !e.sessionAlive(vsid) {
		t.Fatalf("the victim's form posted from another browser = %d (alive %v), want 403 and the session alive; body: %.300s", resp.StatusCode, e.sessionAlive(vsid), body)
	}

	// With the right token: the cookie's session, and only it, ends.
	resp, body := victim.post(action, fields)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != appLogout+"?state=st-7" {
		t.Fatalf("confirmed sign-out = %d to %q, want 303 to %s?state=st-7; body: %.300s", resp.StatusCode, resp.Header.Get("Location"), appLogout, body)
	}
	if e.sessionAlive(vsid) || victim.sessionCookie() {
		t.Errorf("after the confirmed sign-out: session alive %v, cookie %v; want neither", e.sessionAlive(vsid), victim.sessionCookie())
	}
	if !e.sessionAlive(asid) {
		t.Error("the confirmed sign-out ended another browser's session")
	}
	if status, m := victim.refresh(vtok.RefreshToken); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Errorf("refresh after the confirmed sign-out = %d %v, want 400 invalid_grant", status, m)
	}
	// The form is spent with the session: posting it again is refused.
	if resp, _ := victim.post(action, fields); resp.StatusCode != http.StatusForbidden {
		t.Errorf("the confirmation posted again = %d, want 403", resp.StatusCode)
	}
}
