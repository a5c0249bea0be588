package gateway

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/keyward/keyward/test/internal/program"
	"github.com/keyward/keyward/web/verify"
)

// TraefikVersion is the Traefik the test runs: .ci/run builds it from its
// Go module into its tools cache as traefik-<version> (docs/gateways/traefik.md).
const traefikVersion = "v3.6.12"

// Markers that precede the tested blocks in docs/gateways/traefik.md: the
// dynamic configuration (file provider), its verify.yaml, and the
// browser-mode dynamic configuration.
const (
	traefikConfigMarker        = "<!-- tested-config:"
	traefikVerifyMarker        = "<!-- tested-verify-config:"
	traefikBrowserConfigMarker = "<!-- tested-browser-config:"
)

// TestTraefikForwardAuth puts a real Traefik, configured as
// docs/gateways/traefik.md says, in front of a test app, with the verifier
// (gateway: traefik, so the X-Forwarded-* family) answering its forwardAuth
// requests and tokens from a real broker.
func TestTraefikForwardAuth(t *testing.T) {
	traefik := findTraefik(t)
	b := newBroker(t)
	alice, bob := b.signIn(t, "alice"), b.signIn(t, "bob")

	rules, family := traefikVerifyConfig(t)
	verifier := startVerifier(t, b.issuer(), rules, verify.HandlerOptions{Headers: family})
	app := startApp(t, appHeaders)
	const api = "api.example.com"
	gw := startTraefik(t, traefik, traefikConfigMarker, freeAddr(t), api, "", verifier.Listener.Addr().String(), app.Listener.Addr().String())

	// forwardAuth passes client headers to the verifier; Traefik sets the
	// X-Forwarded-* it reads itself (trustForwardHeader: false).
	spoofed := map[string]string{
		"X-Auth-Request-User": "mallory", "X-Auth-Request-Preferred-Username": "mallory", "X-Auth-Request-Groups": "admins", "X-Auth-Request-Access-Token": "forged",
		"X-Original-URI": "/public/x", "X-Original-Method": "GET", "X-Forwarded-Uri": "/public/x", "X-Forwarded-Method": "GET",
	}
	runBearerCases(t, gw, api, append(bearerCases(alice, bob, spoofed),
		// The entry point drops X-Forwarded-* from a client it does not
		// trust: the verifier judges the router's host.
		bearerCase{name: "spoofed forwarded host", path: "/orders/1", token: alice, extra: map[string]string{"X-Forwarded-Host": "other.example.com"}, status: 200, headers: aliceSeen},
	))

	// A host with no router never reaches the app: Traefik answers 404.
	t.Run("host with no router", func(t *testing.T) {
		resp, body := callGateway(t, gw, http.MethodGet, "/orders/1", "other.example.com", alice, nil)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("other.example.com: %d %.300q, want Traefik's 404 (the app not reached)", resp.StatusCode, body)
		}
	})
}

// TestTraefikBrowserRedirect runs docs/gateways/traefik.md's browser-mode
// block (the site's host replaced by 127.0.0.1) with an http.Client and a
// cookie jar: sign-in through /oauth2/start, back on the page with the
// identity headers, 401 without HTML, sign-out (checkBrowserRedirect).
func TestTraefikBrowserRedirect(t *testing.T) {
	traefik := findTraefik(t)
	listen := freeAddr(t)
	appURL := "http://" + listen
	b, verifier := startBrowserMode(t, appURL, verify.HeadersForwarded)
	app := startApp(t, identityHeaders)
	startTraefik(t, traefik, traefikBrowserConfigMarker, listen, "127.0.0.1", "shop.example.com",
		verifier.Listener.Addr().String(), app.Listener.Addr().String())
	checkBrowserRedirect(t, b, appURL)
}

// traefikVerifyConfig reads the verify.yaml block of
// docs/gateways/traefik.md: its rules, and its gateway as the header family
// the handler reads.
func traefikVerifyConfig(t *testing.T) (verify.Rules, verify.Headers) {
	t.Helper()
	var cfg struct {
		Gateway string       `yaml:"gateway"`
		Rules   verify.Rules `yaml:"rules"`
	}
	if err := yaml.Unmarshal([]byte(docBlock(t, "traefik.md", traefikVerifyMarker, "yaml")), &cfg); err != nil {
		t.Fatalf("docs/gateways/traefik.md verify.yaml: %v", err)
	}
	if cfg.Gateway != "traefik" {
		t.Fatalf("docs/gateways/traefik.md verify.yaml: gateway %q, want traefik", cfg.Gateway)
	}
	if err := cfg.Rules.Validate(); err != nil {
		t.Fatalf("docs/gateways/traefik.md verify.yaml rules: %v", err)
	}
	h, _ := verify.GatewayHeaders(cfg.Gateway)
	if h != verify.HeadersForwarded {
		t.Fatalf("verify.GatewayHeaders(traefik) = %v, want the X-Forwarded-* family", h)
	}
	return cfg.Rules, h
}

// startTraefik runs Traefik with one entry point, web, on listen and the
// documented dynamic configuration after marker (addresses replaced by the
// test's; the documented host site, when not empty, by host) in its file
// provider, and returns its base URL once the router for host answers; it
// is stopped when the test ends.
func startTraefik(t *testing.T, bin, marker, listen, host, site, verifier, app string) string {
	t.Helper()
	dir := t.TempDir()
	pairs := []string{"127.0.0.1:4180", verifier, "127.0.0.1:3000", app}
	if site != "" {
		pairs = append(pairs, "Host(`"+site+"`)", "Host(`"+host+"`)")
	}
	dynamic := replaceDocumented(t, "traefik.md", docBlock(t, "traefik.md", marker, "yaml"), pairs...)
	file := filepath.Join(dir, "dynamic.yaml")
	if err := os.WriteFile(file, []byte(dynamic), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, //nolint:gosec,noctx // G204: the test's own Traefik; stopped by signal in startProgram.
		"--entryPoints.web.address="+listen,
		"--providers.file.filename="+file,
		"--global.checkNewVersion=false", "--global.sendAnonymousUsage=false",
		"--log.level=INFO")
	cmd.Env = append(os.Environ(), "HOME="+dir)
	gw := startProgram(t, cmd, listen, dynamic)

	// The file provider loads after the entry point listens: until the
	// router exists Traefik answers 404 for every host.
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, gw+"/public/ready", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound {
				return gw
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("Traefik did not route %s within 15s (last: %v)", host, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// findTraefik returns the traefik binary: on PATH, or the one .ci/run
// builds into its tools cache; it skips (fails under
// KEYWARD_TEST_REQUIRE_ALL=1) when there is none.
func findTraefik(t *testing.T) string {
	t.Helper()
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache")
	}
	return program.Find(t, "traefik",
		"go mod download github.com/traefik/traefik/v3@"+traefikVersion+" and build ./cmd/traefik from its module directory, as .ci/run does",
		filepath.Join(cache, "keyward-ci", "tools", "traefik-"+traefikVersion))
}
