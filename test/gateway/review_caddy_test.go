package gateway

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyward/keyward/web/verify"
)

// Security review of the path rules behind Caddy (issue 11, High). Caddy's
// own path matchers (handle, handle_path, path) are case-insensitive, so a
// Caddyfile that routes /admin/* to an admin app sends /ADMIN/users there
// (handle_path even strips the prefix, so the app sees /users), while the
// verifier's rules, case-sensitive by default, judge /ADMIN/users by the
// anonymous "/" rule. docs/gateways/caddy.md says rule paths are
// case-sensitive but not that Caddy's routing is not: without a token, the
// admin app is reached.
func TestReviewCaddyCaseInsensitiveRouting(t *testing.T) {
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
		if resp.StatusCode == http.StatusOK && strings.Contains(body, `"Path":"/users"`) {
			t.Errorf("GET %s without a token through Caddy = 200, and the admin app served %s: the rules judged it by the anonymous / rule while Caddy routed it to /admin/*", p, body)
		}
	}
}
