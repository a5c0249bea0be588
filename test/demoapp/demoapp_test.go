package demoapp

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	valid := Config{Issuer: "https://keyward.example", ClientID: "demo", RedirectURL: "http://127.0.0.1:5557/callback"}
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr []string
	}{
		{name: "valid", mutate: func(*Config) {}},
		{name: "public client", mutate: func(c *Config) { c.ClientSecret = "" }},
		{name: "empty", mutate: func(c *Config) { *c = Config{} }, wantErr: []string{"issuer is required", "client id is required", "redirect url is required"}},
		{name: "relative issuer", mutate: func(c *Config) { c.Issuer = "keyward.example" }, wantErr: []string{"not an absolute"}},
		{name: "redirect without path", mutate: func(c *Config) { c.RedirectURL = "http://127.0.0.1:5557" }, wantErr: []string{"needs a path"}},
		{name: "redirect clashes", mutate: func(c *Config) { c.RedirectURL = "http://127.0.0.1:5557/login" }, wantErr: []string{"clashes"}},
		{name: "redirect unroutable", mutate: func(c *Config) { c.RedirectURL = "http://127.0.0.1:5557/cb/{x}" }, wantErr: []string{"cannot route"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid
			tt.mutate(&cfg)
			app, err := New(cfg)
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("New(%+v) = %v, want no error", cfg, err)
				}
				if app.cfg.Scopes[0] != "openid" || app.cfg.Title == "" || app.cfg.HTTPClient == nil {
					t.Errorf("New(%+v) defaults = %+v", cfg, app.cfg)
				}
				return
			}
			if err == nil {
				t.Fatalf("New(%+v) = nil error, want %q", cfg, tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("New(%+v) = %v, want it to mention %q", cfg, err, w)
				}
			}
		})
	}
}

