package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/test/fakeidp"
)

// stopAtCallback makes browser stop at the upstream's redirect to the
// broker's /callback, so the test holds the callback URL.
func stopAtCallback(e *env, browser *http.Client) *http.Client {
	next := browser.CheckRedirect
	browser.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), e.issuer+"/callback") {
			return http.ErrUseLastResponse
		}
		return next(req, via)
	}
	return browser
}

// callbackURL starts a sign-in in c's browser (which must stop at the
// callback) and returns the upstream's redirect back to the broker.
func (c *rp) callbackURL(l login) string {
	c.t.Helper()
	resp := c.authorize(l)
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, c.e.issuer+"/callback?") {
		c.t.Fatalf("sign-in stopped at %d, Location %q; want the upstream's redirect to /callback", resp.StatusCode, loc)
	}
	return loc
}

// withQuery returns u with its query changed by edit.
func withQuery(t *testing.T, u string, edit func(url.Values)) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	q := p.Query()
	edit(q)
	p.RawQuery = q.Encode()
	return p.String()
}

// checkNoSession asserts that no Keyward session exists: neither a session
// cookie in browser nor a session in the store.
func checkNoSession(t *testing.T, e *env, browser *http.Client) {
	t.Helper()
	u, _ := url.Parse(e.issuer)
	for _, ck := range browser.Jar.Cookies(u) {
		if strings.HasSuffix(ck.Name, "keyward-session") {
			t.Errorf("browser holds session cookie %s, want none", ck.Name)
		}
	}
	sessions, err := e.store.ListSessions(t.Context(), "")
	if err != nil {
		t.Fatalf("ListSessions: %v", err)
	}
	if len(sessions) != 0 {
		t.Errorf("store holds %d sessions, want 0", len(sessions))
	}
}

func TestCallbackStateAndBrowserBinding(t *testing.T) {
	const expired, otherBrowser = "This sign-in has expired", "Sign-in started in another browser"
	tests := []struct {
		name string
		// run returns the callback response to check; it may sign in first.
		run       func(t *testing.T, e *env, c *rp, cb string) *http.Response
		wantTitle string
		// legitAfter: the browser that started the sign-in can still finish it.
		legitAfter bool
	}{
		{name: "unknown state", wantTitle: expired, legitAfter: true, run: func(t *testing.T, e *env, c *rp, cb string) *http.Response {
			return c.get(withQuery(t, cb, func(q url.Values) { q.Set("state", "not-a-state-0123456789") }))
		}},
		{name: "no state", wantTitle: expired, legitAfter: true, run: func(t *testing.T, e *env, c *rp, cb string) *http.Response {
			return c.get(withQuery(t, cb, func(q url.Values) { q.Del("state") }))
		}},
		{name: "replayed state", wantTitle: expired, run: func(t *testing.T, e *env, c *rp, cb string) *http.Response {
			if resp := c.get(cb); resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("first callback = %d, want %d", resp.StatusCode, http.StatusSeeOther)
			}
			return c.get(cb)
		}},
		{name: "another browser", wantTitle: otherBrowser, legitAfter: true, run: func(t *testing.T, e *env, c *rp, cb string) *http.Response {
			return e.client(appID, appSecret, appRedir, nil).get(cb)
		}},
		{name: "no cookies", wantTitle: otherBrowser, legitAfter: true, run: func(t *testing.T, e *env, c *rp, cb string) *http.Response {
			return getNoRedirect(t, cb)
		}},
		{name: "login expired", wantTitle: expired, run: func(t *testing.T, e *env, c *rp, cb string) *http.Response {
			e.clock.Advance(11 * time.Minute) // LoginTTL defaults to 10m
			return c.get(cb)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			c := e.client(appID, appSecret, appRedir, stopAtCallback(e, newBrowser(t)))
			l := newLogin()
			cb := c.callbackURL(l)
			checkErrorPage(t, tt.run(t, e, c, cb), http.StatusBadRequest, tt.wantTitle)
			if tt.legitAfter {
				// A forged or misplaced callback does not burn the attempt.
				c.code(c.get(cb), l)
			}
		})
	}
}

func TestUpstreamFailureCreatesNoSession(t *testing.T) {
	tests := []struct {
		name     string
		breakIdP func(*fakeidp.Server)
	}{
		{name: "wrong nonce", breakIdP: func(s *fakeidp.Server) { s.SetTamper(fakeidp.Tamper{WrongNonce: true}) }},
		{name: "wrong issuer", breakIdP: func(s *fakeidp.Server) { s.SetTamper(fakeidp.Tamper{WrongIssuer: true}) }},
		{name: "wrong audience", breakIdP: func(s *fakeidp.Server) { s.SetTamper(fakeidp.Tamper{WrongAudience: true}) }},
		{name: "expired", breakIdP: func(s *fakeidp.Server) { s.SetTamper(fakeidp.Tamper{Expired: true}) }},
		{name: "bad signature", breakIdP: func(s *fakeidp.Server) { s.SetTamper(fakeidp.Tamper{BadSignature: true}) }},
		{name: "no ID token", breakIdP: func(s *fakeidp.Server) { s.SetTamper(fakeidp.Tamper{OmitIDToken: true}) }},
		{name: "token endpoint 500", breakIdP: func(s *fakeidp.Server) { s.FailToken(http.StatusInternalServerError) }},
		{name: "token endpoint 400", breakIdP: func(s *fakeidp.Server) { s.FailToken(http.StatusBadRequest) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			idp := e.idps[0]
			browser := newBrowser(t)
			c := e.client(appID, appSecret, appRedir, browser)
			tt.breakIdP(idp)
			checkErrorPage(t, c.authorize(newLogin()), http.StatusBadGateway, "Sign-in could not be completed")
			checkNoSession(t, e, browser)

			// Once the upstream is honest again, the same browser signs in
			// at the upstream: nothing was left behind to skip it.
			idp.SetTamper(fakeidp.Tamper{})
			idp.FailToken(0)
			before := idp.Hits("authorize")
			l := newLogin()
			c.code(c.authorize(l), l)
			if got := idp.Hits("authorize"); got != before+1 {
				t.Errorf("upstream authorize hits = %d, want %d (a fresh upstream sign-in)", got, before+1)
			}
		})
	}
}

func TestUpstreamAccessDenied(t *testing.T) {
	e := newEnv(t, envOptions{})
	browser := stopAtCallback(e, newBrowser(t))
	c := e.client(appID, appSecret, appRedir, browser)
	l := newLogin()
	cb := withQuery(t, c.callbackURL(l), func(q url.Values) {
		q.Del("code")
		q.Set("error", "access_denied")
		q.Set("error_description", "the user said no")
	})
	q := clientRedirect(t, c.get(cb), appRedir)
	want := map[string]string{"error": "access_denied", "state": l.state, "iss": e.issuer, "code": ""}
	for k, v := range want {
		if got := q.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if strings.Contains(q.Get("error_description"), "said no") {
		t.Errorf("error_description = %q, want Keyward's own text, not the upstream's", q.Get("error_description"))
	}
	checkNoSession(t, e, browser)
}
