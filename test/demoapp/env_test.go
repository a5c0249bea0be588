package demoapp

import (
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// testEnv is the app on an httptest TLS server (Go's cookie jar sends Secure
// cookies over https only), the test IdP, and a browser that does not follow
// redirects by itself, so each hop can be inspected.
type testEnv struct {
	idp     *testIDP
	app     *App
	srv     *httptest.Server
	browser *http.Client
}

func newTestEnv(t *testing.T, mutate func(*Config)) *testEnv {
	t.Helper()
	idp := newTestIDP(t)
	srv := httptest.NewUnstartedServer(nil)
	base := "https://" + srv.Listener.Addr().String()
	cfg := Config{
		Issuer:       idp.srv.URL,
		ClientID:     testClientID,
		ClientSecret: testClientSecret,
		RedirectURL:  base + "/callback",
	}
	if mutate != nil {
		mutate(&cfg)
	}
	app, err := New(cfg)
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	srv.Config.Handler = app.Handler()
	srv.StartTLS()
	t.Cleanup(srv.Close)

	return &testEnv{idp: idp, app: app, srv: srv, browser: newBrowser(t, srv)}
}

func newBrowser(t *testing.T, srv *httptest.Server) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := srv.Client()
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c
}

type response struct {
	status   int
	header   http.Header
	cookies  []*http.Cookie
	location string
	body     string
}

// do sends one request; rawURL may be a path on the app or an absolute URL.
func (e *testEnv) do(t *testing.T, method, rawURL string, form url.Values) response {
	t.Helper()
	if strings.HasPrefix(rawURL, "/") {
		rawURL = e.srv.URL + rawURL
	}
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(t.Context(), method, rawURL, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := e.browser.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, cookies: resp.Cookies(), location: resp.Header.Get("Location"), body: string(b)}
}

// follow sends the request and follows redirects with GET, as a browser does
// after 302/303.
func (e *testEnv) follow(t *testing.T, method, rawURL string, form url.Values) response {
	t.Helper()
	r := e.do(t, method, rawURL, form)
	for range 10 {
		if r.location == "" {
			return r
		}
		r = e.do(t, http.MethodGet, r.location, nil)
	}
	t.Fatalf("too many redirects from %s", rawURL)
	return r
}

// startLogin runs /login and the IdP's authorize step, and returns the
// callback URL the IdP redirected to (not yet visited).
func (e *testEnv) startLogin(t *testing.T) string {
	t.Helper()
	r := e.do(t, http.MethodGet, "/login", nil)
	if r.status != http.StatusFound || !strings.HasPrefix(r.location, e.idp.srv.URL+"/auth?") {
		t.Fatalf("GET /login = %d to %q, want 302 to the IdP", r.status, r.location)
	}
	r = e.do(t, http.MethodGet, r.location, nil)
	if r.status != http.StatusFound || !strings.HasPrefix(r.location, e.srv.URL+"/callback?") {
		t.Fatalf("IdP authorize = %d to %q, want 302 to the callback: %s", r.status, r.location, r.body)
	}
	return r.location
}

// signIn runs the whole flow and returns the signed-in home page.
func (e *testEnv) signIn(t *testing.T) response {
	t.Helper()
	r := e.follow(t, http.MethodGet, e.startLogin(t), nil)
	if r.status != http.StatusOK || !strings.Contains(r.body, "Signed in as") {
		t.Fatalf("after callback: status %d, body:\n%s", r.status, r.body)
	}
	return r
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfFrom(t *testing.T, body string) string {
	t.Helper()
	m := csrfInput.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF token in page:\n%s", body)
	}
	return m[1]
}

// mustContain checks the page source for each want, and also its text (HTML
// entities decoded), so a want may be written plainly: `"typ": "at+jwt"`.
func mustContain(t *testing.T, what, body string, want ...string) {
	t.Helper()
	text := html.UnescapeString(body)
	for _, w := range want {
		if !strings.Contains(body, w) && !strings.Contains(text, w) {
			t.Errorf("%s lacks %q", what, w)
		}
	}
	if t.Failed() {
		t.Logf("%s:\n%s", what, body)
	}
}

func findCookie(cookies []*http.Cookie, name string) *http.Cookie {
	for _, c := range cookies {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func checkCookieAttrs(t *testing.T, c *http.Cookie, name string) {
	t.Helper()
	if c == nil {
		t.Fatalf("no %s cookie set", name)
	}
	if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" {
		t.Errorf("%s cookie = %+v, want Secure, HttpOnly, SameSite=Lax, Path=/, no Domain", name, c)
	}
}
