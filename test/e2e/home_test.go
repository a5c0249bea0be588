package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/test/brokertest"
	"github.com/keyward/keyward/web"
)

// TestHomePage: the broker's root is a small landing page naming the
// issuer, its discovery document and keys, and the version; nothing
// secret. Other unknown paths stay 404.
func TestHomePage(t *testing.T) {
	env := brokertest.New(t, brokertest.Options{
		Dir: t.TempDir(), NoSync: true, Upstreams: 1,
		Clients: []broker.Client{{ID: appID, Name: "The App", Secret: appSecret, RedirectURIs: []string{appRedir}}},
		Web:     func(c *web.Config) { c.Version = "v9.8.7-test" },
	})
	resp, err := http.Get(env.Issuer + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	page := string(body)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET / = %d %s, want 200 HTML", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{
		"<code>" + env.Issuer + "</code>",
		`href="` + env.Issuer + `/.well-known/openid-configuration"`,
		`href="` + env.Issuer + `/keys"`,
		"v9.8.7-test",
		`href="/static/keyward.css"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("landing page lacks %q:\n%s", want, page)
		}
	}
	for _, secret := range []string{appSecret, "cookie-secret", "global-secret"} {
		if strings.Contains(page, secret) {
			t.Errorf("landing page holds a secret (%q)", secret)
		}
	}
	// The links work.
	for _, path := range []string{"/.well-known/openid-configuration", "/keys"} {
		if r, err := http.Get(env.Issuer + path); err != nil || r.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %v %v, want 200", path, r, err)
		} else {
			_ = r.Body.Close()
		}
	}
	if r, err := http.Get(env.Issuer + "/nothing-here"); err != nil || r.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nothing-here = %v %v, want 404", r, err)
	} else {
		_ = r.Body.Close()
	}
}
