package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/federation"
	"github.com/keyward/keyward/test/brokertest"
	"github.com/keyward/keyward/test/fakeidp"
	"github.com/keyward/keyward/web"
)

// newUpstreamLogoutEnv is newEnv with one fake IdP behaving per quirks,
// which accepts Keyward's <issuer>/logout/upstream-done as a post-logout
// redirect, the upstream's configuration edited by edit, appLogout
// registered for the app, and the web handler on the test clock. log, when
// non-nil, receives the broker's log as text.
func newUpstreamLogoutEnv(t *testing.T, quirks fakeidp.Quirks, edit func(*federation.Config), log io.Writer) *env {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String()
	idp := fakeidp.NewTest(t, fakeidp.Config{
		Users:     fakeidp.DemoUsers(),
		AutoLogin: "alice",
		Quirks:    quirks,
		Clients: []fakeidp.Client{{
			ID: brokertest.UpstreamClientID, Secret: brokertest.UpstreamSecret,
			RedirectURIs: []string{issuer + "/callback", issuer + broker.UpstreamLogoutPath},
		}},
	})
	e := &env{t: t, clock: &clock{}}
	var logger *slog.Logger
	if log != nil {
		logger = slog.New(slog.NewTextHandler(log, nil))
	}
	e.b = brokertest.New(t, brokertest.Options{
		Logger:   logger,
		Dir:      t.TempDir(),
		NoSync:   true,
		Listener: ln,
		IdPs:     []*fakeidp.Server{idp},
		Clients: []broker.Client{
			{ID: appID, Name: "The App", Secret: appSecret, RedirectURIs: []string{appRedir}, PostLogoutRedirectURIs: []string{appLogout}},
		},
		Now: e.clock.Now,
		Upstream: func(_ int, c *federation.Config) {
			if edit != nil {
				edit(c)
			}
		},
		Web: func(c *web.Config) { c.Now = e.clock.Now },
	})
	e.idps, e.issuer = e.b.IdPs, e.b.Issuer
	e.store, e.keys = e.b.Store, e.b.Keys
	return e
}

// hop is one response on a walk through redirects.
type hop struct {
	url, location, body string
	status              int
}

