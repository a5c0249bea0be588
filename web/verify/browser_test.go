package verify

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSafeRedirect(t *testing.T) {
	allowed := []string{"shop.example.com", ".apps.example.com", "admin.example.com:8443", "api.example.com:443", "[::1]:8080"}
	tests := []struct {
		rd   string
		want bool
	}{
		{"/", true},
		{"/orders/1?x=1#top", true},
		{"/%2F%2Fevil.com", true}, // a path on this host, however odd
		{"https://shop.example.com/cart", true},
		{"https://shop.example.com:443/", true}, // the default port, explicit
		{"https://api.example.com/", true},      // an explicit default port in the entry
		{"https://[::1]:8080/", true},
		{"https://SHOP.example.com/", true},
		{"https://apps.example.com/", true},
		{"https://a.b.apps.example.com/x", true},
		{"https://admin.example.com:8443/", true},
		{"", false},
		{"//evil.com", false},
		{"///evil.com", false},
		{"/\\evil.com", false},
		{"\\\\evil.com", false},
		{"/\t/evil.com", false},
		{" https://shop.example.com/", false},
		{"https://evil.com", false},
		{"https://evil.com/shop.example.com", false},
		{"https://shop.example.com.evil.com/", false},
		{"https://evilshop.example.com/", false},
		{"https://xapps.example.com/", false},
		{"https://shop.example.com@evil.com/", false},
		{"https://user:pw@shop.example.com/", false},
		{"https://evil.com\\@shop.example.com/", false},
		{"https:evil.com", false},
		{"https:/evil.com", false},
		{"https:shop.example.com", false},
		{"javascript:alert(1)", false},
		{"JavaScript://shop.example.com/%0aalert(1)", false},
		{"data:text/html,<script>alert(1)</script>", false},
		{"ftp://shop.example.com/", false},
		{"shop.example.com/x", false},
		{"https://admin.example.com/", false}, // the port is part of that entry
		{"https://admin.example.com:443/", false},
		{"https://shop.example.com:8443/", false}, // another port on an allowed host
		{"https://a.apps.example.com:8443/", false},
		// The callback is https: never http, on any port.
		{"http://shop.example.com/", false},
		{"http://shop.example.com:80/", false},
		{"http://shop.example.com:443/", false},
		{"http://api.example.com:443/", false},
		{"HTTP://api.example.com:443/", false},
		{"http://admin.example.com:8443/", false},
		{"http://[::1]:8080/", false},
		{"https://shop.exаmple.com/", false}, // Cyrillic а
		{"https://shop.example.com%2F@evil.com/", false},
		{"/\r\nSet-Cookie:x=y", false},
	}
	for _, tt := range tests {
		if got := SafeRedirect(tt.rd, allowed, "https"); got != tt.want {
			t.Errorf("SafeRedirect(%q) = %v, want %v", tt.rd, got, tt.want)
		}
	}
	if SafeRedirect("https://shop.example.com/", nil, "https") {
		t.Error("SafeRedirect(absolute, no allowlist) = true, want false")
	}
	// An http callback (localhost development): an entry without a port
	// stands for the default port of rd's scheme.
	for _, tt := range []struct {
		rd   string
		want bool
	}{
		{"http://shop.example.com/", true},
		{"http://shop.example.com:80/", true},
		{"https://shop.example.com/", true},
		{"http://[::1]:8080/", true},
		{"http://shop.example.com:8080/", false},
		{"http://api.example.com/", false}, // port 80, not 443
		{"http://[::1]/", false},
	} {
		if got := SafeRedirect(tt.rd, allowed, "http"); got != tt.want {
			t.Errorf("SafeRedirect(%q, http callback) = %v, want %v", tt.rd, got, tt.want)
		}
	}
}

