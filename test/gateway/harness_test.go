package gateway

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/test/brokertest"
	"github.com/keyward/keyward/web/verify"
)

// The harness shared by the gateway tests: the programs they run, the
// verifier and the app behind the gateway, the documented blocks they read
// and the answers they expect.

// The verifier's client at the broker, for browser mode.
const (
	shopClient = "shop-web"
	shopSecret = "shop-secret-0123456789-0123456789-abcdef"
)

// startProgram starts cmd, a gateway that runs in the foreground, and
// returns its base URL once it accepts connections on listen. When the test
// ends cmd gets SIGTERM (SIGKILL after 10s); if the test failed, conf (its
// configuration) and its output are logged.
func startProgram(t *testing.T, cmd *exec.Cmd, listen, conf string) string {
	t.Helper()
	name := filepath.Base(cmd.Path)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
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
			t.Logf("%s configuration:\n%s\n%s output:\n%s", name, conf, name, out.String())
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
			t.Fatalf("%s exited at start: %v\n%s", name, err, out.String())
		case <-ctx.Done():
			t.Fatalf("%s did not listen on %s within 10s\n%s", name, listen, out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// syncBuffer collects a program's output while it runs.
type syncBuffer struct {
	mu sync.Mutex
	sb strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sb.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sb.String()
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

// replaceDocumented replaces in block, a block of docs/gateways/<file>, each
// pairs[i] by pairs[i+1], failing the test when the block lacks one.
func replaceDocumented(t *testing.T, file, block string, pairs ...string) string {
	t.Helper()
	for i := 0; i < len(pairs); i += 2 {
		if !strings.Contains(block, pairs[i]) {
			t.Fatalf("docs/gateways/%s: the tested block lacks %q, which the test replaces", file, pairs[i])
		}
	}
	return strings.NewReplacer(pairs...).Replace(block)
}

// startVerifier serves the verifier of the broker at issuer, for
// apiAudience, with rules.
func startVerifier(t *testing.T, issuer string, rules verify.Rules, opts verify.HandlerOptions) *httptest.Server {
	t.Helper()
	v, err := verify.New(t.Context(), verify.Config{Issuer: issuer, Audiences: []string{apiAudience}})
	if err != nil {
		t.Fatalf("verify.New: %v", err)
	}
	srv := httptest.NewServer(verify.NewHandler(v, rules, opts))
	t.Cleanup(srv.Close)
	return srv
}

// startBrowserMode starts a broker that knows the shop client, for an app
// at appURL, and a verifier that signs browsers in to every path of it
// with that client, reading the gateway's request headers as headers says.
func startBrowserMode(t *testing.T, appURL string, headers verify.Headers) (*brokerEnv, *httptest.Server) {
	t.Helper()
	return startBrowserModeWith(t, appURL, headers, brokertest.Options{})
}

// startBrowserModeWith is startBrowserMode with the broker started from
// opts, to which the orders and shop clients are added.
func startBrowserModeWith(t *testing.T, appURL string, headers verify.Headers, opts brokertest.Options) (*brokerEnv, *httptest.Server) {
	t.Helper()
	opts.Clients = append(opts.Clients, ordersClient, broker.Client{
		ID: shopClient, Secret: shopSecret, RedirectURIs: []string{appURL + "/oauth2/callback"},
		PostLogoutRedirectURIs: []string{appURL + "/cart"},
		Scopes:                 []string{"openid", "email", "profile", "groups", "offline_access"},
		Audiences:              []string{apiAudience},
	})
	b := startBroker(t, opts)
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
	srv := httptest.NewServer(verify.NewHandler(v, rules, verify.HandlerOptions{Headers: headers, Browser: br}))
	t.Cleanup(srv.Close)
	return b, srv
}

// seen is what the test app received: the identity headers, by name, and the
// path.
type seen struct {
	Path    string
	Headers map[string]string
}

var identityHeaders = []string{
	"X-Auth-Request-User", "X-Auth-Request-Preferred-Username", "X-Auth-Request-Email", "X-Auth-Request-Groups", "X-Auth-Request-Subject",
}

// appHeaders are the headers the gateway tests' app reports: the identity
// headers plus the access token header, which the verifier sends only with
// passAccessToken and the documented configurations must still keep from
// the client.
var appHeaders = append(append([]string(nil), identityHeaders...), "X-Auth-Request-Access-Token")

// startApp serves the app behind the gateway: it answers every request
// with what it saw (a seen, as JSON) of headers.
func startApp(t *testing.T, headers []string) *httptest.Server {
	t.Helper()
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := seen{Path: r.URL.Path, Headers: map[string]string{}}
		for _, h := range headers {
			if vs, ok := r.Header[h]; ok {
				s.Headers[h] = strings.Join(vs, "|")
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s)
	}))
	t.Cleanup(app.Close)
	return app
}

// callGateway sends method path to the gateway at base with Host host, the
// bearer token (none when empty) and the extra headers, and returns the
// answer and its body.
func callGateway(t *testing.T, base, method, path, host, token string, extra map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
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

// bearerCase is one request to a gateway in bearer-token mode and the
// answer it must get.
type bearerCase struct {
	name, method, path, host, token string // method GET and the test's host when empty
	extra                           map[string]string
	status                          int
	challenge                       string            // WWW-Authenticate must contain it; "" none expected
	headers                         map[string]string // what the app saw; nil: the app must not be reached
}

// aliceSeen and bobSeen are the identity headers the app must see for
// alice and bob; "*" is any non-empty value. X-Auth-Request-User is the
// subject (the verifier's default userClaim), the login name travels as
// -Preferred-Username.
var (
	aliceSeen = map[string]string{
		"X-Auth-Request-User": "*", "X-Auth-Request-Preferred-Username": "alice", "X-Auth-Request-Email": "alice@example.com",
		"X-Auth-Request-Groups": "staff,admins", "X-Auth-Request-Subject": "*",
	}
	bobSeen = map[string]string{
		"X-Auth-Request-User": "*", "X-Auth-Request-Preferred-Username": "bob", "X-Auth-Request-Email": "bob@example.com",
		"X-Auth-Request-Groups": "staff", "X-Auth-Request-Subject": "*",
	}
)

// bearerCases are the answers every documented bearer-token configuration
// must give, for the rules of docs/gateways (orders need orders:read, or
// orders:write to POST; /admin/ needs the admins group; /public/ is
// anonymous). alice and bob are their access tokens; spoofed are the
// headers a client might send to pick its own rule or identity.
func bearerCases(alice, bob string, spoofed map[string]string) []bearerCase {
	return []bearerCase{
		{name: "valid token", path: "/orders/1?page=2", token: alice, status: 200, headers: aliceSeen},
		{name: "spoofed identity headers are replaced", path: "/orders/1", token: bob, extra: spoofed, status: 200, headers: bobSeen},
		{name: "group required", path: "/admin/users", token: alice, status: 200, headers: aliceSeen},
		{name: "no token", path: "/orders/1", status: 401, challenge: `Bearer realm="keyward"`},
		{name: "tampered token", path: "/orders/1", token: tamper(alice), status: 401, challenge: `error="invalid_token"`},
		{name: "garbage token", path: "/orders/1", token: "not-a-jwt", status: 401, challenge: `error="invalid_token"`},
		{name: "spoofed original URI with no token", path: "/orders/1", extra: spoofed, status: 401, challenge: `Bearer realm="keyward"`},
		{name: "lacks group", path: "/admin/users", token: bob, status: 403, challenge: `error="insufficient_scope"`},
		{name: "lacks scope", method: http.MethodPost, path: "/orders/1", token: alice, status: 403, challenge: `error="insufficient_scope"`},
		{name: "spoofed original method", method: http.MethodPost, path: "/orders/1", token: alice, extra: spoofed, status: 403, challenge: `error="insufficient_scope"`},
		{name: "no rule for the path", path: "/reports/", token: alice, status: 403, challenge: `error="insufficient_scope"`},
		{name: "anonymous", path: "/public/info", status: 200, headers: map[string]string{}},
		{name: "anonymous ignores spoofed identity", path: "/public/info", token: tamper(alice), extra: spoofed, status: 200, headers: map[string]string{}},
		// Paths a backend may route elsewhere than the rules read them
		// (Werkzeug decodes %2F after splitting; Tomcat drops ";…" and then
		// resolves ".."): refused, never cleaned onto the anonymous /public/.
		{name: "encoded slash climbs out of /admin", path: "/admin/..%2Fpublic/x", status: 403,
			challenge: `error="invalid_request", error_description="request path has a dot segment (. or ..)"`},
		{name: "encoded slash climbs out of /admin with a token", path: "/admin/..%2Fpublic/x", token: bob, status: 403,
			challenge: `error="invalid_request", error_description="request path has a dot segment (. or ..)"`},
		{name: "semicolon path parameter hides a dot-dot", path: "/public/..;/admin/users", token: bob, status: 403,
			challenge: `error="invalid_request", error_description="request path has a semicolon"`},
	}
}

// runBearerCases sends each case to the gateway at base, as a subtest.
func runBearerCases(t *testing.T, base, host string, cases []bearerCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			method, h := tt.method, tt.host
			if method == "" {
				method = http.MethodGet
			}
			if h == "" {
				h = host
			}
			resp, body := callGateway(t, base, method, tt.path, h, tt.token, tt.extra)
			checkAnswer(t, resp, body, tt.status, tt.challenge, tt.path, tt.headers)
		})
	}
}

