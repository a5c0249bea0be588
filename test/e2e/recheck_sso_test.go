package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/test/fakeidp"
)

// stopAtUpstream makes c's browser stop at redirects to the upstream's
// sign-in, so a test sees where Keyward sends it.
func stopAtUpstream(c *rp, idp *fakeidp.Server) {
	up, _ := url.Parse(idp.URL())
	next := c.browser.CheckRedirect
	c.browser.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Host == up.Host {
			return http.ErrUseLastResponse
		}
		return next(req, via)
	}
}

// TestRecheckSingleSignOn: the session cookie answering /authorize for
// another application is re-checked like a refresh. A person the upstream
// refused (invalid_grant), or has not vouched for longer than
// recheckMaxAge (Dex's 500 for a deleted person), is not signed into the
// new application: the session ends and the browser goes to a fresh
// upstream sign-in, where the upstream decides.
func TestRecheckSingleSignOn(t *testing.T) {
	tests := []struct {
		name    string
		answer  fakeidp.RefreshAnswer
		advance time.Duration
		why     string
	}{
		{name: "invalid_grant", answer: fakeidp.RefreshInvalidGrant, advance: recheckInterval + time.Second, why: "refused the re-check"},
		{name: "Dex 500 past the maximum age", answer: fakeidp.RefreshDexDeletedUser, advance: recheckMaxAge + time.Second, why: "HTTP 500 invalid_request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := newRecheckEnv(t, nil)
			idp := e.idps[0]
			app := e.client(appID, appSecret, appRedir, nil)
			app.signIn()
			sess := onlySession(t, e)
			app2 := e.client(app2ID, app2Secret, app2Redir, app.browser) // same browser: the session cookie
			stopAtUpstream(app2, idp)

			idp.SetRefreshAnswer(tc.answer)
			e.clock.Advance(tc.advance)
			logins, tokens := idp.Hits("authorize"), idp.Hits("token")
			resp := app2.authorize(newLogin())
			loc := resp.Header.Get("Location")
			if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, idp.URL()) {
				t.Fatalf("single sign-on after the upstream stopped vouching = %d to %q, want 303 to the upstream's sign-in (%s)", resp.StatusCode, loc, idp.URL())
			}
			if n := idp.Hits("token") - tokens; n != 1 {
				t.Errorf("upstream token requests = %d, want 1 (the re-check)", n)
			}
			if n := idp.Hits("authorize") - logins; n != 0 {
				t.Errorf("upstream sign-ins = %d, want 0 (the browser stopped at the redirect)", n)
			}
			if !clearsCookie(resp, "__Host-keyward-session", "keyward-session") {
				t.Errorf("Set-Cookie %q does not clear the session cookie", resp.Header.Values("Set-Cookie"))
			}
			wantEnded(t, e, sess.ID, tc.why)
		})
	}
}

// TestRecheckSingleSignOnPasses: within the interval single sign-on asks
// the upstream nothing; after it, one accepted re-check and the code is
// issued without an upstream sign-in.
func TestRecheckSingleSignOnPasses(t *testing.T) {
	e, _ := newRecheckEnv(t, nil)
	idp := e.idps[0]
	app := e.client(appID, appSecret, appRedir, nil)
	app.signIn()
	sess := onlySession(t, e)
	app2 := e.client(app2ID, app2Secret, app2Redir, app.browser)

	for _, step := range []struct {
		advance time.Duration
		checks  int64
	}{{0, 0}, {recheckInterval + time.Second, 1}} {
		e.clock.Advance(step.advance)
		logins, tokens := idp.Hits("authorize"), idp.Hits("token")
		l := newLogin()
		app2.code(app2.authorize(l), l)
		if n := idp.Hits("token") - tokens; n != step.checks {
			t.Errorf("after %s: upstream token requests = %d, want %d", step.advance, n, step.checks)
		}
		if n := idp.Hits("authorize") - logins; n != 0 {
			t.Errorf("after %s: upstream sign-ins = %d, want 0 (single sign-on)", step.advance, n)
		}
	}
	if after := onlySession(t, e); after.ID != sess.ID || !after.UpstreamCheckedAt.After(sess.UpstreamCheckedAt) {
		t.Errorf("session after single sign-on = %s checked at %v, want %s checked after %v", after.ID, after.UpstreamCheckedAt, sess.ID, sess.UpstreamCheckedAt)
	}
}

// clearsCookie reports whether resp deletes one of the named cookies.
func clearsCookie(resp *http.Response, names ...string) bool {
	for _, c := range resp.Cookies() {
		for _, n := range names {
			if c.Name == n && c.MaxAge < 0 {
				return true
			}
		}
	}
	return false
}