// walk follows redirects by hand from start in c's browser (its cookies),
// at most max hops, and stops at a response that is no redirect or one to
// the test clients (127.0.0.1:1).
func (c *rp) walk(start string, maxHops int) []hop {
	c.t.Helper()
	stepper := &http.Client{Jar: c.browser.Jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var hops []hop
	u := start
	for range maxHops {
		req, err := http.NewRequestWithContext(c.t.Context(), http.MethodGet, u, nil)
		if err != nil {
			c.t.Fatal(err)
		}
		resp, err := stepper.Do(req)
		if err != nil {
			c.t.Fatalf("GET %s: %v", u, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		h := hop{url: u, status: resp.StatusCode, location: resp.Header.Get("Location"), body: string(body)}
		hops = append(hops, h)
		if h.location == "" {
			return hops
		}
		next, err := resp.Request.URL.Parse(h.location)
		if err != nil {
			c.t.Fatalf("Location %q: %v", h.location, err)
		}
		if next.Host == "127.0.0.1:1" {
			return hops
		}
		u = next.String()
	}
	return hops
}

// walkConfirmed is walk for a sign-out that asks for confirmation: start
// must answer with the confirmation page, whose form is posted as the
// first hop (its url is the form's action); the walk goes on from there.
func (c *rp) walkConfirmed(start string, maxHops int) []hop {
	c.t.Helper()
	first := c.walk(start, 1)[0]
	action, fields := confirmation(first.body)
	if first.status != http.StatusOK || action == "" {
		c.t.Fatalf("GET %s = %d to %q, want the confirmation page; body: %.300s", start, first.status, first.location, first.body)
	}
	resp, body := c.post(action, fields)
	h := hop{url: c.e.issuer + action, status: resp.StatusCode, location: resp.Header.Get("Location"), body: body}
	hops := []hop{h}
	if h.location == "" || maxHops <= 1 {
		return hops
	}
	next, err := resp.Request.URL.Parse(h.location)
	if err != nil {
		c.t.Fatalf("Location %q: %v", h.location, err)
	}
	if next.Host == "127.0.0.1:1" {
		return hops
	}
	return append(hops, c.walk(next.String(), maxHops-1)...)
}

// logoutCookie returns Keyward's logout cookie in the browser, or nil.
func (c *rp) logoutCookie() *http.Cookie {
	u, _ := url.Parse(c.e.issuer)
	for _, ck := range c.browser.Jar.Cookies(u) {
		if strings.HasSuffix(ck.Name, "keyward-logout") {
			return ck
		}
	}
	return nil
}

func splitURL(t *testing.T, raw string) (base string, q url.Values) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("parse %q: %v", raw, err)
	}
	return u.Scheme + "://" + u.Host + u.Path, u.Query()
}

func wantHop(t *testing.T, i int, hops []hop, status int, location string) {
	t.Helper()
	if i >= len(hops) {
		t.Fatalf("walk ended after %d hops, want hop %d (%d to %s): %+v", len(hops), i, status, location, hops)
	}
	if h := hops[i]; h.status != status || h.location != location {
		t.Fatalf("hop %d: GET %s = %d to %q, want %d to %q; body: %.300s", i, h.url, h.status, h.location, status, location, h.body)
	}
}

// (a) With discovery's end_session_endpoint: Keyward → the IdP's /logout
// with client_id, post_logout_redirect_uri and state → Keyward's
// /logout/upstream-done → the client's post_logout_redirect_uri with the
// client's state.
func TestUpstreamLogoutDiscovery(t *testing.T) {
	e := newUpstreamLogoutEnv(t, fakeidp.Quirks{}, func(c *federation.Config) { c.UpstreamLogout = true }, nil)
	idp := e.idps[0]
	done := e.issuer + broker.UpstreamLogoutPath
	c := e.client(appID, appSecret, appRedir, nil)
	tok, _ := c.signIn()

	hops := c.walk(e.issuer+"/end_session?"+url.Values{
		"id_token_hint": {idTokenOf(t, tok)}, "post_logout_redirect_uri": {appLogout}, "state": {"st-123"},
	}.Encode(), 5)
	if len(hops) != 3 {
		t.Fatalf("walk = %d hops, want 3 (Keyward, IdP, Keyward): %+v", len(hops), hops)
	}
	if hops[0].status != http.StatusSeeOther {
		t.Fatalf("end_session = %d, want 303; body: %.300s", hops[0].status, hops[0].body)
	}
	base, q := splitURL(t, hops[0].location)
	state := q.Get("state")
	if base != idp.URL()+"/logout" || len(state) < 20 {
		t.Fatalf("end_session redirects to %q, want %s/logout with a random state", hops[0].location, idp.URL())
	}
	want := url.Values{"client_id": {brokertest.UpstreamClientID}, "post_logout_redirect_uri": {done}, "state": {state}}
	if diff := cmp.Diff(want, q); diff != "" {
		t.Errorf("upstream logout request (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, idp.LastLogoutRequest()); diff != "" {
		t.Errorf("what the IdP received (-want +got):\n%s", diff)
	}
	wantHop(t, 1, hops, http.StatusSeeOther, done+"?state="+url.QueryEscape(state))
	wantHop(t, 2, hops, http.StatusSeeOther, appLogout+"?state=st-123")
	if got := idp.Hits("logout"); got != 1 {
		t.Errorf("IdP logout hits = %d, want 1", got)
	}
	if c.sessionCookie() || c.logoutCookie() != nil {
		t.Errorf("session cookie %v, logout cookie %v after the round trip; want neither", c.sessionCookie(), c.logoutCookie())
	}
	if status, m := c.refresh(tok.RefreshToken); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Errorf("refresh after end_session = %d %v, want 400 invalid_grant", status, m)
	}
	// The return is one use: replaying it finds no cookie.
	if h := c.walk(hops[1].location, 1)[0]; h.status != http.StatusBadRequest || h.location != "" {
		t.Errorf("replayed upstream-done = %d to %q, want the 400 page", h.status, h.location)
	}

	// Without a post_logout_redirect_uri: the round trip ends on Keyward's
	// "Signed out" page.
	c.signIn()
	hops = c.walkConfirmed(e.issuer+"/end_session?client_id="+appID, 5) // no hint: confirmed first
	if len(hops) != 3 || hops[2].status != http.StatusOK || !strings.Contains(hops[2].body, "Signed out") || hops[2].url != done+"?state="+url.QueryEscape(idp.LastLogoutRequest().Get("state")) {
		t.Errorf("end_session without redirect: %+v, want Keyward → IdP → 200 Signed out at %s", hops, done)
	}
}

// (b) Cognito: no end_session_endpoint (or, since 2024, a bare /logout in
// discovery), so a configured logoutURL with {post_logout_redirect_uri}
// is used exactly as written, and Cognito returns without state.
func TestUpstreamLogoutCognito(t *testing.T) {
	for _, tc := range []struct {
		name   string
		quirks fakeidp.Quirks
	}{
		{"no end_session_endpoint", fakeidp.Quirks{NoEndSession: true}},
		{"logoutURL wins over discovery", fakeidp.Quirks{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newUpstreamLogoutEnv(t, tc.quirks, func(c *federation.Config) {
				c.Profile, c.UpstreamLogout = federation.ProfileCognito, true
				c.LogoutURL = c.Issuer + "/logout?client_id=" + c.ClientID + "&logout_uri={post_logout_redirect_uri}"
			}, nil)
			idp := e.idps[0]
			done := e.issuer + broker.UpstreamLogoutPath
			c := e.client(appID, appSecret, appRedir, nil)
			c.signIn()

			hops := c.walkConfirmed(e.issuer+"/end_session?"+url.Values{"client_id": {appID}, "post_logout_redirect_uri": {appLogout}, "state": {"st-9"}}.Encode(), 5)
			wantHop(t, 0, hops, http.StatusSeeOther, idp.URL()+"/logout?client_id="+brokertest.UpstreamClientID+"&logout_uri="+url.QueryEscape(done))
			if diff := cmp.Diff(url.Values{"client_id": {brokertest.UpstreamClientID}, "logout_uri": {done}}, idp.LastLogoutRequest()); diff != "" {
				t.Errorf("what the IdP received (-want +got):\n%s", diff)
			}
			wantHop(t, 1, hops, http.StatusSeeOther, done) // Cognito returns no state
			wantHop(t, 2, hops, http.StatusSeeOther, appLogout+"?state=st-9")
			if c.sessionCookie() || c.logoutCookie() != nil {
				t.Errorf("session cookie %v, logout cookie %v after the round trip; want neither", c.sessionCookie(), c.logoutCookie())
			}
		})
	}
}

// (c) Off by default, and on without any logout URL: end_session answers
// as before and the IdP is never asked.
func TestUpstreamLogoutOff(t *testing.T) {
	const warning = "upstream logout is on but the upstream has no logout URL"
	for _, tc := range []struct {
		name   string
		quirks fakeidp.Quirks
		edit   func(*federation.Config)
		warn   bool
	}{
		{"default", fakeidp.Quirks{}, nil, false},
		{"on but no logout URL", fakeidp.Quirks{NoEndSession: true}, func(c *federation.Config) { c.UpstreamLogout = true }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log lockedBuffer
			e := newUpstreamLogoutEnv(t, tc.quirks, tc.edit, &log)
			c := e.client(appID, appSecret, appRedir, nil)
			tok, _ := c.signIn()
			hops := c.walk(e.issuer+"/end_session?"+url.Values{
				"id_token_hint": {idTokenOf(t, tok)}, "post_logout_redirect_uri": {appLogout}, "state": {"st-1"},
			}.Encode(), 5)
			if len(hops) != 1 {
				t.Fatalf("walk = %+v, want one hop straight to the client", hops)
			}
			wantHop(t, 0, hops, http.StatusSeeOther, appLogout+"?state=st-1")
			if got := e.idps[0].Hits("logout"); got != 0 {
				t.Errorf("IdP logout hits = %d, want 0", got)
			}
			if c.sessionCookie() || c.logoutCookie() != nil {
				t.Errorf("session cookie %v, logout cookie %v; want neither", c.sessionCookie(), c.logoutCookie())
			}
			if got := strings.Contains(log.String(), warning) && strings.Contains(log.String(), "level=WARN"); got != tc.warn {
				t.Errorf("warning %q logged = %v, want %v", warning, got, tc.warn)
			}
		})
	}
}

