package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer collects the demo's output while it runs.
type lockedBuffer struct {
	mu sync.Mutex
	sb strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sb.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sb.String()
}

// TestDemo runs `keyward demo` and signs in as alice through the demo
// identity provider's login form, as a person following the README would:
// the gateway (keyward verify in browser mode) signs her in first, the app
// then signs in silently on Keyward's session; the access token the app shows
// works against the bearer-mode API.
func TestDemo(t *testing.T) {
	appURL, out := startDemo(t)
	for _, want := range []string{"alice / alice-demo", "bob / bob-demo", "/.well-known/openid-configuration",
		`curl -H "Authorization: Bearer $TOKEN" ` + appURL + "/api/whoami", appURL + "/oauth2/sign_out",
		`-H "X-Original-URI: /api/whoami" ` + appURL + "/oauth2/auth",
		"keyward admin deprovision --email bob@example.com"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
	browser, page := signInDemo(t, appURL, "alice", "alice-demo")
	get := func(u string) (*http.Response, string) {
		t.Helper()
		resp, err := browser.Get(u)
		if err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	for _, want := range []string{"alice@example.com", "admins", "at&#43;jwt", "Signed in at the gateway",
		"<dt>X-Auth-Request-Preferred-Username</dt><dd><code>alice</code>"} {
		if !strings.Contains(page, want) {
			t.Errorf("signed-in app page lacks %q", want)
		}
	}

	// The demo API takes the access token the app shows, as the README's
	// curl line does; the gateway's session cookie alone is not enough.
	accessToken := demoAccessToken(t, page)
	api := func(token string) (int, string) { t.Helper(); return demoAPI(t, appURL, token) }
	if code, body := api(accessToken); code != http.StatusOK || !strings.Contains(body, `"preferred-username": "alice"`) || !strings.Contains(body, `"groups": "staff,admins"`) {
		t.Errorf("GET /api/whoami with the token = %d %s, want 200 naming alice", code, body)
	}
	if code, _ := api(""); code != http.StatusUnauthorized {
		t.Errorf("GET /api/whoami without a token = %d, want 401", code)
	}
	if code, _ := api(accessToken[:len(accessToken)-4] + "AAAA"); code != http.StatusUnauthorized {
		t.Errorf("GET /api/whoami with a tampered token = %d, want 401", code)
	}
	if resp, _ := get(appURL + "/api/whoami"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /api/whoami with only the session cookie = %d, want 401", resp.StatusCode)
	}
	// The gateway's forward-auth check answers at /oauth2/auth, as the
	// README's curl line calls it.
	check := func(token, uri string) *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, appURL+"/oauth2/auth", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if uri != "" {
			req.Header.Set("X-Original-URI", uri)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET /oauth2/auth: %v", err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := check(accessToken, "/api/whoami"); resp.StatusCode != http.StatusOK || resp.Header.Get("X-Auth-Request-Preferred-Username") != "alice" {
		t.Errorf("GET /oauth2/auth with the token = %d, X-Auth-Request-Preferred-Username %q; want 200 naming alice", resp.StatusCode, resp.Header.Get("X-Auth-Request-Preferred-Username"))
	}
	if resp := check("", "/api/whoami"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /oauth2/auth without a token = %d, want 401", resp.StatusCode)
	}

	// Signing out of the gateway sends the next visit to sign-in again.
	browser.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, _ := get(appURL + "/oauth2/sign_out")
	if resp.StatusCode != http.StatusFound || !strings.Contains(resp.Header.Get("Location"), "/end_session") {
		t.Fatalf("GET /oauth2/sign_out = %d to %q, want 302 to Keyward's end_session", resp.StatusCode, resp.Header.Get("Location"))
	}
	// Keyward ends its own session and sends the browser back to the
	// gateway's signed-out page, which offers to sign in again.
	if resp, _ := get(resp.Header.Get("Location")); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != appURL+"/oauth2/signed_out" {
		t.Errorf("Keyward end_session = %d to %q, want 303 back to %s/oauth2/signed_out", resp.StatusCode, resp.Header.Get("Location"), appURL)
	}
	if resp, body := get(appURL + "/oauth2/signed_out"); resp.StatusCode != http.StatusOK || !strings.Contains(body, "You are signed out") || !strings.Contains(body, "Sign in again") {
		t.Errorf("GET /oauth2/signed_out = %d, want the signed-out page:\n%s", resp.StatusCode, body)
	}
	if resp, _ := get(appURL + "/"); resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), "/oauth2/start") {
		t.Errorf("GET / after sign-out = %d to %q, want 302 to /oauth2/start", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// TestDemoDeprovision walks the demo's central use case as its banner and
// the README tell it: bob signs in and calls the API with his token;
// `keyward admin deprovision --email bob@example.com`, with no flags, finds
// the running demo; the gateway, polling Keyward's revocation feed, then
// refuses bob's token while alice's still works.
func TestDemoDeprovision(t *testing.T) {
	appURL, out := startDemo(t)
	_, bobPage := signInDemo(t, appURL, "bob", "bob-demo")
	_, alicePage := signInDemo(t, appURL, "alice", "alice-demo")
	bob, alice := demoAccessToken(t, bobPage), demoAccessToken(t, alicePage)
	if code, body := demoAPI(t, appURL, bob); code != http.StatusOK || !strings.Contains(body, `"email": "bob@example.com"`) {
		t.Fatalf("GET /api/whoami with bob's token = %d %s, want 200 naming bob@example.com", code, body)
	}
	if !strings.Contains(out.String(), "Admin API:") {
		t.Errorf("the banner does not say where the admin API is:\n%s", out.String())
	}

	cli, code := runCLI(t, "admin", "deprovision", "--email", "bob@example.com", "--reason", "demo test")
	if code != 0 {
		t.Fatalf("keyward admin deprovision --email bob@example.com = exit %d:\n%s", code, cli)
	}
	// The gateway polls every demoRevocationInterval; a bounded number of
	// tries, each after one interval, must see the refusal.
	status := 0
	for range 30 {
		if status, _ = demoAPI(t, appURL, bob); status == http.StatusUnauthorized {
			break
		}
		time.Sleep(demoRevocationInterval)
	}
	if status != http.StatusUnauthorized {
		t.Fatalf("bob's token after deprovisioning: still %d after 30 polls, want 401", status)
	}
	if code, body := demoAPI(t, appURL, alice); code != http.StatusOK {
		t.Errorf("alice's token after bob's deprovisioning = %d %s, want 200", code, body)
	}
	// keyward admin lists bob as disabled, still without flags.
	if list, code := runCLI(t, "admin", "subjects", "list"); code != 0 || !strings.Contains(list, "bob@example.com") {
		t.Errorf("keyward admin subjects list = exit %d:\n%s", code, list)
	}
}

// Without a running demo and with nothing naming a server, keyward admin
// says so.
func TestAdminWithoutDemo(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	t.Setenv(adminTokenEnv, "")
	out, code := runCLI(t, "admin", "subjects", "list")
	if code != exitFailure || !strings.Contains(out, "no keyward demo is running either") {
		t.Errorf("keyward admin subjects list without a demo = exit %d:\n%s", code, out)
	}
}

// A state file in a folder others can write to is not trusted: it could
// name any file as the token and any server to send it to.
func TestAdminDemoStateNotTrusted(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	t.Setenv(adminTokenEnv, "")
	if err := os.MkdirAll(demoStateDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(demoStatePath(), []byte(`{"server":"http://127.0.0.1:1","tokenFile":"/etc/hostname"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(demoStateDir(), 0o777); err != nil {
		t.Fatal(err)
	}
	out, code := runCLI(t, "admin", "subjects", "list")
	if code != exitFailure || !strings.Contains(out, "can be written by others") {
		t.Errorf("keyward admin with a world-writable state folder = exit %d:\n%s", code, out)
	}
}

// startDemo runs `keyward demo --port 0` until the test ends and returns
// the app's URL and the demo's output. keyward admin finds this demo: its
// state file goes to a folder of the test.
func startDemo(t *testing.T) (string, *lockedBuffer) {
	t.Helper()
	return startDemoLogging(t, demoOptions{port: 0}, io.Discard)
}

// startDemoLogging is startDemo with options o, writing the demo's log to
// logOut.
func startDemoLogging(t *testing.T, o demoOptions, logOut io.Writer) (string, *lockedBuffer) {
	t.Helper()
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	ctx, cancel := context.WithCancel(t.Context())
	out := &lockedBuffer{}
	done := make(chan error, 1)
	go func() { done <- runDemo(ctx, o, out, logOut) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("demo ended with %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("demo did not stop within 15s of Ctrl-C")
		}
		if _, err := os.Stat(demoStatePath()); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the demo left its state file %s behind (%v)", demoStatePath(), err)
		}
	})

	appURL := ""
	re := regexp.MustCompile(`Open the demo app:\s+(\S+)`)
	for deadline := time.Now().Add(20 * time.Second); appURL == ""; time.Sleep(20 * time.Millisecond) {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			appURL = m[1]
		}
		select {
		case err := <-done:
			t.Fatalf("demo stopped early: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo printed no app URL within 20s:\n%s", out.String())
		}
	}
	return appURL, out
}

// signInDemo signs in at the demo app through the identity provider's login
// form, as a person would, and returns the browser and the app's signed-in
// page.
func signInDemo(t *testing.T, appURL, user, password string) (*http.Client, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	get := func(u string) (*http.Response, string) {
		t.Helper()
		resp, err := browser.Get(u)
		if err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	// The gateway sends the browser through Keyward to the identity
	// provider's form.
	resp, body := get(appURL + "/login")
	if hops := redirectChain(resp); !strings.Contains(hops, "/oauth2/start?rd=%2Flogin") {
		t.Errorf("GET /login went %s, want through the gateway's /oauth2/start", hops)
	}
	if !strings.Contains(body, `name="password"`) {
		t.Fatalf("GET /login ended at %s (%d), want the identity provider's login form:\n%.800s", resp.Request.URL, resp.StatusCode, body)
	}
	action := regexp.MustCompile(`<form method="post" action="([^"]+)"`).FindStringSubmatch(body)
	token := regexp.MustCompile(`name="form_token" value="([^"]+)"`).FindStringSubmatch(body)
	if action == nil || token == nil {
		t.Fatalf("login form lacks action or form token:\n%s", body)
	}
	formURL, err := resp.Request.URL.Parse(strings.ReplaceAll(action[1], "&amp;", "&"))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, formURL.String(), strings.NewReader(url.Values{
		"form_token": {token[1]}, "username": {user}, "password": {password},
	}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", formURL.Scheme+"://"+formURL.Host)
	presp, err := browser.Do(req)
	if err != nil {
		t.Fatalf("POST login form: %v", err)
	}
	defer presp.Body.Close()
	page, _ := io.ReadAll(presp.Body)
	// Back at the app, signed in, with the claims of both tokens shown.
	if presp.Request.URL.Host != mustHost(t, appURL) || presp.StatusCode != http.StatusOK {
		t.Fatalf("after the login form: %d at %s, want 200 at the app:\n%.800s", presp.StatusCode, presp.Request.URL, page)
	}
	return browser, string(page)
}

// demoAccessToken is the raw access token the signed-in app page shows.
func demoAccessToken(t *testing.T, page string) string {
	t.Helper()
	m := regexp.MustCompile(`aria-label="Access token, encoded"><code>([^<]+)</code>`).FindStringSubmatch(page)
	if m == nil {
		t.Fatal("the app page shows no raw access token")
	}
	return m[1]
}

// demoAPI calls the demo API with token (none when empty).
func demoAPI(t *testing.T, appURL, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, appURL+"/api/whoami", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /api/whoami: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// redirectChain lists the URLs a response was redirected through.
func redirectChain(resp *http.Response) string {
	var hops []string
	for r := resp.Request; r != nil; {
		hops = append([]string{r.URL.RequestURI()}, hops...)
		if r.Response == nil {
			break
		}
		r = r.Response.Request
	}
	return strings.Join(hops, " → ")
}

func mustHost(t *testing.T, raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// TestDemoIdPOnly runs the identity provider of `keyward demo --idp-only`
// and checks examples/keyward-minimal.yaml against it as the README says:
// check-config --probe passes, and the IdP accepts the file's client ID,
// the secret the README exports, and the broker's callback as redirect URI.
// Only the IdP's port differs from the file (a free one).
func TestDemoIdPOnly(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	idpURL := "http://" + ln.Addr().String()
	t.Setenv(demoUpstreamSecretEnv, "") // the IdP starts before the README's export line
	ctx, cancel := context.WithCancel(t.Context())
	out := &lockedBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- serveDemoIdP(ctx, ln, "http://127.0.0.1:5556", out, slog.New(slog.DiscardHandler))
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("demo IdP ended with %v", err)
		}
	})

	for !strings.Contains(out.String(), "keyward serve -c") { // it reads the variable, then prints
		select {
		case err := <-done:
			done <- err // for the cleanup
			t.Fatalf("demo IdP stopped early: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	example, err := os.ReadFile("../../examples/keyward-minimal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, brokerIssuer := string(example), "http://127.0.0.1:5556"
	if !strings.Contains(cfg, "issuer: http://127.0.0.1:5557") || !strings.Contains(cfg, "issuer: "+brokerIssuer) ||
		!strings.Contains(cfg, "clientID: "+demoUpstreamClient) {
		t.Fatalf("keyward-minimal.yaml does not name the demo IdP (issuer 127.0.0.1:5557, clientID %s) for a broker at %s", demoUpstreamClient, brokerIssuer)
	}
	dir := t.TempDir()
	t.Chdir(dir) // the file's relative paths, as in the README
	writeFile(t, dir, "session-secret", randomSecret()+"\n")
	path := writeFile(t, dir, "keyward-minimal.yaml", strings.Replace(cfg, "http://127.0.0.1:5557", idpURL, 1))
	t.Setenv(demoUpstreamSecretEnv, demoUpstreamSecret) // the README's export line
	t.Setenv("APP_SECRET", "demo-app-secret")
	probe, code := runCLI(t, "check-config", "--probe", "-c", path)
	if code != 0 || !strings.Contains(probe, "probe found 0 errors, 0 warnings") || !strings.Contains(probe, "register "+brokerIssuer+"/callback") {
		t.Errorf("check-config --probe of keyward-minimal.yaml = exit %d:\n%s", code, probe)
	}

	// The IdP shows its form for the file's client and the broker's
	// callback, and takes the client's secret at /token (the made-up code
	// is then what it refuses: invalid_grant, not invalid_client).
	resp, err := http.Get(idpURL + "/authorize?" + url.Values{
		"client_id": {demoUpstreamClient}, "redirect_uri": {brokerIssuer + "/callback"}, "response_type": {"code"},
		"scope": {"openid"}, "state": {"s"}, "nonce": {"n"},
		"code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"},
	}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	form, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(form), `name="password"`) {
		t.Errorf("demo IdP /authorize for the example's client = %d, want its login form:\n%.600s", resp.StatusCode, form)
	}
	tokenErr := func(secret string) string {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, idpURL+"/token", strings.NewReader(url.Values{
			"grant_type": {"authorization_code"}, "code": {"made-up"}, "redirect_uri": {brokerIssuer + "/callback"},
		}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(demoUpstreamClient, secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e struct{ Error string }
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return e.Error
	}
	if got := tokenErr(demoUpstreamSecret); got != "invalid_grant" {
		t.Errorf("demo IdP /token with the README's secret: error %q, want invalid_grant (client accepted)", got)
	}
	if got := tokenErr("wrong"); got != "invalid_client" {
		t.Errorf("demo IdP /token with a wrong secret: error %q, want invalid_client", got)
	}
	for _, want := range []string{"Issuer:                    " + idpURL, "keyward / " + demoUpstreamSecret, "export " + demoUpstreamSecretEnv + "=" + demoUpstreamSecret + " APP_SECRET=", "keyward serve -c examples/keyward-minimal.yaml"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--idp-only output lacks %q:\n%s", want, out.String())
		}
	}
}

// The demo IdP's root, whose URL the demo prints, shows the demo users.
func TestDemoIdPRoot(t *testing.T) {
	h, err := newDemoIdP("http://127.0.0.1:5557", "http://127.0.0.1:5556", "s", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET / = %d %s, want 200 HTML", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{"<code>alice</code>", "<code>alice-demo</code>", "<code>bob</code>", "<code>bob-demo</code>",
		"bob@example.com", "staff, admins", "/.well-known/openid-configuration"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("the demo IdP's root page lacks %q:\n%s", want, body)
		}
	}
	// The IdP's own endpoints are still served.
	if resp, err := http.Get(srv.URL + "/.well-known/openid-configuration"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("discovery = %v %v, want 200", resp, err)
	} else {
		resp.Body.Close()
	}
}
