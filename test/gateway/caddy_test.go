package gateway

import (
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/keyward/keyward/test/internal/program"
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
	verifier := startVerifier(t, b.issuer(), rules, verify.HandlerOptions{Headers: family})
	app := startApp(t, appHeaders)
	const api = "api.example.com"
	listen := freeAddr(t)
	gw := startCaddy(t, caddy, caddyConfigMarker, api, "http://"+api+":"+port(t, listen), listen,
		verifier.Listener.Addr().String(), app.Listener.Addr().String())

	// Caddy passes client headers through unless told otherwise.
	spoofed := map[string]string{
		"X-Auth-Request-User": "mallory", "X-Auth-Request-Preferred-Username": "mallory", "X-Auth-Request-Groups": "admins", "X-Auth-Request-Access-Token": "forged",
		"X-Original-URI": "/public/x", "X-Original-Method": "GET", "X-Forwarded-Uri": "/public/x", "X-Forwarded-Method": "GET",
	}
	runBearerCases(t, gw, api, append(bearerCases(alice, bob, spoofed),
		// Caddy replaces X-Forwarded-Host from a client it does not trust:
		// the verifier judges the site's host, not the client's pick.
		bearerCase{name: "spoofed forwarded host", path: "/orders/1", token: alice, extra: map[string]string{"X-Forwarded-Host": "other.example.com"}, status: 200, headers: aliceSeen},
	))

	// A host with no site block never reaches the app: Caddy answers an
	// empty 200 itself, whatever the token.
	t.Run("host with no site block", func(t *testing.T) {
		resp, body := callGateway(t, gw, http.MethodGet, "/orders/1", "other.example.com", alice, nil)
		if resp.StatusCode != http.StatusOK || body != "" {
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
	b, verifier := startBrowserMode(t, appURL, verify.HeadersForwarded)
	app := startApp(t, identityHeaders)
	startCaddy(t, caddy, caddyBrowserConfigMarker, "shop.example.com", appURL, listen,
		verifier.Listener.Addr().String(), app.Listener.Addr().String())

	checkBrowserRedirect(t, b, appURL)
}

// checkBrowserRedirect drives browser mode through the gateway serving the
// app at appURL, with an http.Client and a cookie jar instead of a browser:
// a page request without a session is redirected through /oauth2/start to
// the upstream's login form; after signing in the client is back on the
// page it asked for, and the app sees the identity headers; a request that
// does not accept HTML gets 401; /oauth2/sign_out ends the session.
func checkBrowserRedirect(t *testing.T, b *brokerEnv, appURL string) {
	t.Helper()
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
	req := loginFormRequest(t, resp, body, "alice")
	if first := firstRequest(resp).URL.String(); first != appURL+"/orders/1?view=full" {
		t.Errorf("the redirect chain started at %s, want the app's page", first)
	}

	// 2. Sign in: the redirects end on the page asked for, through Caddy,
	// with the identity headers at the app.
	req.Header.Set("Accept", "text/html")
	resp, err = client.Do(req)
	if err != nil {
		t.Fatalf("POST login form: %v", err)
	}
	checkAnswer(t, resp, readBody(t, resp), http.StatusOK, "", "/orders/1?view=full", aliceSeen)
	if at := resp.Request.URL.String(); at != appURL+"/orders/1?view=full" {
		t.Errorf("after sign-in at %s, want %s/orders/1?view=full", at, appURL)
	}
	if !hasCookie(jar, appURL, "__Host-keyward-verify") {
		t.Errorf("no __Host-keyward-verify session cookie for %s after sign-in", appURL)
	}

	// 3. Another page with the session cookie: no redirect.
	resp, body = get("open another page", appURL+"/cart")
	checkAnswer(t, resp, body, http.StatusOK, "", "/cart", aliceSeen)
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
	h, _ := verify.GatewayHeaders(cfg.Gateway)
	if h != verify.HeadersForwarded {
		t.Fatalf("verify.GatewayHeaders(caddy) = %v, want the X-Forwarded-* family", h)
	}
	return cfg.Rules, h
}

// documentedCaddyfile returns the Caddyfile block after marker in
// docs/gateways/caddy.md with the documented site (site + " {") and
// addresses replaced by the test's, under global options that keep Caddy on
// plain HTTP, on loopback, without its admin endpoint.
func documentedCaddyfile(t *testing.T, marker, site, siteAddr, verifier, app string) string {
	t.Helper()
	conf := replaceDocumented(t, "caddy.md", docBlock(t, "caddy.md", marker, "caddyfile"),
		site+" {", siteAddr+" {", "127.0.0.1:4180", verifier, "127.0.0.1:3000", app)
	return "{\n\tauto_https off\n\tadmin off\n\tdefault_bind 127.0.0.1\n}\n\n" + conf
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
	cmd := exec.Command(bin, "run", "--config", conf, "--adapter", "caddyfile") //nolint:gosec,noctx // G204: the test's own Caddy; stopped by signal in startProgram.
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	return startProgram(t, cmd, listen, caddyfile)
}

// findCaddy returns the caddy binary, or skips (fails under
// KEYWARD_TEST_REQUIRE_ALL=1) when there is none.
func findCaddy(t *testing.T) string {
	t.Helper()
	return program.Find(t, "caddy", "apt-get install caddy")
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

// TestCaddyCaseInsensitiveRoutingRefused (issue 11 review): Caddy's own
// path matchers (handle, handle_path, path) are case-insensitive, so a
// Caddyfile that routes /admin/* to an admin app sends /ADMIN/users there
// (handle_path even strips the prefix, so the app sees /users), while a
// case-sensitive "/admin/" rule does not match it. The verifier must not
// judge it by the anonymous "/" rule: without a token, the admin app must
// not be reached.
func TestCaddyCaseInsensitiveRoutingRefused(t *testing.T) {
	caddy := findCaddy(t)
	b := newBroker(t)
	rules := verify.Rules{
		{Path: "/admin/", Groups: verify.Set{AnyOf: []string{"admins"}}},
		{Path: "/", Allow: verify.AllowAnonymous},
	}
	verifier := startVerifier(t, b.issuer(), rules, verify.HandlerOptions{Headers: verify.HeadersForwarded})
	adminApp, publicApp := startApp(t, nil), startApp(t, nil)
	listen := freeAddr(t)
	caddyfile := "{\n\tauto_https off\n\tadmin off\n\tdefault_bind 127.0.0.1\n}\n\n" +
		"http://api.example.com:" + port(t, listen) + " {\n\troute {\n" +
		"\t\tforward_auth " + verifier.Listener.Addr().String() + " {\n\t\t\turi /oauth2/auth\n\t\t}\n" +
		"\t\thandle_path /admin/* {\n\t\t\treverse_proxy " + adminApp.Listener.Addr().String() + "\n\t\t}\n" +
		"\t\thandle {\n\t\t\treverse_proxy " + publicApp.Listener.Addr().String() + "\n\t\t}\n\t}\n}\n"
	dir := t.TempDir()
	conf := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(conf, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(caddy, "run", "--config", conf, "--adapter", "caddyfile") //nolint:gosec,noctx // the test's own Caddy
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	gw := startProgram(t, cmd, listen, caddyfile)

	// The lower-case path is guarded.
	if resp, body := callGateway(t, gw, http.MethodGet, "/admin/users", "api.example.com", "", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET /admin/users without a token = %d %.200q, want 401", resp.StatusCode, body)
	}
	for _, p := range []string{"/ADMIN/users", "/Admin/users"} {
		resp, body := callGateway(t, gw, http.MethodGet, p, "api.example.com", "", nil)
		if resp.StatusCode != http.StatusForbidden || strings.Contains(body, `"Path":"/users"`) {
			t.Errorf("GET %s without a token through Caddy = %d %.200q, want 403 (ambiguous path): Caddy routes it to /admin/*", p, resp.StatusCode, body)
		}
	}
}