// lockedBuffer is a log sink safe for concurrent writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// (d) /logout/upstream-done goes nowhere it was not told to by a cookie
// Keyward sealed: a forged, tampered, missing or expired cookie, or a
// returned state that differs, is the error page without a redirect.
func TestUpstreamLogoutDoneRefusesForgery(t *testing.T) {
	e := newUpstreamLogoutEnv(t, fakeidp.Quirks{}, func(c *federation.Config) { c.UpstreamLogout = true }, nil)
	done := e.issuer + broker.UpstreamLogoutPath
	issuerURL, _ := url.Parse(e.issuer)
	const evil = "https://evil.example.com/phish"

	// start signs in and stops at the IdP's logout, cookie set; it returns
	// the state sent upstream.
	start := func(c *rp) string {
		t.Helper()
		c.signIn()
		hops := c.walkConfirmed(e.issuer+"/end_session?"+url.Values{"client_id": {appID}, "post_logout_redirect_uri": {appLogout}, "state": {"s"}}.Encode(), 1)
		if hops[0].status != http.StatusSeeOther || c.logoutCookie() == nil {
			t.Fatalf("end_session = %d to %q, logout cookie %v; want 303 upstream with the cookie", hops[0].status, hops[0].location, c.logoutCookie())
		}
		_, q := splitURL(t, hops[0].location)
		return q.Get("state")
	}
	setCookie := func(c *rp, name, value string) {
		c.browser.Jar.SetCookies(issuerURL, []*http.Cookie{{Name: name, Value: value, Path: "/", Secure: true, HttpOnly: true}})
	}
	payload := func(next string) string {
		raw, _ := json.Marshal(map[string]any{"u": "corp", "n": next, "e": time.Now().Add(time.Hour).Unix()})
		return base64.RawURLEncoding.EncodeToString(raw)
	}

	tests := []struct {
		name string
		run  func(c *rp) string // prepares the browser; returns the URL to visit
	}{
		{"wrong state", func(c *rp) string {
			start(c)
			return done + "?state=forged-state"
		}},
		{"forged cookie", func(c *rp) string {
			start(c)
			ck := c.logoutCookie()
			setCookie(c, ck.Name, payload(evil)+".AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
			return done
		}},
		{"tampered destination, seal kept", func(c *rp) string {
			state := start(c)
			ck := c.logoutCookie()
			seal := ck.Value[strings.LastIndexByte(ck.Value, '.'):]
			setCookie(c, ck.Name, payload(evil)+seal)
			return done + "?state=" + url.QueryEscape(state)
		}},
		{"cookie-less browser", func(*rp) string { return done + "?state=x" }},
		{"expired", func(c *rp) string { // last: it moves the clock
			state := start(c)
			e.clock.Advance(16 * time.Minute)
			return done + "?state=" + url.QueryEscape(state)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := e.client(appID, appSecret, appRedir, nil)
			target := tc.run(c)
			hops := c.walk(target, 1)
			h := hops[0]
			if h.status != http.StatusBadRequest || h.location != "" || !strings.Contains(h.body, "Sign-out could not be finished") || strings.Contains(h.body, "evil.example.com") {
				t.Errorf("GET %s = %d to %q, want the 400 page without a redirect; body: %.300s", target, h.status, h.location, h.body)
			}
			if c.logoutCookie() != nil {
				t.Error("the logout cookie survived a refused return")
			}
		})
	}
}
