package gateway

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/web/verify"
)

// Markers that precede the tested blocks in docs/gateways/caddy.md: the
// Caddyfile for bearer tokens, its verify.yaml, and the browser-mode
// Caddyfile.
const (
	caddyConfigMarker        = "<!-- tested-config:"
	caddyVerifyMarker        = "<!-- tested-verify-config:"
	caddyBrowserConfigMarker = "<!-- tested-browser-config:"
)

// TestCaddyForwardAuth puts a real Caddy, configured as docs/gateways/caddy.md
// says, in front of a test app, with the verifier (gateway: caddy, so the
// X-Forwarded-* family) answering its forward_auth requests and tokens from a
// real broker.
func TestCaddyForwardAuth(t *testing.T) {
	caddy := findCaddy(t)
	b := newBroker(t)
	alice, bob := b.signIn(t, "alice"), b.signIn(t, "bob")

	rules, family := caddyVerifyConfig(t)
	v, err := verify.New(t.Context(), verify.Config{Issuer: b.issuer(), Audiences: []string{apiAudience}})
	if err != nil {
		t.Fatalf("verify.New: %v", err)
	}
	verifier := httptest.NewServer(verify.NewHandler(v, rules, verify.HandlerOptions{Headers: family}))
	t.Cleanup(verifier.Close)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := seen{Path: r.URL.Path, Headers: map[string]string{}}
		for _, h := range appHeaders {
			if vs, ok := r.Header[h]; ok {
				s.Headers[h] = strings.Join(vs, "|")
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s)
	}))
	t.Cleanup(app.Close)
	const api = "api.example.com"
	listen := freeAddr(t)
	gw := startCaddy(t, caddy, caddyConfigMarker, api, "http://"+api+":"+port(t, listen), listen,
		verifier.Listener.Addr().String(), app.Listener.Addr().String())

	do := func(t *testing.T, method, path, token string, extra map[string]string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, gw+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = api
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		for k, v := range extra {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		return resp, readBody(t, resp)
	}
	// Headers a client might send to pick its own rule or identity. Caddy
	// passes client headers through unless told otherwise.
	spoofed := map[string]string{
		"X-Auth-Request-User": "mallory", "X-Auth-Request-Groups": "admins", "X-Auth-Request-Access-Token": "forged",
		"X-Original-URI": "/public/x", "X-Original-Method": "GET", "X-Forwarded-Uri": "/public/x", "X-Forwarded-Method": "GET",
	}
	aliceHeaders := map[string]string{"X-Auth-Request-User": "alice", "X-Auth-Request-Email": "alice@example.com", "X-Auth-Request-Groups": "staff,admins", "X-Auth-Request-Subject": "*"}
	tests := []struct {
		name, method, path, token string
		extra                     map[string]string
		status                    int
		challenge                 string            // WWW-Authenticate must contain it; "" none expected
		headers                   map[string]string // what the app saw; nil: the app must not be reached
	}{
		{name: "valid token", path: "/orders/1?page=2", token: alice, status: 200, headers: aliceHeaders},
		{name: "spoofed identity headers are replaced", path: "/orders/1", token: bob, extra: spoofed, status: 200,
			headers: map[string]string{"X-Auth-Request-User": "bob", "X-Auth-Request-Email": "bob@example.com", "X-Auth-Request-Groups": "staff", "X-Auth-Request-Subject": "*"}},
		{name: "group required", path: "/admin/users", token: alice, status: 200, headers: aliceHeaders},
		{name: "no token", path: "/orders/1", status: 401, challenge: `Bearer realm="keyward"`},
		{name: "tampered token", path: "/orders/1", token: tamper(alice), status: 401, challenge: `error="invalid_token"`},
		{name: "garbage token", path: "/orders/1", token: "not-a-jwt", status: 401, challenge: `error="invalid_token"`},
		{name: "spoofed original URI with no token", path: "/orders/1", extra: spoofed, status: 401, challenge: `Bearer realm="keyward"`},
		{name: "lacks group", path: "/admin/users", token: bob, status: 403, challenge: `error="insufficient_scope"`},
		{name: "lacks scope", method: http.MethodPost, path: "/orders/1", token: alice, status: 403, challenge: `error="insufficient_scope"`},
		{name: "spoofed original method", method: http.MethodPost, path: "/orders/1", token: alice, extra: spoofed, status: 403, challenge: `error="insufficient_scope"`},
		{name: "no rule for the path", path: "/reports/", token: alice, status: 403, challenge: `error="insufficient_scope"`},
		// Caddy replaces X-Forwarded-Host from a client it does not trust:
		// the verifier judges the site's host, not the client's pick.
		{name: "spoofed forwarded host", path: "/orders/1", token: alice, extra: map[string]string{"X-Forwarded-Host": "other.example.com"}, status: 200, headers: aliceHeaders},
		{name: "anonymous", path: "/public/info", status: 200, headers: map[string]string{}},
		{name: "anonymous ignores spoofed identity", path: "/public/info", token: tamper(alice), extra: spoofed, status: 200, headers: map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			resp, body := do(t, method, tt.path, tt.token, tt.extra)
			checkAnswer(t, resp, body, tt.status, tt.challenge, tt.path, tt.headers)
		})
	}

	// A host with no site block never reaches the app: Caddy answers an
	// empty 200 itself, whatever the token.
	t.Run("host with no site block", func(t *testing.T) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, gw+"/orders/1", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "other.example.com"
		req.Header.Set("Authorization", "Bearer "+alice)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET other.example.com/orders/1: %v", err)
		}
		if body := readBody(t, resp); resp.StatusCode != http.StatusOK || body != "" {
			t.Errorf("other.example.com: %d %.300q, want Caddy's empty 200 (the app not reached)", resp.StatusCode, body)
		}
	})
}

