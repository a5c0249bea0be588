package verify

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestDecideSession(t *testing.T) {
	tests := []struct {
		name                              string
		valid, due, renewable, navigation bool
		want                              sessionAction
	}{
		{"fresh page", true, false, true, true, sessionPass},
		{"fresh fetch", true, false, true, false, sessionPass},
		{"fresh, no refresh token", true, false, false, true, sessionPass},
		{"due page", true, true, true, true, sessionRenew},
		{"due fetch keeps the valid token", true, true, true, false, sessionPass},
		{"due page, no refresh token, until expiry", true, true, false, true, sessionPass},
		{"due fetch, no refresh token", true, true, false, false, sessionPass},
		{"expired page", false, true, true, true, sessionRenew},
		{"expired fetch: 401, the session kept", false, true, true, false, sessionRenew},
		{"expired page, no refresh token", false, true, false, true, sessionEnd},
		{"expired fetch, no refresh token", false, true, false, false, sessionEnd},
	}
	for _, tt := range tests {
		if got := decideSession(tt.valid, tt.due, tt.renewable, tt.navigation); got != tt.want {
			t.Errorf("%s: decideSession(%v, %v, %v, %v) = %d, want %d", tt.name, tt.valid, tt.due, tt.renewable, tt.navigation, got, tt.want)
		}
	}
}

func TestIsNavigation(t *testing.T) {
	tests := []struct {
		method string
		hdr    http.Header
		want   bool
	}{
		{"GET", http.Header{"Sec-Fetch-Mode": {"navigate"}, "Accept": {"text/html"}}, true},
		{"GET", http.Header{"Sec-Fetch-Mode": {"navigate"}}, true},
		{"GET", http.Header{"Accept": {"text/html,application/xhtml+xml"}}, true}, // no Sec-Fetch-*: Accept decides
		{"GET", http.Header{"Sec-Fetch-Mode": {"cors"}, "Accept": {"text/html"}}, false},
		{"GET", http.Header{"Sec-Fetch-Mode": {"no-cors"}}, false},
		{"GET", http.Header{"Accept": {"application/json"}}, false},
		{"GET", nil, false},
		{"POST", http.Header{"Sec-Fetch-Mode": {"navigate"}, "Accept": {"text/html"}}, false}, // a redirect would lose the form
		{"HEAD", http.Header{"Accept": {"text/html"}}, false},
	}
	for _, tt := range tests {
		if got := isNavigation(tt.method, tt.hdr); got != tt.want {
			t.Errorf("isNavigation(%s, %v) = %v, want %v", tt.method, tt.hdr, got, tt.want)
		}
	}
}

func TestRenewWindow(t *testing.T) {
	be := newBrowserEnv(t, nil)
	exp := be.e.clock.Now().Add(time.Hour)
	for _, tt := range []struct {
		lifetime time.Duration // 0: no iat
		want     time.Duration
	}{
		{0, 30 * time.Second},
		{5 * time.Minute, 30 * time.Second},
		{20 * time.Second, 10 * time.Second},
		{-time.Second, -time.Second / 2}, // iat after exp: due only once expired
	} {
		c := &Claims{ExpiresAt: exp}
		if tt.lifetime != 0 {
			c.IssuedAt = exp.Add(-tt.lifetime)
		}
		if got := be.b.renewWindow(c); got != tt.want {
			t.Errorf("renewWindow(lifetime %v) = %v, want %v", tt.lifetime, got, tt.want)
		}
	}
}

// pageCheck is nginx's check of a browser loading uri.
func pageCheck(uri string) http.Header {
	h := nginxCheck(uri)
	h.Set("Accept", "text/html,application/xhtml+xml")
	h.Set("Sec-Fetch-Mode", "navigate")
	return h
}

// fetchCheck is nginx's check of a script's fetch of uri.
func fetchCheck(uri string) http.Header {
	h := nginxCheck(uri)
	h.Set("Accept", "application/json")
	h.Set("Sec-Fetch-Mode", "cors")
	return h
}