func TestRedirectParam(t *testing.T) {
	tests := []struct{ query, want string }{
		{"rd=/orders/1?page=2&sort=asc", "/orders/1?page=2&sort=asc"}, // nginx's unescaped $request_uri
		{"rd=" + url.QueryEscape("/a?b=c&d=e"), "/a?b=c&d=e"},
		{"x=1&rd=%2Fy", "/y"},
		{"rd=%zz", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := redirectParam(&url.URL{RawQuery: tt.query}); got != tt.want {
			t.Errorf("redirectParam(%q) = %q, want %q", tt.query, got, tt.want)
		}
	}
}

func TestBrowserSignIn(t *testing.T) {
	be := newBrowserEnv(t, nil)
	h := be.handler(HeadersNginx)

	// No session: nginx gets a 401 (its error_page starts the sign-in).
	if rec := be.do(t, h, "/oauth2/auth", nginxCheck("/cart")); rec.Code != http.StatusUnauthorized {
		t.Fatalf("check without a session = %d, want 401", rec.Code)
	}
	rec := be.signIn(t, h, "/cart?x=1", nil)
	if rec.Code != http.StatusFound || rec.Header().Get("Location") != "/cart?x=1" {
		t.Fatalf("callback = %d to %q, want 302 to /cart?x=1: %s", rec.Code, rec.Header().Get("Location"), rec.Body)
	}
	for _, c := range (&http.Response{Header: rec.Header()}).Cookies() {
		if !strings.HasPrefix(c.Name, "__Host-") || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" {
			t.Errorf("cookie %s: %+v, want __Host-, Secure, HttpOnly, SameSite=Lax, Path=/", c.Name, c)
		}
	}
	if _, ok := be.jar[sessionCookie]; !ok || len(be.jar) != 1 {
		t.Fatalf("cookies after sign-in: %v, want only %s (the login cookie cleared)", keys(be.jar), sessionCookie)
	}
	rec = be.do(t, h, "/oauth2/auth", nginxCheck("/cart"))
	if rec.Code != http.StatusOK {
		t.Fatalf("check with the session = %d, want 200", rec.Code)
	}
	if diff := cmp.Diff(identity, rec.Header()); diff != "" {
		t.Errorf("identity headers (-want +got):\n%s", diff)
	}
	// The rules still apply to a browser session.
	if rec := be.do(t, h, "/oauth2/auth", nginxCheck("/admin/x")); rec.Code != http.StatusOK {
		t.Errorf("check /admin/ with group = %d, want 200", rec.Code)
	}

	// A bearer token still wins over the cookie.
	hdr := nginxCheck("/cart")
	hdr.Set("Authorization", "Bearer garbage")
	if rec := be.do(t, h, "/oauth2/auth", hdr); rec.Code != http.StatusUnauthorized {
		t.Errorf("check with a bad bearer token and a session = %d, want 401", rec.Code)
	}

	// Sign-out clears the session and the next sign-in asks again. The
	// discovery document names no end_session_endpoint: straight to rd.
	rec = be.do(t, h, "/oauth2/sign_out?rd="+url.QueryEscape("https://evil.com/"), nil)
	if rec.Code != http.StatusFound || rec.Header().Get("Location") != "/" {
		t.Errorf("sign_out to evil.com = %d to %q, want 302 to /", rec.Code, rec.Header().Get("Location"))
	}
	if _, ok := be.jar[sessionCookie]; ok {
		t.Error("session cookie survived sign_out")
	}
	if rec := be.do(t, h, "/oauth2/auth", nginxCheck("/cart")); rec.Code != http.StatusUnauthorized {
		t.Errorf("check after sign_out = %d, want 401", rec.Code)
	}
	rec = be.do(t, h, "/oauth2/start?rd=/", nil)
	if loc, _ := url.Parse(rec.Header().Get("Location")); loc == nil || loc.Query().Get("prompt") != "login" {
		t.Errorf("start after sign_out redirected to %q, want prompt=login", rec.Header().Get("Location"))
	}
}

func TestBrowserSignInFailures(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(be *browserEnv, q url.Values)
		want   int
	}{
		{"wrong state", func(_ *browserEnv, q url.Values) { q.Set("state", q.Get("state")[:16]+"XXXXXXXXXX") }, http.StatusBadRequest},
		{"no state", func(_ *browserEnv, q url.Values) { q.Del("state") }, http.StatusBadRequest},
		{"no login cookie", func(be *browserEnv, _ url.Values) { clear(be.jar) }, http.StatusBadRequest},
		{"other issuer (mix-up)", func(_ *browserEnv, q url.Values) { q.Set("iss", "https://evil.example.com") }, http.StatusBadRequest},
		{"no iss", func(_ *browserEnv, q url.Values) { q.Del("iss") }, http.StatusBadRequest},
		{"error answer", func(_ *browserEnv, q url.Values) { q.Del("code"); q.Set("error", "access_denied") }, http.StatusForbidden},
		{"wrong code", func(_ *browserEnv, q url.Values) { q.Set("code", "other") }, http.StatusBadGateway},
		{"login took too long", func(be *browserEnv, _ url.Values) { be.e.clock.Advance(11 * time.Minute) }, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be := newBrowserEnv(t, nil)
			h := be.handler(HeadersNginx)
			rec := be.signIn(t, h, "/", func(q url.Values) { tt.tamper(be, q) })
			if rec.Code != tt.want {
				t.Errorf("callback = %d, want %d: %s", rec.Code, tt.want, rec.Body)
			}
			if _, ok := be.jar[sessionCookie]; ok {
				t.Error("a failed callback set the session cookie")
			}
		})
	}
	t.Run("access token for another audience", func(t *testing.T) {
		be := newBrowserEnv(t, nil)
		be.op.setExtra(map[string]any{"aud": "other-api"})
		if rec := be.signIn(t, be.handler(HeadersNginx), "/", nil); rec.Code != http.StatusBadGateway ||
			!strings.Contains(rec.Body.String(), "audience mismatch") {
			t.Errorf("callback = %d %q, want 502 naming the audience", rec.Code, rec.Body)
		}
	})
}