func TestNewAddsOpenIDScope(t *testing.T) {
	app, err := New(Config{Issuer: "https://k.example", ClientID: "c", RedirectURL: "https://a.example/cb", Scopes: []string{"email"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(app.cfg.Scopes, " "); got != "openid email" {
		t.Errorf("scopes = %q, want %q", got, "openid email")
	}
}

func TestNoNetworkUntilSignIn(t *testing.T) {
	e := newTestEnv(t, nil)
	r := e.do(t, http.MethodGet, "/", nil)
	mustContain(t, "signed-out home", r.body, "Sign in with Keyward", `href="/login"`, e.idp.srv.URL, "openid profile email offline_access")
	var hits int
	e.idp.get(func(p *testIDP) { hits = p.discoveryHits })
	if hits != 0 {
		t.Errorf("discovery hits before sign-in = %d, want 0", hits)
	}
}

func TestSignIn(t *testing.T) {
	e := newTestEnv(t, nil)

	r := e.do(t, http.MethodGet, "/login", nil)
	login := findCookie(r.cookies, loginCookieName)
	checkCookieAttrs(t, login, loginCookieName)
	if login.MaxAge != 600 {
		t.Errorf("login cookie Max-Age = %d, want 600", login.MaxAge)
	}
	authz, err := url.Parse(r.location)
	if err != nil {
		t.Fatal(err)
	}
	q := authz.Query()
	for _, k := range []string{"state", "nonce", "code_challenge"} {
		if len(q.Get(k)) < 20 {
			t.Errorf("authorize %s = %q, want a random value", k, q.Get(k))
		}
	}
	if q.Get("code_challenge_method") != "S256" || q.Get("scope") != "openid profile email offline_access" || q.Get("redirect_uri") != e.srv.URL+"/callback" {
		t.Errorf("authorize query = %v", q)
	}

	r = e.do(t, http.MethodGet, r.location, nil) // the IdP approves
	r = e.do(t, http.MethodGet, r.location, nil) // the callback
	if r.status != http.StatusSeeOther || r.location != "/" {
		t.Fatalf("callback = %d to %q, want 303 to /: %s", r.status, r.location, r.body)
	}
	checkCookieAttrs(t, findCookie(r.cookies, sessionCookieName), sessionCookieName)
	if c := findCookie(r.cookies, loginCookieName); c == nil || c.MaxAge >= 0 {
		t.Errorf("callback did not clear the login cookie: %+v", c)
	}

	r = e.do(t, http.MethodGet, "/", nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET / = %d", r.status)
	}
	mustContain(t, "signed-in home", r.body,
		"Signed in as Ada Lovelace",
		"ada@example.com",
		"<li>engineering</li><li>admins</li>",
		"<code>user-1</code>",
		"<code>at+jwt</code>", // access token header typ
		"<code>key-1</code>",  // kid
		"<code>RS256</code>",
		`"typ": "at+jwt"`,
		`"jti": "at-1"`,
		`"aud": "demo"`,
		`"nonce": "`+q.Get("nonce")+`"`,
		"valid for ",
		"Refresh tokens",
		"Sign out",
		`action="/refresh"`,
		`action="/logout"`,
		// The decoded claims are shown whole (wrapped, not cut off).
		`<pre class="da-code da-json" tabindex="0" aria-label="ID token claims">`,
	)
	css := e.do(t, http.MethodGet, "/static/demoapp.css", nil)
	mustContain(t, "demoapp.css", css.body, ".da-json { max-height: none; white-space: pre-wrap; overflow-wrap: anywhere; }")
	if strings.Contains(r.body, " disabled") {
		t.Errorf("refresh button is disabled although a refresh token was issued")
	}
	if got := r.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}
}

func TestCallbackFailures(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(p *testIDP)
		callback   func(t *testing.T, e *testEnv) string // the URL to visit
		wantStatus int
		want       []string
	}{
		{
			name: "bad state",
			callback: func(t *testing.T, e *testEnv) string {
				u, _ := url.Parse(e.startLogin(t))
				q := u.Query()
				q.Set("state", "forged")
				u.RawQuery = q.Encode()
				return u.String()
			},
			wantStatus: http.StatusBadRequest,
			want:       []string{"Sign-in could not be verified", "does not match", `href="/login"`},
		},
		{
			name: "no login cookie",
			callback: func(t *testing.T, e *testEnv) string {
				return "/callback?code=abc&state=def"
			},
			wantStatus: http.StatusBadRequest,
			want:       []string{"Sign-in expired"},
		},
		{
			name: "access denied",
			callback: func(t *testing.T, e *testEnv) string {
				e.startLogin(t)
				return "/callback?error=access_denied&error_description=" + url.QueryEscape("<script>no</script> not in group")
			},
			wantStatus: http.StatusForbidden,
			want:       []string{"Sign-in failed", "Access was denied", "<code>access_denied</code>", "&lt;script&gt;no&lt;/script&gt; not in group"},
		},
		{
			name:  "nonce mismatch",
			setup: func(p *testIDP) { p.wrongNonce = true },
			callback: func(t *testing.T, e *testEnv) string {
				return e.startLogin(t)
			},
			wantStatus: http.StatusBadGateway,
			want:       []string{"ID token rejected", "nonce does not match"},
		},
		{
			name: "code rejected",
			callback: func(t *testing.T, e *testEnv) string {
				u, _ := url.Parse(e.startLogin(t))
				q := u.Query()
				q.Set("code", "bogus")
				u.RawQuery = q.Encode()
				return u.String()
			},
			wantStatus: http.StatusBadGateway,
			want:       []string{"Token request failed", "<code>invalid_grant</code>", "unknown code or redirect_uri"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t, nil)
			if tt.setup != nil {
				e.idp.set(tt.setup)
			}
			r := e.do(t, http.MethodGet, tt.callback(t, e), nil)
			if r.status != tt.wantStatus {
				t.Errorf("callback status = %d, want %d", r.status, tt.wantStatus)
			}
			mustContain(t, "error page", r.body, tt.want...)
			if strings.Contains(r.body, "<script>") {
				t.Errorf("error page contains unescaped <script>")
			}
			if c := findCookie(r.cookies, sessionCookieName); c != nil && c.MaxAge >= 0 {
				t.Errorf("failed callback set a session cookie")
			}
			r = e.do(t, http.MethodGet, "/", nil)
			mustContain(t, "home after failure", r.body, "Sign in with Keyward")
		})
	}
}