// TestBrowserRenewal: the check never renews nor sets a cookie; a page due
// for renewal is sent to /oauth2/start, which renews the session once (for
// any number of parallel requests), sets it on its own answer and redirects
// back to rd.
func TestBrowserRenewal(t *testing.T) {
	be := newBrowserEnv(t, nil)
	h := be.handler(HeadersNginx)
	be.signIn(t, h, "/", nil)
	old := maps(be.jar)

	noCookie := func(what string, rec *httptest.ResponseRecorder) {
		t.Helper()
		if c := rec.Header().Values("Set-Cookie"); len(c) > 0 {
			t.Errorf("%s set %d cookies, want none", what, len(c))
		}
	}
	// Far from expiry: pages and fetches pass.
	for _, hdr := range []http.Header{pageCheck("/"), fetchCheck("/")} {
		rec := be.do(t, h, "/oauth2/auth", hdr)
		if rec.Code != http.StatusOK {
			t.Errorf("check far from expiry = %d, want 200", rec.Code)
		}
		noCookie("a check far from expiry", rec)
	}

	// Within RefreshBefore (30s) of expiry.
	be.e.clock.Advance(4*time.Minute + 45*time.Second)
	rec := be.do(t, h, "/oauth2/auth", fetchCheck("/"))
	if rec.Code != http.StatusOK {
		t.Errorf("fetch check due for renewal = %d, want 200 (the token is still valid)", rec.Code)
	}
	noCookie("a fetch check due for renewal", rec)
	post := pageCheck("/")
	post.Set("X-Original-Method", http.MethodPost)
	if rec := be.do(t, h, "/oauth2/auth", post); rec.Code != http.StatusOK {
		t.Errorf("form POST check due for renewal = %d, want 200 (a redirect would lose the form)", rec.Code)
	}
	rec = be.do(t, h, "/oauth2/auth", pageCheck("/"))
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("page check due for renewal (nginx) = %d, want 401 (error_page sends it to /oauth2/start)", rec.Code)
	}
	noCookie("a page check due for renewal", rec)
	fwd := http.Header{"X-Forwarded-Uri": {"/cart?x=1"}, "X-Forwarded-Host": {browserHost}, "Accept": {"text/html"}, "Sec-Fetch-Mode": {"navigate"}}
	rec = be.do(t, be.handler(HeadersForwarded), "/oauth2/auth", fwd)
	if want := "/oauth2/start?rd=" + url.QueryEscape("/cart?x=1"); rec.Code != http.StatusFound || rec.Header().Get("Location") != want {
		t.Errorf("page check due for renewal (Caddy) = %d to %q, want 302 to %q", rec.Code, rec.Header().Get("Location"), want)
	}
	if n := be.op.refreshes.Load(); n != 0 {
		t.Fatalf("refresh grants after the checks = %d, want 0: checks never renew", n)
	}

	// HEAD does not renew: it starts a sign-in, as before.
	rec = be.doMethod(t, h, http.MethodHead, "/oauth2/start?rd=/cart", nil)
	if loc := rec.Header().Get("Location"); rec.Code != http.StatusFound || !strings.HasPrefix(loc, "https://sso.example.com/authorize?") {
		t.Errorf("HEAD /oauth2/start = %d to %q, want a sign-in", rec.Code, loc)
	}

	// Parallel renewals (tabs, or nginx's error_page for several requests)
	// share one refresh; each answer carries the whole renewed session and
	// goes back to rd.
	var wg sync.WaitGroup
	type result struct {
		code int
		loc  string
		jar  map[string]string
	}
	results := make([]result, 8)
	for i := range results {
		wg.Go(func() {
			local := &browserEnv{e: be.e, op: be.op, b: be.b, jar: maps(old)}
			rec := local.do(t, h, "/oauth2/start?rd=/cart%3Fx%3D1", nil)
			results[i] = result{rec.Code, rec.Header().Get("Location"), local.jar}
		})
	}
	wg.Wait()
	if n := be.op.refreshes.Load(); n != 1 {
		t.Errorf("refresh grants = %d, want 1 shared by 8 renewals", n)
	}
	for i, r := range results {
		if r.code != http.StatusFound || r.loc != "/cart?x=1" || r.jar[sessionCookie] == old[sessionCookie] {
			t.Errorf("renewal %d: %d to %q, cookie renewed %v; want 302 to /cart?x=1 and a new cookie", i, r.code, r.loc, r.jar[sessionCookie] != old[sessionCookie])
		}
	}
	be.jar = results[0].jar

	// The renewed session: pages pass, and /oauth2/start signs in again
	// rather than renewing a fresh session.
	if rec := be.do(t, h, "/oauth2/auth", pageCheck("/")); rec.Code != http.StatusOK {
		t.Errorf("page check after renewal = %d, want 200", rec.Code)
	}
	rec = be.do(t, h, "/oauth2/start?rd=/", nil)
	if loc := rec.Header().Get("Location"); !strings.HasPrefix(loc, "https://sso.example.com/authorize?") || be.op.refreshes.Load() != 1 {
		t.Errorf("/oauth2/start with a fresh session went to %q after %d refreshes, want a sign-in and no refresh", loc, be.op.refreshes.Load())
	}
	for name := range be.jar {
		if strings.HasPrefix(name, loginCookiePrefix) {
			delete(be.jar, name)
		}
	}

	// Expired (past the leeway): a fetch gets 401 and the session stays
	// for the next page to renew.
	be.e.clock.Advance(6 * time.Minute)
	rec = be.do(t, h, "/oauth2/auth", fetchCheck("/"))
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("fetch check after expiry = %d, want 401", rec.Code)
	}
	noCookie("a fetch check after expiry", rec)
	rec = be.do(t, h, "/oauth2/start?rd="+url.QueryEscape("https://evil.com/"), nil)
	if rec.Code != http.StatusFound || rec.Header().Get("Location") != "/" || be.op.refreshes.Load() != 2 {
		t.Errorf("renewal after expiry to evil.com: %d to %q after %d refreshes, want 302 to / after 2", rec.Code, rec.Header().Get("Location"), be.op.refreshes.Load())
	}

	// A refused refresh ends the session and signs in again.
	be.op.setFailRefresh(true)
	be.e.clock.Advance(6 * time.Minute)
	rec = be.do(t, h, "/oauth2/start?rd=/", nil)
	if loc := rec.Header().Get("Location"); !strings.HasPrefix(loc, "https://sso.example.com/authorize?") {
		t.Errorf("/oauth2/start with a refused refresh went to %q, want a sign-in", loc)
	}
	if _, ok := be.jar[sessionCookie]; ok {
		t.Error("the session cookie survived a refused refresh")
	}
}