// TestCaddyBrowserRedirect runs docs/gateways/caddy.md's browser-mode block
// with an http.Client and a cookie jar instead of a browser: a page request
// without a session is redirected through /oauth2/start to the upstream's
// login form; after signing in the client is back on the page it asked for,
// and the app sees the identity headers; /oauth2/sign_out ends the session.
func TestCaddyBrowserRedirect(t *testing.T) {
	caddy := findCaddy(t)
	listen := freeAddr(t)
	appURL := "http://" + listen
	b := newBroker(t, broker.Client{
		ID: shopClient, Secret: shopSecret, RedirectURIs: []string{appURL + "/oauth2/callback"},
		PostLogoutRedirectURIs: []string{appURL + "/cart"},
		Scopes:                 []string{"openid", "email", "profile", "groups", "offline_access"},
		Audiences:              []string{apiAudience},
	})
	v, err := verify.New(t.Context(), verify.Config{Issuer: b.issuer(), Audiences: []string{apiAudience}})
	if err != nil {
		t.Fatalf("verify.New: %v", err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	br, err := verify.NewBrowser(v, verify.BrowserConfig{
		ClientID: shopClient, ClientSecret: shopSecret, CookieSecret: key,
		RedirectURL: appURL + "/oauth2/callback", AllowedRedirectDomains: []string{"127.0.0.1"},
	})
	if err != nil {
		t.Fatalf("verify.NewBrowser: %v", err)
	}
	rules := verify.Rules{{Path: "/", Browser: true}}
	verifier := httptest.NewServer(verify.NewHandler(v, rules, verify.HandlerOptions{Headers: verify.HeadersForwarded, Browser: br}))
	t.Cleanup(verifier.Close)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := seen{Path: r.URL.Path, Headers: map[string]string{}}
		for _, h := range identityHeaders {
			if vs, ok := r.Header[h]; ok {
				s.Headers[h] = strings.Join(vs, "|")
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s)
	}))
	t.Cleanup(app.Close)
	startCaddy(t, caddy, caddyBrowserConfigMarker, "shop.example.com", appURL, listen,
		verifier.Listener.Addr().String(), app.Listener.Addr().String())

	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Jar: loopbackSecureJar{jar}, Timeout: 10 * time.Second}
	get := func(what, u string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Accept", "text/html,application/xhtml+xml") // a page, as a browser asks
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return resp, readBody(t, resp)
	}

	// 1. No session: Caddy passes the verifier's redirect to /oauth2/start,
	// which leads to the upstream's login form.
	resp, body := get("open the app", appURL+"/orders/1?view=full")
	if at := resp.Request.URL.String(); strings.HasPrefix(at, appURL) || strings.HasPrefix(at, b.issuer()) {
		t.Fatalf("without a session the page ended at %s (%d), want the upstream's login form", at, resp.StatusCode)
	}
	action, token := formActionRE.FindStringSubmatch(body), formTokenRE.FindStringSubmatch(body)
	if action == nil || token == nil {
		t.Fatalf("ended at %s (%d), want the upstream's login form:\n%.800s", resp.Request.URL, resp.StatusCode, body)
	}
	if first := firstRequest(resp).URL.String(); first != appURL+"/orders/1?view=full" {
		t.Errorf("the redirect chain started at %s, want the app's page", first)
	}

	// 2. Sign in: the redirects end on the page asked for, through Caddy,
	// with the identity headers at the app.
	formURL, err := resp.Request.URL.Parse(strings.ReplaceAll(action[1], "&amp;", "&"))
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, formURL.String(), strings.NewReader(url.Values{
		"form_token": {token[1]}, "username": {"alice"}, "password": {"alice-demo"},
	}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", formURL.Scheme+"://"+formURL.Host)
	req.Header.Set("Accept", "text/html")
	resp, err = client.Do(req)
	if err != nil {
		t.Fatalf("POST login form: %v", err)
	}
	checkAnswer(t, resp, readBody(t, resp), http.StatusOK, "", "/orders/1?view=full",
		map[string]string{"X-Auth-Request-User": "alice", "X-Auth-Request-Email": "alice@example.com", "X-Auth-Request-Groups": "staff,admins", "X-Auth-Request-Subject": "*"})
	if at := resp.Request.URL.String(); at != appURL+"/orders/1?view=full" {
		t.Errorf("after sign-in at %s, want %s/orders/1?view=full", at, appURL)
	}
	if !hasCookie(jar, appURL, "__Host-keyward-verify") {
		t.Errorf("no __Host-keyward-verify session cookie for %s after sign-in", appURL)
	}

	// 3. Another page with the session cookie: no redirect.
	resp, body = get("open another page", appURL+"/cart")
	checkAnswer(t, resp, body, http.StatusOK, "", "/cart",
		map[string]string{"X-Auth-Request-User": "alice", "X-Auth-Request-Email": "alice@example.com", "X-Auth-Request-Groups": "staff,admins", "X-Auth-Request-Subject": "*"})
	if resp.Request.Response != nil {
		t.Errorf("GET /cart with a session was redirected (from %s)", firstRequest(resp).URL)
	}

	// 4. A request that does not accept HTML gets 401, not a redirect.
	req, err = http.NewRequestWithContext(t.Context(), http.MethodGet, appURL+"/cart", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /cart without a session, no HTML: %v", err)
	}
	checkAnswer(t, resp, readBody(t, resp), http.StatusUnauthorized, `Bearer realm="keyward"`, "/cart", nil)

	// 5. Sign out: the session cookie is gone and the next visit signs in
	// again.
	resp, body = get("sign out and visit again", appURL+"/oauth2/sign_out?rd=/cart")
	if formActionRE.FindStringSubmatch(body) == nil {
		t.Errorf("after sign-out the visit ended at %s (%d), want the login form", resp.Request.URL, resp.StatusCode)
	}
	if hasCookie(jar, appURL, "__Host-keyward-verify") {
		t.Errorf("session cookie still set after /oauth2/sign_out")
	}
}

