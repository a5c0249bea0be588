package main

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/federation"
	"github.com/keyward/keyward/web"
)

const scimTestToken = "scim-token-0123456789-0123456789-abcdef"

// TestSCIMSectionValidate: each entry by its path, and what spans
// sections (the upstream exists, once, and is not GitHub).
func TestSCIMSectionValidate(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"valid", "scim:\n  - upstream: corp\n    tokenFile: /etc/keyward/scim-corp\n", nil},
		{"env token", "scim:\n  - upstream: corp\n    token: ${SESSION}\n", nil},
		{"unknown upstream", "scim:\n  - upstream: nope\n    tokenFile: /x\n", []string{"scim[0].upstream"}},
		{"twice", "scim:\n  - upstream: corp\n    tokenFile: /x\n  - upstream: corp\n    tokenFile: /y\n", []string{"scim[1].upstream"}},
		{"no token, bad attribute", "scim:\n  - upstream: corp\n    subjectAttribute: mail\n", []string{"scim[0].tokenFile", "scim[0].subjectAttribute"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustParse(t, validYAML+tt.yaml)
			var got []string
			if err := c.Validate(); err != nil {
				got = errorPaths(t, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Validate() paths (-want +got):\n%s", diff)
			}
		})
	}
	c := mustParse(t, validYAML+"scim:\n  - upstream: corp\n    tokenFile: /x\n")
	if c.SCIM[0].SubjectAttribute != broker.SCIMSubjectExternalID {
		t.Errorf("default subjectAttribute = %q, want externalId", c.SCIM[0].SubjectAttribute)
	}
}

func TestSCIMTokenFile(t *testing.T) {
	dir := t.TempDir()
	c := mustParse(t, validYAML+"scim:\n  - upstream: corp\n    tokenFile: "+writeFile(t, dir, "scim", scimTestToken+"\n")+"\n    groups: true\n")
	c.Upstreams[1].ClientSecretFile = writeFile(t, dir, "google", "google-secret\n")
	sec, err := c.ResolveSecrets()
	if err != nil {
		t.Fatalf("ResolveSecrets() = %v", err)
	}
	want := []broker.SCIMConfig{{Upstream: "corp", Token: scimTestToken, SubjectAttribute: "externalId", Groups: true}}
	if diff := cmp.Diff(want, sec.SCIM); diff != "" {
		t.Errorf("Secrets.SCIM (-want +got):\n%s", diff)
	}
	c.SCIM[0].TokenFile = writeFile(t, dir, "short", "short\n")
	if _, err := c.ResolveSecrets(); err == nil || !strings.Contains(err.Error(), "scim[0].tokenFile") {
		t.Errorf("ResolveSecrets(short token file) = %v, want a scim[0].tokenFile problem", err)
	}
}

// TestSCIMEntraWarning: check-config warns when an Entra ID upstream has
// SCIM on but its subject is not oid, and not once it is.
func TestSCIMEntraWarning(t *testing.T) {
	c := mustParse(t, validYAML+"scim:\n  - upstream: corp\n    tokenFile: /x\n")
	c.Upstreams[0].Profile = federation.ProfileAzureAD
	if w := c.scimWarnings(); len(w) != 1 || !strings.Contains(w[0], "claimMapping.subject") {
		t.Errorf("scimWarnings() = %q, want one about claimMapping.subject", w)
	}
	c.Upstreams[0].Claims.Subject = "oid"
	if w := c.scimWarnings(); len(w) != 0 {
		t.Errorf("scimWarnings() with subject oid = %q, want none", w)
	}
}

// TestServeMountsSCIM: serve's assembly answers /scim/v2/{upstream} for an
// upstream in the scim section, with its token only, and 404 elsewhere.
func TestServeMountsSCIM(t *testing.T) {
	dir := t.TempDir()
	cfgPath, _ := keysTestConfig(t, dir, strings.Repeat("s", 40))
	data, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	tokenPath := writeFile(t, dir, "scim-token", scimTestToken+"\n")
	cfgPath = writeFile(t, dir, "keyward.yaml", string(data)+"scim:\n  - {upstream: corp, tokenFile: "+tokenPath+"}\n")
	cfg, sec, err := loadConfigFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := build(t.Context(), cfg, sec, slog.New(slog.DiscardHandler), http.DefaultTransport, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.close()
	for _, tt := range []struct {
		path, token string
		want        int
	}{
		{"/scim/v2/corp/ServiceProviderConfig", scimTestToken, http.StatusOK},
		{"/scim/v2/corp/Users", scimTestToken, http.StatusOK},
		{"/scim/v2/corp/Users", "wrong", http.StatusUnauthorized},
		{"/scim/v2/other/Users", scimTestToken, http.StatusNotFound},
	} {
		req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:5556"+tt.path, nil)
		req.RemoteAddr = "127.0.0.1:40000"
		req.Header.Set("Authorization", "Bearer "+tt.token)
		rec := httptest.NewRecorder()
		inst.handler.ServeHTTP(rec, req)
		if rec.Code != tt.want || rec.Header().Get("Content-Type") != "application/scim+json" {
			t.Errorf("GET %s (token %s) = %d %s, want %d application/scim+json", tt.path, tt.token, rec.Code, rec.Header().Get("Content-Type"), tt.want)
		}
	}
}

// TestAdminCLIRotatesSCIMToken: `keyward admin scim rotate-token` prints a
// new token that the SCIM endpoint then accepts, the configured one still
// working until the next rotation; an upstream without provisioning fails.
func TestAdminCLIRotatesSCIMToken(t *testing.T) {
	e := newAdminTestEnv(t)
	prov, h, err := buildSCIM(e.env.Broker, e.env.Store, e.env.Issuer, []broker.SCIMConfig{{Upstream: "corp", Token: scimTestToken, SubjectAttribute: "externalId"}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(web.NewAdmin(web.AdminConfig{Broker: e.env.Broker, Keys: e.env.Keys, SCIM: prov, Token: []byte(cliAdminToken)}))
	t.Cleanup(api.Close)
	e.server = api.URL
	status := func(token string) int {
		req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1/scim/v2/corp/Users", nil)
		req.RemoteAddr = "127.0.0.1:40000"
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	out, code := e.admin(t, "scim", "rotate-token", "corp", "--reason", "yearly")
	if code != 0 {
		t.Fatalf("rotate-token = %d: %s", code, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	token := lines[len(lines)-1]
	if status(token) != http.StatusOK || status(scimTestToken) != http.StatusOK {
		t.Errorf("after the rotation: new token %d, configured token %d; want 200, 200", status(token), status(scimTestToken))
	}
	if out, code := e.admin(t, "scim", "rotate-token", "corp"); code != 0 {
		t.Fatalf("second rotate-token = %d: %s", code, out)
	}
	if status(scimTestToken) != http.StatusUnauthorized || status(token) != http.StatusOK {
		t.Errorf("after two rotations: configured token %d, first new token %d; want 401, 200", status(scimTestToken), status(token))
	}
	if out, code := e.admin(t, "scim", "rotate-token", "partner"); code == 0 || !strings.Contains(out, "no SCIM provisioning") {
		t.Errorf("rotate-token of an upstream without provisioning = %d: %s; want a failure naming it", code, out)
	}
	if out, _ := e.admin(t, "audit", "tail"); !strings.Contains(out, broker.ActionRotateSCIMToken) || strings.Contains(out, token) {
		t.Errorf("audit after the rotations:\n%s\nwant the rotation, never the token", out)
	}
}