func TestBrowserNonNginx(t *testing.T) {
	be := newBrowserEnv(t, nil)
	h := be.handler(HeadersForwarded)
	hdr := http.Header{"X-Forwarded-Uri": {"/cart?x=1&y=2"}, "X-Forwarded-Host": {browserHost}, "Accept": {"text/html,*/*"}}
	rec := be.do(t, h, "/oauth2/auth", hdr)
	if want := "/oauth2/start?rd=" + url.QueryEscape("/cart?x=1&y=2"); rec.Code != http.StatusFound || rec.Header().Get("Location") != want {
		t.Errorf("HTML check without session = %d to %q, want 302 to %q", rec.Code, rec.Header().Get("Location"), want)
	}
	hdr.Set("Accept", "application/json")
	if rec := be.do(t, h, "/oauth2/auth", hdr); rec.Code != http.StatusUnauthorized {
		t.Errorf("API check without session = %d, want 401", rec.Code)
	}
}

func TestBrowserCookies(t *testing.T) {
	be := newBrowserEnv(t, nil)
	h := be.handler(HeadersNginx)
	// Many groups make a token larger than one cookie.
	groups := make([]string, 120) // the token stays under MaxTokenBytes
	for i := range groups {
		groups[i] = "group-with-a-long-name-" + strings.Repeat("x", 10)
	}
	groups[0] = "staff"
	be.op.setExtra(map[string]any{"groups": groups})
	be.signIn(t, h, "/", nil)
	if _, ok := be.jar[sessionCookie+"-1"]; !ok {
		t.Fatalf("cookies = %v, want the session split in chunks", keys(be.jar))
	}
	if rec := be.do(t, h, "/oauth2/auth", nginxCheck("/")); rec.Code != 200 {
		t.Errorf("check with a chunked session = %d, want 200", rec.Code)
	}
	// A tampered cookie is no session.
	v := be.jar[sessionCookie]
	be.jar[sessionCookie] = v[:20] + strings.Map(func(r rune) rune {
		if r == 'A' {
			return 'B'
		}
		return 'A'
	}, v[20:21]) + v[21:]
	if rec := be.do(t, h, "/oauth2/auth", nginxCheck("/")); rec.Code != http.StatusUnauthorized {
		t.Errorf("check with a tampered cookie = %d, want 401", rec.Code)
	}
	// A cookie sealed with another key, or moved from the login cookie, does
	// not open.
	other := newBrowserEnv(t, func(c *BrowserConfig) { c.CookieSecret = []byte("ffffffffffffffffffffffffffffffff") })
	if _, ok := other.b.open(sessionCookie, v); ok {
		t.Error("a cookie opened under another key")
	}
	if _, ok := be.b.open(loginCookiePrefix+"x", be.b.seal(sessionCookie, []byte("{}"))); ok {
		t.Error("a session value opened as a login cookie")
	}
}

// TestOpensCookieSealedBeforeSealPackage opens a session cookie value sealed
// by the code before keys/seal existed: browsers signed in before an
// upgrade stay signed in.
func TestOpensCookieSealedBeforeSealPackage(t *testing.T) {
	be := newBrowserEnv(t, func(c *BrowserConfig) { c.CookieSecret = []byte("cookie-secret-of-exactly-32-byte") })
	const old = "5UD5Z7Os0J-Kn_a5IRNIYYjAfGaAp7J_mMhvpEkfLHro3UO6OwhVKL26MAwIXKtE"
	plain, ok := be.b.open(sessionCookie, old)
	if !ok {
		t.Fatal("open() of a cookie sealed by the old code failed")
	}
	if want := `{"a":"access-token"}`; string(plain) != want {
		t.Errorf("open() = %q, want %q", plain, want)
	}
	if _, ok := be.b.open(chunkName(1), old); ok {
		t.Error("the old cookie opened under another cookie name")
	}
}