// caddyVerifyConfig reads the verify.yaml block of docs/gateways/caddy.md:
// its rules, and its gateway as the header family the handler reads.
func caddyVerifyConfig(t *testing.T) (verify.Rules, verify.Headers) {
	t.Helper()
	var cfg struct {
		Gateway string       `yaml:"gateway"`
		Rules   verify.Rules `yaml:"rules"`
	}
	if err := yaml.Unmarshal([]byte(docBlock(t, "caddy.md", caddyVerifyMarker, "yaml")), &cfg); err != nil {
		t.Fatalf("docs/gateways/caddy.md verify.yaml: %v", err)
	}
	if cfg.Gateway != "caddy" { // keyward verify maps caddy to the X-Forwarded-* family
		t.Fatalf("docs/gateways/caddy.md verify.yaml: gateway %q, want caddy", cfg.Gateway)
	}
	if err := cfg.Rules.Validate(); err != nil {
		t.Fatalf("docs/gateways/caddy.md verify.yaml rules: %v", err)
	}
	return cfg.Rules, verify.HeadersForwarded
}

// docBlock returns the fenced block of language lang after marker in
// docs/gateways/<file>.
func docBlock(t *testing.T, file, marker, lang string) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "gateways", file))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), marker)
	if ok {
		_, rest, ok = strings.Cut(rest, "```"+lang+"\n")
	}
	block, _, closed := strings.Cut(rest, "```")
	if !ok || !closed {
		t.Fatalf("docs/gateways/%s: no %s block after %q", file, lang, marker)
	}
	return block
}