// A broker issuing tokens shorter-lived than RefreshBefore: a renewed
// token is not due at once, so pages do not loop through /oauth2/start.
func TestBrowserRenewalShortTokens(t *testing.T) {
	be := newBrowserEnv(t, nil)
	be.op.setTTL(20 * time.Second)
	h := be.handler(HeadersNginx)
	be.signIn(t, h, "/", nil)
	if rec := be.do(t, h, "/oauth2/auth", pageCheck("/")); rec.Code != http.StatusOK {
		t.Fatalf("page check of a 20s token = %d, want 200 (renewed within 10s of expiry)", rec.Code)
	}
	be.e.clock.Advance(11 * time.Second)
	if rec := be.do(t, h, "/oauth2/auth", pageCheck("/")); rec.Code != http.StatusUnauthorized {
		t.Fatalf("page check 9s before expiry = %d, want 401 (renewal)", rec.Code)
	}
	if rec := be.do(t, h, "/oauth2/start?rd=/", nil); rec.Code != http.StatusFound || rec.Header().Get("Location") != "/" {
		t.Fatalf("renewal = %d to %q, want 302 to /", rec.Code, rec.Header().Get("Location"))
	}
	if rec := be.do(t, h, "/oauth2/auth", pageCheck("/")); rec.Code != http.StatusOK {
		t.Errorf("page check after renewal = %d, want 200", rec.Code)
	}
}

// A session without a refresh token cannot be renewed: it serves until
// its token expires, then the cookie is cleared and the browser signs in.
func TestBrowserSessionWithoutRefreshToken(t *testing.T) {
	be := newBrowserEnv(t, nil)
	h := be.handler(HeadersNginx)
	be.signIn(t, h, "/", nil)
	s, ok := be.b.readSession(&http.Request{Header: http.Header{"Cookie": {sessionCookie + "=" + be.jar[sessionCookie]}}})
	if !ok {
		t.Fatal("no session after sign-in")
	}
	s.Refresh = ""
	be.jar[sessionCookie] = be.b.sealSession(s)

	be.e.clock.Advance(4*time.Minute + 45*time.Second)
	if rec := be.do(t, h, "/oauth2/auth", pageCheck("/")); rec.Code != http.StatusOK {
		t.Errorf("page check due, no refresh token = %d, want 200 until expiry", rec.Code)
	}
	be.e.clock.Advance(2 * time.Minute)
	if rec := be.do(t, h, "/oauth2/auth", pageCheck("/")); rec.Code != http.StatusUnauthorized {
		t.Errorf("page check after expiry, no refresh token = %d, want 401", rec.Code)
	}
	if _, ok := be.jar[sessionCookie]; ok {
		t.Error("the session cookie was not cleared")
	}
	if n := be.op.refreshes.Load(); n != 0 {
		t.Errorf("refresh grants = %d, want 0", n)
	}
}