func TestNewBrowserValidates(t *testing.T) {
	e := newEnv(t)
	v := newVerifier(t, e.ks, e.clock, nil)
	_, err := NewBrowser(v, BrowserConfig{RedirectURL: "https://x/callback", CookieSecret: []byte("short"),
		AllowedRedirectDomains: []string{"*.example.com"}, AuthURL: "https://sso/authorize"})
	for _, want := range []string{"clientID", "redirectURL", "32", "allowedRedirectDomains", "tokenURL"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("NewBrowser() = %v, want a problem naming %s", err, want)
		}
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func maps(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

// With an end_session_endpoint in Keyward's discovery document, sign-out
// also ends Keyward's session: a redirect there with the ID token as hint.
func TestBrowserSignOutEndSession(t *testing.T) {
	const endSession = "https://sso.example.com/end_session?x=1"
	be := newBrowserEnvWith(t, withDiscovery(map[string]any{"end_session_endpoint": endSession}), nil)
	h := be.handler(HeadersNginx)
	if rec := be.signIn(t, h, "/cart", nil); rec.Code != http.StatusFound {
		t.Fatalf("callback = %d: %s", rec.Code, rec.Body)
	}
	sess, ok := be.b.readSession(&http.Request{Header: http.Header{"Cookie": {sessionCookie + "=" + be.jar[sessionCookie]}}})
	if !ok || sess.IDToken == "" {
		t.Fatalf("session cookie holds no ID token: %+v", sess)
	}

	endSessionTo := func(t *testing.T, rec *httptest.ResponseRecorder) url.Values {
		t.Helper()
		loc, err := url.Parse(rec.Header().Get("Location"))
		if rec.Code != http.StatusFound || err != nil || loc.Scheme+"://"+loc.Host+loc.Path != "https://sso.example.com/end_session" {
			t.Fatalf("sign_out = %d to %q, want 302 to the end_session_endpoint", rec.Code, rec.Header().Get("Location"))
		}
		return loc.Query()
	}
	q := endSessionTo(t, be.do(t, h, "/oauth2/sign_out?rd="+url.QueryEscape("/bye?a=b"), nil))
	want := url.Values{"x": {"1"}, "id_token_hint": {sess.IDToken}, "client_id": {browserClient},
		"post_logout_redirect_uri": {"https://" + browserHost + "/bye?a=b"}}
	if diff := cmp.Diff(want, q); diff != "" {
		t.Errorf("end_session query (-want +got):\n%s", diff)
	}
	if _, ok := be.jar[sessionCookie]; ok {
		t.Error("session cookie survived sign_out")
	}
	if rec := be.do(t, h, "/oauth2/auth", nginxCheck("/cart")); rec.Code != http.StatusUnauthorized {
		t.Errorf("check after sign_out = %d, want 401", rec.Code)
	}
	rec := be.do(t, h, "/oauth2/start?rd=/", nil)
	if loc, _ := url.Parse(rec.Header().Get("Location")); loc == nil || loc.Query().Get("prompt") != "login" {
		t.Errorf("start after sign_out redirected to %q, want prompt=login", rec.Header().Get("Location"))
	}

	// No session: no hint. rd is validated before it becomes the
	// post_logout_redirect_uri; an allowed absolute URL stays as it is.
	for rd, wantURI := range map[string]string{
		"https://evil.com/x":              "https://" + browserHost + "/",
		"//evil.com/x":                    "https://" + browserHost + "/",
		"https://a.apps.example.com/p":    "https://a.apps.example.com/p",
		"http://a.apps.example.com/p":     "https://" + browserHost + "/", // the callback is https
		"http://" + browserHost + ":443/": "https://" + browserHost + "/",
		"":                                "https://" + browserHost + "/oauth2/signed_out", // the signed-out page
	} {
		q := endSessionTo(t, be.do(t, h, "/oauth2/sign_out?rd="+url.QueryEscape(rd), nil))
		if q.Get("post_logout_redirect_uri") != wantURI || q.Has("id_token_hint") || q.Get("client_id") != browserClient {
			t.Errorf("sign_out?rd=%q: end_session query %v, want post_logout_redirect_uri %s and no hint", rd, q, wantURI)
		}
	}
}

// Without a usable end_session_endpoint sign-out is what it was: a
// redirect to rd (TestBrowserSignIn covers a document without one).
func TestBrowserSignOutBadEndSessionEndpoint(t *testing.T) {
	be := newBrowserEnvWith(t, withDiscovery(map[string]any{"end_session_endpoint": "/end_session"}), nil)
	h := be.handler(HeadersNginx)
	if rec := be.signIn(t, h, "/cart", nil); rec.Code != http.StatusFound {
		t.Fatalf("callback = %d: %s", rec.Code, rec.Body)
	}
	rec := be.do(t, h, "/oauth2/sign_out?rd=/bye", nil)
	if rec.Code != http.StatusFound || rec.Header().Get("Location") != "/bye" {
		t.Errorf("sign_out = %d to %q, want 302 to /bye", rec.Code, rec.Header().Get("Location"))
	}
	if _, ok := be.jar[sessionCookie]; ok {
		t.Error("session cookie survived sign_out")
	}
}