// documentedCaddyfile returns the Caddyfile block after marker in
// docs/gateways/caddy.md with the documented site (site + " {") and
// addresses replaced by the test's, under global options that keep Caddy on
// plain HTTP, on loopback, without its admin endpoint.
func documentedCaddyfile(t *testing.T, marker, site, siteAddr, verifier, app string) string {
	t.Helper()
	conf := docBlock(t, "caddy.md", marker, "caddyfile")
	pairs := []string{site + " {", siteAddr + " {", "127.0.0.1:4180", verifier, "127.0.0.1:3000", app}
	for i := 0; i < len(pairs); i += 2 {
		if !strings.Contains(conf, pairs[i]) {
			t.Fatalf("docs/gateways/caddy.md: the tested block lacks %q, which the test replaces", pairs[i])
		}
	}
	return "{\n\tauto_https off\n\tadmin off\n\tdefault_bind 127.0.0.1\n}\n\n" + strings.NewReplacer(pairs...).Replace(conf)
}

// startCaddy runs `caddy run` with the documented Caddyfile after marker,
// serving siteAddr on listen, and returns its base URL; it is stopped when
// the test ends. Caddy's data and config folders are temporary.
func startCaddy(t *testing.T, bin, marker, site, siteAddr, listen, verifier, app string) string {
	t.Helper()
	dir := t.TempDir()
	caddyfile := documentedCaddyfile(t, marker, site, siteAddr, verifier, app)
	conf := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(conf, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	cmd := exec.Command(bin, "run", "--config", conf, "--adapter", "caddyfile") //nolint:gosec,noctx // G204: the test's own Caddy; stopped by signal below.
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start caddy: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("Caddyfile:\n%s\ncaddy output:\n%s", caddyfile, out.String())
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for {
		var d net.Dialer
		if c, err := d.DialContext(ctx, "tcp", listen); err == nil {
			_ = c.Close()
			return "http://" + listen
		}
		select {
		case err := <-exited:
			t.Fatalf("caddy exited at start: %v\n%s", err, out.String())
		case <-ctx.Done():
			t.Fatalf("caddy did not listen on %s within 10s\n%s", listen, out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// findCaddy returns the caddy binary, or skips (fails under
// KEYWARD_TEST_REQUIRE_ALL=1) when there is none.
func findCaddy(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("caddy"); err == nil {
		return p
	}
	if os.Getenv("KEYWARD_TEST_REQUIRE_ALL") == "1" {
		t.Fatal("caddy not found (apt-get install caddy) and KEYWARD_TEST_REQUIRE_ALL=1")
	}
	t.Skip("caddy not found; install the Debian package caddy to run this test")
	return ""
}

// port returns the port of a host:port address.
func port(t *testing.T, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// loopbackSecureJar treats http://127.0.0.1 as a secure origin, as browsers
// do, so the verifier's Secure __Host- cookies are kept and sent over the
// test's plain-HTTP Caddy.
type loopbackSecureJar struct{ *cookiejar.Jar }

func (j loopbackSecureJar) SetCookies(u *url.URL, cookies []*http.Cookie) {
	j.Jar.SetCookies(secureLoopback(u), cookies)
}

func (j loopbackSecureJar) Cookies(u *url.URL) []*http.Cookie {
	return j.Jar.Cookies(secureLoopback(u))
}

func secureLoopback(u *url.URL) *url.URL {
	if u.Scheme != "http" || u.Hostname() != "127.0.0.1" {
		return u
	}
	c := *u
	c.Scheme = "https"
	return &c
}

// hasCookie reports whether the jar holds the named cookie for u.
func hasCookie(jar *cookiejar.Jar, u, name string) bool {
	pu, err := url.Parse(u)
	if err != nil {
		return false
	}
	for _, c := range jar.Cookies(secureLoopback(pu)) {
		if c.Name == name {
			return true
		}
	}
	return false
}

// firstRequest returns the request that started resp's redirect chain.
func firstRequest(resp *http.Response) *http.Request {
	r := resp.Request
	for r.Response != nil {
		r = r.Response.Request
	}
	return r
}
