package gateway

import (
	"context"
	"encoding/json"
	"fmt"
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
	"gopkg.in/yaml.v3"

	"github.com/keyward/keyward/web/verify"
)

// nginxRules are the route rules of docs/gateways/nginx.md.
const nginxRules = `
- {host: api.example.com, path: /public/, allow: anonymous}
- {host: api.example.com, path: /orders/, methods: [POST], scopes: {allOf: [orders:write]}}
- {host: api.example.com, path: /orders/, audience: orders-api, scopes: {anyOf: [orders:read]}}
- {host: api.example.com, path: /admin/, groups: {anyOf: [admins]}}
`

// seen is what the test app received: the identity headers, by name, and the
// path.
type seen struct {
	Path    string
	Headers map[string]string
}

var identityHeaders = []string{"X-Auth-Request-User", "X-Auth-Request-Email", "X-Auth-Request-Groups", "X-Auth-Request-Subject"}

// appHeaders are the headers the gateway tests' app reports: the identity
// headers plus the access token header, which the verifier sends only with
// passAccessToken and the documented configurations must still keep from
// the client.
var appHeaders = append(append([]string(nil), identityHeaders...), "X-Auth-Request-Access-Token")

// TestNginxAuthRequest puts a real nginx, configured as docs/gateways/nginx.md
// says, in front of a test app, with the verifier answering its auth_request
// subrequests and tokens from a real broker.
func TestNginxAuthRequest(t *testing.T) {
	nginx := findNginx(t)
	b := newBroker(t)
	alice, bob := b.signIn(t, "alice"), b.signIn(t, "bob")
	aliceOffline := b.signIn(t, "alice") // first used once the broker is down

	var rules verify.Rules
	if err := yaml.Unmarshal([]byte(nginxRules), &rules); err != nil {
		t.Fatal(err)
	}
	if err := rules.Validate(); err != nil {
		t.Fatal(err)
	}
	v, err := verify.New(t.Context(), verify.Config{Issuer: b.issuer(), Audiences: []string{apiAudience}})
	if err != nil {
		t.Fatalf("verify.New: %v", err)
	}
	verifier := httptest.NewServer(verify.NewHandler(v, rules, verify.HandlerOptions{}))
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
	gw := startNginx(t, nginx, docConfigMarker, freeAddr(t), verifier.Listener.Addr().String(), app.Listener.Addr().String())

	do := func(t *testing.T, method, path, host, token string, extra map[string]string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, gw+path, nil)
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
	const api = "api.example.com"
	// Headers a client might send to pick its own rule or identity.
	spoofed := map[string]string{
		"X-Auth-Request-User": "mallory", "X-Auth-Request-Groups": "admins", "X-Auth-Request-Access-Token": "forged", "X-Forwarded-Host": api,
		"X-Original-URI": "/public/x", "X-Original-Method": "GET", "X-Forwarded-Uri": "/public/x", "X-Forwarded-Method": "GET",
	}
	tests := []struct {
		name, method, path, host, token string
		extra                           map[string]string
		status                          int
		challenge                       string            // WWW-Authenticate must contain it; "" none expected
		headers                         map[string]string // what the app saw; nil: the app must not be reached
	}{
		{name: "valid token", path: "/orders/1?page=2", token: alice, status: 200,
			headers: map[string]string{"X-Auth-Request-User": "alice", "X-Auth-Request-Email": "alice@example.com", "X-Auth-Request-Groups": "staff,admins", "X-Auth-Request-Subject": "*"}},
		{name: "spoofed identity headers are replaced", path: "/orders/1", token: bob, extra: spoofed, status: 200,
			headers: map[string]string{"X-Auth-Request-User": "bob", "X-Auth-Request-Email": "bob@example.com", "X-Auth-Request-Groups": "staff", "X-Auth-Request-Subject": "*"}},
		{name: "group required", path: "/admin/users", token: alice, status: 200,
			headers: map[string]string{"X-Auth-Request-User": "alice", "X-Auth-Request-Email": "alice@example.com", "X-Auth-Request-Groups": "staff,admins", "X-Auth-Request-Subject": "*"}},
		{name: "no token", path: "/orders/1", status: 401, challenge: `Bearer realm="keyward"`},
		{name: "tampered token", path: "/orders/1", token: tamper(alice), status: 401, challenge: `error="invalid_token"`},
		{name: "garbage token", path: "/orders/1", token: "not-a-jwt", status: 401, challenge: `error="invalid_token"`},
		{name: "spoofed original URI with no token", path: "/orders/1", extra: spoofed, status: 401, challenge: `Bearer realm="keyward"`},
		{name: "lacks group", path: "/admin/users", token: bob, status: 403, challenge: `error="insufficient_scope"`},
		{name: "lacks scope", method: http.MethodPost, path: "/orders/1", token: alice, status: 403, challenge: `error="insufficient_scope"`},
		{name: "spoofed original method", method: http.MethodPost, path: "/orders/1", token: alice, extra: spoofed, status: 403, challenge: `error="insufficient_scope"`},
		{name: "no rule for the path", path: "/reports/", token: alice, status: 403, challenge: `error="insufficient_scope"`},
		{name: "no rule for the host", path: "/orders/1", host: "other.example.com", token: alice, status: 403, challenge: `error="insufficient_scope"`},
		{name: "anonymous", path: "/public/info", status: 200, headers: map[string]string{}},
		{name: "anonymous ignores spoofed identity", path: "/public/info", token: tamper(alice), extra: spoofed, status: 200, headers: map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method, host := tt.method, tt.host
			if method == "" {
				method = http.MethodGet
			}
			if host == "" {
				host = api
			}
			resp, body := do(t, method, tt.path, host, tt.token, tt.extra)
			checkAnswer(t, resp, body, tt.status, tt.challenge, tt.path, tt.headers)
		})
	}

	// The broker goes away after the verifier has its keys: a token it has
	// never seen still verifies, offline.
	b.srv.Close()
	resp, body := do(t, http.MethodGet, "/orders/2", api, aliceOffline, nil)
	checkAnswer(t, resp, body, http.StatusOK, "", "/orders/2",
		map[string]string{"X-Auth-Request-User": "alice", "X-Auth-Request-Email": "alice@example.com", "X-Auth-Request-Groups": "staff,admins", "X-Auth-Request-Subject": "*"})
}