func TestRefresh(t *testing.T) {
	e := newTestEnv(t, nil)
	home := e.signIn(t)
	for i, wantJTI := range []string{"at-2", "at-3"} { // the second uses the rotated refresh token
		home = e.follow(t, http.MethodPost, "/refresh", url.Values{"csrf": {csrfFrom(t, home.body)}})
		if home.status != http.StatusOK {
			t.Fatalf("refresh %d: status %d:\n%s", i+1, home.status, home.body)
		}
		mustContain(t, "home after refresh", home.body, `"jti": "`+wantJTI+`"`, "Signed in as Ada Lovelace")
	}
	mustContain(t, "home after refresh", home.body, "(refreshed 2×)")
	var grants int
	e.idp.get(func(p *testIDP) { grants = p.refreshGrants })
	if grants != 2 {
		t.Errorf("refresh grants at the IdP = %d, want 2", grants)
	}
}

func TestRefreshRejectsBadCSRF(t *testing.T) {
	e := newTestEnv(t, nil)
	e.signIn(t)
	for _, form := range []url.Values{{}, {"csrf": {"forged"}}} {
		r := e.do(t, http.MethodPost, "/refresh", form)
		if r.status != http.StatusForbidden {
			t.Errorf("POST /refresh %v = %d, want 403", form, r.status)
		}
	}
	var grants int
	e.idp.get(func(p *testIDP) { grants = p.refreshGrants })
	if grants != 0 {
		t.Errorf("refresh grants = %d, want 0", grants)
	}
}

func TestRefreshInvalidGrantEndsSession(t *testing.T) {
	e := newTestEnv(t, nil)
	home := e.signIn(t)
	e.idp.set(func(p *testIDP) { p.rejectRefresh = true })
	r := e.do(t, http.MethodPost, "/refresh", url.Values{"csrf": {csrfFrom(t, home.body)}})
	if r.status != http.StatusForbidden {
		t.Errorf("POST /refresh = %d, want 403", r.status)
	}
	mustContain(t, "refresh error", r.body, "Session ended", "<code>invalid_grant</code>", "refresh token revoked", "Sign in again")
	r = e.do(t, http.MethodGet, "/", nil)
	mustContain(t, "home after rejected refresh", r.body, "Sign in with Keyward")
}

func TestNoRefreshToken(t *testing.T) {
	e := newTestEnv(t, nil)
	e.idp.set(func(p *testIDP) { p.omitRefresh = true })
	home := e.signIn(t)
	mustContain(t, "home", home.body, `disabled aria-describedby="da-no-refresh"`, "issued no refresh token")
	r := e.do(t, http.MethodPost, "/refresh", url.Values{"csrf": {csrfFrom(t, home.body)}})
	if r.status != http.StatusBadRequest {
		t.Errorf("POST /refresh = %d, want 400", r.status)
	}
}

func TestLogout(t *testing.T) {
	e := newTestEnv(t, nil)
	home := e.signIn(t)
	u, _ := url.Parse(e.srv.URL)
	old := findCookie(e.browser.Jar.Cookies(u), sessionCookieName)
	if old == nil {
		t.Fatal("no session cookie in the jar")
	}

	r := e.do(t, http.MethodPost, "/logout", url.Values{"csrf": {"forged"}})
	if r.status != http.StatusForbidden {
		t.Errorf("POST /logout with a forged token = %d, want 403", r.status)
	}
	mustContain(t, "home after refused logout", e.do(t, http.MethodGet, "/", nil).body, "Signed in as")

	r = e.do(t, http.MethodPost, "/logout", url.Values{"csrf": {csrfFrom(t, home.body)}})
	if r.status != http.StatusSeeOther || r.location != "/?signed_out=1" {
		t.Errorf("POST /logout = %d to %q, want 303 to /?signed_out=1", r.status, r.location)
	}
	r = e.do(t, http.MethodGet, r.location, nil)
	mustContain(t, "home after logout", r.body, "You are signed out of this app", "Sign in with Keyward")
	if c := findCookie(e.browser.Jar.Cookies(u), sessionCookieName); c != nil {
		t.Errorf("session cookie still in the jar: %+v", c)
	}

	// The session is gone on the server too: replaying the old cookie fails.
	e.browser.Jar.SetCookies(u, []*http.Cookie{{Name: sessionCookieName, Value: old.Value, Path: "/", Secure: true}})
	r = e.do(t, http.MethodGet, "/", nil)
	mustContain(t, "home with replayed cookie", r.body, "Sign in with Keyward")

	// Signing in again works (single sign-on would skip the password at Keyward).
	e.signIn(t)
}

