package gateway

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/keyward/keyward/test/internal/program"
	"github.com/keyward/keyward/web/verify"
)

// nginxRules are the route rules of docs/gateways/nginx.md.
const nginxRules = `
- {host: api.example.com, path: /public/, allow: anonymous}
- {host: api.example.com, path: /orders/, methods: [POST], scopes: {allOf: [orders:write]}}
- {host: api.example.com, path: /orders/, audience: orders-api, scopes: {anyOf: [orders:read]}}
- {host: api.example.com, path: /admin/, groups: {anyOf: [admins]}}
`

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
	verifier := startVerifier(t, b.issuer(), rules, verify.HandlerOptions{})
	app := startApp(t, appHeaders)
	gw := startNginx(t, nginx, docConfigMarker, freeAddr(t), verifier.Listener.Addr().String(), app.Listener.Addr().String())

	const api = "api.example.com"
	spoofed := map[string]string{
		"X-Auth-Request-User": "mallory", "X-Auth-Request-Preferred-Username": "mallory", "X-Auth-Request-Groups": "admins", "X-Auth-Request-Access-Token": "forged", "X-Forwarded-Host": api,
		"X-Original-URI": "/public/x", "X-Original-Method": "GET", "X-Forwarded-Uri": "/public/x", "X-Forwarded-Method": "GET",
	}
	runBearerCases(t, gw, api, append(bearerCases(alice, bob, spoofed),
		bearerCase{name: "no rule for the host", path: "/orders/1", host: "other.example.com", token: alice, status: 403, challenge: `error="insufficient_scope"`},
	))

	// The broker goes away after the verifier has its keys: a token it has
	// never seen still verifies, offline.
	b.srv.Close()
	resp, body := callGateway(t, gw, http.MethodGet, "/orders/2", api, aliceOffline, nil)
	checkAnswer(t, resp, body, http.StatusOK, "", "/orders/2", aliceSeen)
}

// findNginx returns the nginx binary, or skips (fails under
// KEYWARD_TEST_REQUIRE_ALL=1) when there is none.
func findNginx(t *testing.T) string {
	t.Helper()
	return program.Find(t, "nginx", "apt-get install nginx", "/usr/sbin/nginx")
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
	return replaceDocumented(t, "nginx.md", docBlock(t, "nginx.md", marker, "nginx"),
		"listen 80;", "listen "+listen+";", "127.0.0.1:4180", verifier, "127.0.0.1:3000", app)
}

// startNginx runs nginx in the foreground on listen with the documented
// configuration after marker and returns its base URL; it is stopped when
// the test ends.
func startNginx(t *testing.T, bin, marker, listen, verifier, app string) string {
	t.Helper()
	dir := t.TempDir()
	siteConf := documentedConfig(t, marker, listen, verifier, app)
	site := filepath.Join(dir, "site.conf")
	if err := os.WriteFile(site, []byte(siteConf), 0o600); err != nil {
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
	cmd := exec.Command(bin, "-p", dir, "-c", conf, "-e", "stderr") //nolint:gosec,noctx // G204: the test's own nginx; stopped by signal in startProgram.
	return startProgram(t, cmd, listen, siteConf)
}