// checkAnswer compares nginx's answer with the expected status, challenge and
// (for 200) the identity headers the app saw; "*" accepts any non-empty value.
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
	for k, v := range headers {
		if v == "*" && s.Headers[k] != "" {
			headers[k] = s.Headers[k]
		}
	}
	if diff := cmp.Diff(headers, s.Headers); diff != "" {
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

// findNginx returns the nginx binary, or skips (fails under
// KEYWARD_TEST_REQUIRE_ALL=1) when there is none.
func findNginx(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	if os.Getenv("KEYWARD_TEST_REQUIRE_ALL") == "1" {
		t.Fatal("nginx not found (apt-get install nginx) and KEYWARD_TEST_REQUIRE_ALL=1")
	}
	t.Skip("nginx not found; install the Debian package nginx to run this test")
	return ""
}

// Markers that precede the tested nginx blocks in docs/gateways/nginx.md:
// bearer tokens, and browser mode.
const (
	docConfigMarker        = "<!-- tested-config:"
	docBrowserConfigMarker = "<!-- tested-browser-config:"
)

// documentedConfig returns the nginx block after marker in
// docs/gateways/nginx.md with the documented addresses replaced by the test's.
func documentedConfig(t *testing.T, marker, listen, verifier, app string) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "gateways", "nginx.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), marker)
	if ok {
		_, rest, ok = strings.Cut(rest, "```nginx\n")
	}
	conf, _, closed := strings.Cut(rest, "```")
	if !ok || !closed {
		t.Fatalf("docs/gateways/nginx.md: no nginx block after %q", marker)
	}
	pairs := []string{"listen 80;", "listen " + listen + ";", "127.0.0.1:4180", verifier, "127.0.0.1:3000", app}
	for i := 0; i < len(pairs); i += 2 {
		if !strings.Contains(conf, pairs[i]) {
			t.Fatalf("docs/gateways/nginx.md: the tested block lacks %q, which the test replaces", pairs[i])
		}
	}
	return strings.NewReplacer(pairs...).Replace(conf)
}

// startNginx runs nginx in the foreground on listen with the documented
// configuration after marker and returns its base URL; it is stopped when
// the test ends.
func startNginx(t *testing.T, bin, marker, listen, verifier, app string) string {
	t.Helper()
	dir := t.TempDir()
	site := filepath.Join(dir, "site.conf")
	if err := os.WriteFile(site, []byte(documentedConfig(t, marker, listen, verifier, app)), 0o600); err != nil {
		t.Fatal(err)
	}
	main := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log stderr notice;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path %[1]s/client_body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    include %[2]s;
}
`, dir, site)
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(main), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd := exec.Command(bin, "-p", dir, "-c", conf, "-e", "stderr") //nolint:gosec,noctx // G204: the test's own nginx; stopped by signal below.
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
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
			t.Logf("nginx.conf site:\n%s\nnginx output:\n%s", documentedConfig(t, marker, listen, verifier, app), stderr.String())
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
			t.Fatalf("nginx exited at start: %v\n%s", err, stderr.String())
		case <-ctx.Done():
			t.Fatalf("nginx did not listen on %s within 10s\n%s", listen, stderr.String())
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

// syncBuffer collects nginx's output while it runs.
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