func TestDiscoveryIsRetried(t *testing.T) {
	e := newTestEnv(t, nil)
	e.idp.set(func(p *testIDP) { p.discoveryDown = true })
	r := e.do(t, http.MethodGet, "/login", nil)
	if r.status != http.StatusBadGateway {
		t.Errorf("GET /login with discovery down = %d, want 502", r.status)
	}
	mustContain(t, "discovery error", r.body, "Keyward is not reachable", "503 Service Unavailable", `href="/login"`)

	e.idp.set(func(p *testIDP) { p.discoveryDown = false })
	e.signIn(t)
	e.signIn(t)
	var hits int
	e.idp.get(func(p *testIDP) { hits = p.discoveryHits })
	if hits != 2 {
		t.Errorf("discovery hits = %d, want 2 (one failure, then cached)", hits)
	}
}

func TestHeadersAndAssets(t *testing.T) {
	e := newTestEnv(t, nil)
	home := e.signIn(t)
	for _, bad := range []string{"<script", "<style", " style="} {
		if strings.Contains(home.body, bad) {
			t.Errorf("page contains %q, which the CSP forbids", bad)
		}
	}
	mustContain(t, "home", home.body, `<html lang="en">`, "<main ", `<link rel="stylesheet" href="/static/demoapp.css">`)

	r := e.do(t, http.MethodGet, "/", nil)
	wantHeaders := map[string]string{
		"Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
		"Content-Type":            "text/html; charset=utf-8",
		"Cache-Control":           "no-store",
	}
	for k, want := range wantHeaders {
		if got := r.header.Get(k); got != want {
			t.Errorf("GET / header %s = %q, want %q", k, got, want)
		}
	}

	r = e.do(t, http.MethodGet, "/static/demoapp.css", nil)
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "text/css; charset=utf-8" || !strings.Contains(r.body, "prefers-color-scheme: dark") {
		t.Errorf("GET /static/demoapp.css = %d %q", r.status, r.header.Get("Content-Type"))
	}
	if r := e.do(t, http.MethodGet, "/nope", nil); r.status != http.StatusNotFound {
		t.Errorf("GET /nope = %d, want 404", r.status)
	}
	if r := e.do(t, http.MethodGet, "/logout", nil); r.status != http.StatusMethodNotAllowed {
		t.Errorf("GET /logout = %d, want 405", r.status)
	}
}

// TestHomeSignedInAtGatewayOnly: behind the gateway, before the app's own
// sign-in, the page does not ask to "sign in to see who you are" above
// the gateway's table of who you are.
func TestHomeSignedInAtGatewayOnly(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.GatewayHeaders = true })
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, e.srv.URL+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Auth-Request-User", "alice")
	resp, err := e.browser.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	body := string(b)
	mustContain(t, "home behind the gateway", body,
		"The gateway has signed you in and told this app who you are (below).",
		"Signed in at the gateway", "<code>alice</code>", "Sign in with Keyward")
	if strings.Contains(body, "Sign in to see who you are") {
		t.Errorf("the page asks to sign in to see who you are above the gateway's table of who you are")
	}
	// Without the gateway, the lead is as before.
	r := e.do(t, http.MethodGet, "/", nil)
	mustContain(t, "home without the gateway", r.body, "Sign in to see who you are")
}