// checkAnswer compares the gateway's answer with the expected status,
// challenge and (headers not nil) the path and identity headers the app
// saw; "*" accepts any non-empty value.
func checkAnswer(t *testing.T, resp *http.Response, body string, status int, challenge, path string, headers map[string]string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status = %d, want %d; body: %.300s", resp.StatusCode, status, body)
	}
	got := resp.Header.Values("WWW-Authenticate")
	switch {
	case challenge == "" && len(got) > 0:
		t.Errorf("WWW-Authenticate = %q, want none", got)
	case challenge != "" && (len(got) != 1 || !strings.Contains(got[0], challenge)):
		t.Errorf("WWW-Authenticate = %q, want one containing %s", got, challenge)
	}
	if headers == nil {
		return
	}
	var s seen
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatalf("the app did not answer: %v; body: %.300s", err, body)
	}
	if p, _, _ := strings.Cut(path, "?"); s.Path != p {
		t.Errorf("the app saw path %q, want %q", s.Path, p)
	}
	want := maps.Clone(headers)
	for k, v := range want {
		if v == "*" && s.Headers[k] != "" {
			want[k] = s.Headers[k]
		}
	}
	if diff := cmp.Diff(want, s.Headers); diff != "" {
		t.Errorf("identity headers at the app (-want +got):\n%s", diff)
	}
}

// tamper changes one character of the payload, keeping it valid base64url.
func tamper(token string) string {
	i := strings.IndexByte(token, '.') + 5
	c := byte('A')
	if token[i] == 'A' {
		c = 'B'
	}
	return token[:i] + string(c) + token[i+1:]
}
