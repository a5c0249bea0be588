package container

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyward/keyward/store/postgres/pgtest"
	"github.com/keyward/keyward/test/fakeidp"
)

// testServeAndVerify runs `keyward serve` (bbolt on a volume) and `keyward
// verify` from the image tag, as Kubernetes would (read-only root file system,
// the image's user, config and secrets mounted read-only), with host
// networking: the broker answers discovery, /keys, /healthz and /readyz;
// the verifier answers /healthz and has loaded the broker's keys; both stop
// cleanly on SIGTERM.
func testServeAndVerify(t *testing.T, p *podman, tag string) {

	brokerAddr, verifyAddr := freeAddr(t), freeAddr(t)
	brokerURL := "http://" + brokerAddr
	idp := fakeidp.NewTest(t, fakeidp.Config{Clients: []fakeidp.Client{{
		ID: "keyward", Secret: "upstream-secret-0123456789-0123456789", RedirectURIs: []string{brokerURL + "/callback"},
	}}})
	etc := configDir(t, map[string]string{
		"keyward.yaml":   brokerConfig(brokerURL, idp.URL(), "store: {type: bolt, path: /var/lib/keyward/keyward.db}"),
		"session-secret": base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef")),
		"verify.yaml": fmt.Sprintf(`issuer: %s
audience: [app]
listen: %s
rules:
  - {path: /}
logging: {format: text}
`, brokerURL, verifyAddr),
	})
	data := t.TempDir()
	ownByImageUser(t, data, 0o700)
	run := []string{"--network", "host", "--read-only", "-v", etc + ":/etc/keyward:ro"}

	broker := p.start(t, "keyward-broker", append(run, "-v", data+":/var/lib/keyward", tag)...) // the default command: serve
	waitHTTP(t, broker, brokerURL+"/healthz")
	var disc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	getJSON(t, brokerURL+"/.well-known/openid-configuration", &disc)
	if disc.Issuer != brokerURL || disc.JWKSURI != brokerURL+"/keys" {
		t.Errorf("discovery: issuer %q jwks_uri %q, want %q and %q/keys", disc.Issuer, disc.JWKSURI, brokerURL, brokerURL)
	}
	var jwks struct {
		Keys []json.RawMessage `json:"keys"`
	}
	getJSON(t, brokerURL+"/keys", &jwks)
	if len(jwks.Keys) == 0 {
		t.Error("/keys has no key")
	}
	if code, _ := get(t, brokerURL+"/readyz", nil); code != http.StatusOK {
		t.Errorf("GET /readyz = %d, want 200", code)
	}

	verifier := p.start(t, "keyward-verify", append(run, tag, "verify", "-c", "/etc/keyward/verify.yaml")...)
	verifyURL := "http://" + verifyAddr
	waitHTTP(t, verifier, verifyURL+"/healthz")
	// A well-formed token with a kid the broker never published: 401 once
	// the verifier has the broker's key set (503 while it has none).
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","kid":"not-published","typ":"JWT"}`))
	claims := base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"` + brokerURL + `","aud":"app","sub":"x","exp":4102444800}`))
	code, hdr := get(t, verifyURL+"/oauth2/auth", http.Header{
		"X-Original-Uri": {"/"}, "Authorization": {"Bearer " + header + "." + claims + ".c2lnbmF0dXJl"},
	})
	if code != http.StatusUnauthorized || !strings.Contains(hdr.Get("WWW-Authenticate"), "invalid_token") {
		t.Errorf("check with an unknown kid = %d %q, want 401 invalid_token (the verifier loaded the broker's keys)", code, hdr.Get("WWW-Authenticate"))
	}

	for _, c := range []*container{verifier, broker} {
		if err := p.stop(t, c); err != nil {
			t.Errorf("%s: podman run ended with %v after SIGTERM, want a clean exit\n%s", c.name, err, c.output())
		}
	}
	st, err := os.Stat(filepath.Join(data, "keyward.db"))
	if err != nil {
		t.Fatalf("the bolt file on the volume: %v", err)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 && sys.Uid != imageUser {
		t.Errorf("keyward.db belongs to %d, want the image user %d", sys.Uid, imageUser)
	}
}

// testMigrate runs `keyward migrate` from the image tag against a new
// PostgreSQL database: it applies every migration, then finds nothing to do.
func testMigrate(t *testing.T, p *podman, tag string) {
	dsn := pgtest.DSN(t)
	brokerURL := "http://" + freeAddr(t)
	etc := configDir(t, map[string]string{
		"keyward.yaml":   brokerConfig(brokerURL, "http://127.0.0.1:9/upstream", "store: {type: postgres, dsnFile: /etc/keyward/dsn}"),
		"session-secret": base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef")),
		"dsn":            dsn,
	})
	migrate := []string{"run", "--rm", "--network", "host", "--read-only", "-v", etc + ":/etc/keyward:ro", tag, "migrate", "-c", "/etc/keyward/keyward.yaml"}
	if out := p.output(t, migrate...); !strings.Contains(out, "Applied ") || !strings.Contains(out, "Done: ") {
		t.Errorf("first migrate printed %q, want the migrations applied", out)
	}
	if out := p.output(t, migrate...); !strings.Contains(out, "up to date") {
		t.Errorf("second migrate printed %q, want the schema up to date", out)
	}
}

// brokerConfig is a keyward.yaml serving issuer (a loopback URL) with one
// upstream and one client; store is its store line.
func brokerConfig(issuer, upstream, store string) string {
	return fmt.Sprintf(`issuer: %s
listen: %s
sessionSecretFile: /etc/keyward/session-secret
%s
upstreams:
  - id: corp
    issuer: %s
    clientID: keyward
    clientSecret: upstream-secret-0123456789-0123456789
clients:
  - id: app
    secret: app-secret-0123456789-0123456789-abcdef
    redirectURIs: [http://localhost:3000/callback]
logging: {format: text}
`, issuer, strings.TrimPrefix(issuer, "http://"), store, upstream)
}

// configDir writes files (name → content) into a new folder that the
// image's user can read, to mount at /etc/keyward.
func configDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		ownByImageUser(t, path, 0o600)
	}
	ownByImageUser(t, dir, 0o700)
	return dir
}

// ownByImageUser gives path to the image's user with mode, as Kubernetes
// does with fsGroup; without root (rootless podman maps users otherwise) it
// opens path to everyone instead.
func ownByImageUser(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if os.Geteuid() != 0 {
		mode |= (mode & 0o700) >> 3
		mode |= (mode & 0o700) >> 6
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := os.Chown(path, imageUser, imageUser); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// waitHTTP waits until url answers 200, failing the test if c exits first
// or a minute passes.
func waitHTTP(t *testing.T, c *container, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-c.done:
			t.Fatalf("%s exited at start: %v\n%s", c.name, c.err, c.output())
		case <-ctx.Done():
			t.Fatalf("%s did not answer 200 at %s within a minute\n%s", c.name, url, c.output())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// get sends a GET to url with header and returns the status and headers.
func get(t *testing.T, url string, header http.Header) (int, http.Header) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header
}

// getJSON decodes the 200 answer of GET url into v.
func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d, want 200", url, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
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
