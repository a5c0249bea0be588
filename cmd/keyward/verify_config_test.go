package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyward/keyward/web/verify"
)

// validVerifyYAML is a small valid verify.yaml that the Validate cases edit.
const validVerifyYAML = `
issuer: https://sso.example.com/
audience: [orders-api]
rules:
  - {path: /public/, allow: anonymous}
  - {path: /orders/, audience: orders-api, scopes: {anyOf: [orders:read]}}
  - {path: /admin/, groups: {anyOf: [admins]}}
`

func mustParseVerify(t *testing.T, data string) *VerifyConfig {
	t.Helper()
	c, err := parseVerifyConfig([]byte(data))
	if err != nil {
		t.Fatalf("parseVerifyConfig() = %v", err)
	}
	return c
}

func TestVerifyConfigDefaults(t *testing.T) {
	c := mustParseVerify(t, validVerifyYAML)
	got := verifyConfigSummary{c.Issuer, c.Listen, c.Algorithms, time.Duration(c.Leeway), c.Cache.MaxEntries, c.Logging}
	want := verifyConfigSummary{"https://sso.example.com", "127.0.0.1:4180", []string{"RS256", "ES256", "EdDSA"}, 30 * time.Second, 10000, LoggingConfig{Level: "info", Format: "json"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	wantRules := verify.Rules{
		{Path: "/public/", Allow: "anonymous"},
		{Path: "/orders/", Audience: "orders-api", Scopes: verify.Set{AnyOf: []string{"orders:read"}}},
		{Path: "/admin/", Groups: verify.Set{AnyOf: []string{"admins"}}},
	}
	if diff := cmp.Diff(wantRules, c.Rules); diff != "" {
		t.Errorf("rules (-want +got):\n%s", diff)
	}
	vc := c.Config
	if vc.Issuer != c.Issuer || vc.Leeway != 30*time.Second || vc.Cache.MaxEntries != 10000 || len(vc.Audiences) != 1 {
		t.Errorf("verifyConfig() = %+v", vc)
	}
}

type verifyConfigSummary struct {
	Issuer, Listen string
	Algorithms     []string
	Leeway         time.Duration
	CacheEntries   int
	Logging        LoggingConfig
}

func TestVerifyValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(c *VerifyConfig)
		want []string
	}{
		{"valid", func(*VerifyConfig) {}, nil},
		{"loopback http issuer", func(c *VerifyConfig) { c.Issuer = "http://127.0.0.1:5556" }, nil},
		{"no issuer", func(c *VerifyConfig) { c.Issuer = "" }, []string{"issuer"}},
		{"http issuer", func(c *VerifyConfig) { c.Issuer = "http://sso.example.com" }, []string{"issuer"}},
		{"no audience", func(c *VerifyConfig) { c.Audiences = nil }, []string{"audience"}},
		{"empty audience", func(c *VerifyConfig) { c.Audiences = []string{"a", " "} }, []string{"audience[1]"}},
		{"listen", func(c *VerifyConfig) { c.Listen = "4180" }, []string{"listen"}},
		{"jwks url", func(c *VerifyConfig) { c.JWKSURL = "/keys" }, []string{"jwksURL"}},
		{"http jwks url", func(c *VerifyConfig) { c.JWKSURL = "http://sso.example.com/keys" }, []string{"jwksURL"}},
		{"loopback jwks url", func(c *VerifyConfig) { c.JWKSURL = "http://localhost:5556/keys" }, nil},
		{"algorithms", func(c *VerifyConfig) { c.Algorithms = []string{"RS256", "HS256", "none"} }, []string{"algorithms[1]", "algorithms[2]"}},
		{"leeway", func(c *VerifyConfig) { c.Leeway = time.Duration(2 * time.Minute) }, []string{"leeway"}},
		{"negative leeway", func(c *VerifyConfig) { c.Leeway = time.Duration(-time.Second) }, []string{"leeway"}},
		{"cache off", func(c *VerifyConfig) { c.Cache.MaxEntries = -1 }, nil},
		{"cache size", func(c *VerifyConfig) { c.Cache.MaxEntries = -2 }, []string{"cache.maxEntries"}},
		{"envoy prefix", func(c *VerifyConfig) { c.EnvoyPrefix = "/ext_authz" }, nil},
		{"envoy prefix relative", func(c *VerifyConfig) { c.EnvoyPrefix = "ext_authz" }, []string{"envoyPrefix"}},
		{"envoy prefix root", func(c *VerifyConfig) { c.EnvoyPrefix = "/" }, []string{"envoyPrefix"}},
		{"envoy prefix unclean", func(c *VerifyConfig) { c.EnvoyPrefix = "/ext/../authz/" }, []string{"envoyPrefix"}},
		{"envoy prefix reserved", func(c *VerifyConfig) { c.EnvoyPrefix = "/oauth2/envoy" }, []string{"envoyPrefix"}},
		{"no rules", func(c *VerifyConfig) { c.Rules = nil }, []string{"rules"}},
		{"bad rules", func(c *VerifyConfig) {
			c.Rules[0].Scopes.AnyOf = []string{"x"}
			c.Rules[2].Path = "admin"
		}, []string{"rules[0]", "rules[2]"}},
		{"browser rule without browser", func(c *VerifyConfig) { c.Rules[2].Browser = true }, []string{"rules[2].browser"}},
		{"browser", func(c *VerifyConfig) { c.Rules[2].Browser, c.Browser = true, validBrowser() }, nil},
		{"browser public loopback", func(c *VerifyConfig) {
			c.Browser = validBrowser()
			c.Browser.ClientSecretFile, c.Browser.RedirectURL = "", "http://127.0.0.1:5558/oauth2/callback"
		}, nil},
		{"browser empty", func(c *VerifyConfig) { c.Browser = &verify.BrowserConfig{} },
			[]string{"browser.clientID", "browser.cookieSecretFile", "browser.redirectURL"}},
		{"browser http redirect", func(c *VerifyConfig) {
			c.Browser = validBrowser()
			c.Browser.RedirectURL = "http://shop.example.com/oauth2/callback"
		}, []string{"browser.redirectURL"}},
		{"browser redirect path", func(c *VerifyConfig) {
			c.Browser = validBrowser()
			c.Browser.RedirectURL = "https://shop.example.com/callback"
		}, []string{"browser.redirectURL"}},
		{"browser redirect reserved", func(c *VerifyConfig) {
			c.Browser = validBrowser()
			c.Browser.RedirectURL = "https://shop.example.com/oauth2/auth"
		}, []string{"browser.redirectURL"}},
		{"user claim", func(c *VerifyConfig) { c.UserClaim = "oid" }, nil},
		{"user claim with a space", func(c *VerifyConfig) { c.UserClaim = "preferred username" }, []string{"userClaim"}},
		{"browser domains and scopes", func(c *VerifyConfig) {
			c.Browser = validBrowser()
			c.Browser.AllowedRedirectDomains = []string{"ok.example.com", "*.example.com", "https://x"}
			c.Browser.Scopes = []string{"email"}
		}, []string{"browser.allowedRedirectDomains[1]", "browser.allowedRedirectDomains[2]", "browser.scopes"}},
		{"gateway", func(c *VerifyConfig) { c.Gateway = "haproxy" }, []string{"gateway"}},
		{"gateway envoy needs prefix", func(c *VerifyConfig) { c.Gateway = "envoy" }, []string{"envoyPrefix"}},
		{"gateway envoy", func(c *VerifyConfig) { c.Gateway, c.EnvoyPrefix = "envoy", "/ext_authz" }, nil},
		{"logging", func(c *VerifyConfig) { c.Logging = LoggingConfig{Level: "trace", Format: "xml"} }, []string{"logging.level", "logging.format"}},
		{"metrics on listen", func(c *VerifyConfig) { c.Metrics.Listen = c.Listen }, []string{"metrics.listen"}},
		{"revocation feed", func(c *VerifyConfig) { c.Revocation = validRevocationFeed(c.Issuer) }, nil},
		{"revocation feed empty", func(c *VerifyConfig) {
			c.Revocation = &verify.RevocationConfig{}
			c.Revocation.SetDefaults(c.Issuer)
		}, []string{"revocationFeed.clientID", "revocationFeed.clientSecretFile"}},
		{"revocation feed bad values", func(c *VerifyConfig) {
			c.Revocation = validRevocationFeed(c.Issuer)
			c.Revocation.URL = "http://sso.example.com/revocations"
			c.Revocation.Interval = time.Duration(100 * time.Millisecond)
			c.Revocation.OnStale = "ignore"
		}, []string{"revocationFeed.url", "revocationFeed.interval", "revocationFeed.onStale"}},
		{"revocation feed staleness", func(c *VerifyConfig) {
			c.Revocation = validRevocationFeed(c.Issuer)
			c.Revocation.Interval, c.Revocation.MaxStaleness = time.Duration(30*time.Second), time.Duration(30*time.Second)
		}, []string{"revocationFeed.maxStaleness"}},
		{"revocation feed long interval", func(c *VerifyConfig) {
			c.Revocation = validRevocationFeed(c.Issuer)
			c.Revocation.Interval, c.Revocation.MaxStaleness = time.Duration(time.Hour), time.Duration(2*time.Hour)
		}, []string{"revocationFeed.interval"}},
		{"revocation feed relative url", func(c *VerifyConfig) {
			c.Revocation = validRevocationFeed(c.Issuer)
			c.Revocation.URL = "/revocations"
		}, []string{"revocationFeed.url"}},
		{"many at once", func(c *VerifyConfig) {
			c.Issuer, c.Audiences, c.Algorithms, c.Rules = "", nil, []string{"HS256"}, nil
		}, []string{"issuer", "audience", "algorithms[0]", "rules"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := mustParseVerify(t, validVerifyYAML)
			tt.edit(c)
			err := c.Validate()
			if diff := cmp.Diff(tt.want, errorPaths(t, err)); diff != "" {
				t.Errorf("Validate() = %v\npaths (-want +got):\n%s", err, diff)
			}
		})
	}
}

func validRevocationFeed(issuer string) *verify.RevocationConfig {
	f := &verify.RevocationConfig{ClientID: "edge", ClientSecretFile: "/etc/keyward/edge-secret"}
	f.SetDefaults(issuer)
	return f
}

func TestVerifyRevocationFeedConfig(t *testing.T) {
	c := mustParseVerify(t, validVerifyYAML+"revocationFeed: {clientID: edge, clientSecretFile: /x}\n")
	want := &verify.RevocationConfig{URL: "https://sso.example.com/revocations", Interval: 5 * time.Second,
		MaxStaleness: time.Minute, OnStale: "deny", ClientID: "edge", ClientSecretFile: "/x"}
	if diff := cmp.Diff(want, c.Revocation); diff != "" {
		t.Errorf("revocationFeed defaults (-want +got):\n%s", diff)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate() = %v", err)
	}
	if _, err := c.revocationConfig(); err == nil || !strings.Contains(err.Error(), "revocationFeed.clientSecretFile") {
		t.Errorf("revocationConfig() with a missing secret file = %v, want a revocationFeed.clientSecretFile problem", err)
	}

	dir := t.TempDir()
	c = mustParseVerify(t, validVerifyYAML+`revocationFeed:
  url: https://feed.example.com/revocations
  interval: 2s
  maxStaleness: 30s
  onStale: allow
  clientID: edge
  clientSecretFile: `+writeFile(t, dir, "secret", "s3cret\n")+"\n")
	rc, err := c.revocationConfig()
	if err != nil {
		t.Fatal(err)
	}
	wantRC := &verify.RevocationConfig{URL: "https://feed.example.com/revocations", Interval: 2 * time.Second,
		MaxStaleness: 30 * time.Second, OnStale: verify.OnStaleAllow, ClientID: "edge", ClientSecret: "s3cret",
		ClientSecretFile: rc.ClientSecretFile}
	if diff := cmp.Diff(wantRC, rc); diff != "" {
		t.Errorf("revocationConfig() (-want +got):\n%s", diff)
	}
	if rc, err := mustParseVerify(t, validVerifyYAML).revocationConfig(); rc != nil || err != nil {
		t.Errorf("revocationConfig() without the section = %v, %v; want nil, nil", rc, err)
	}
	if _, err := parseVerifyConfig([]byte(validVerifyYAML + "revocationFeed: {clientId: edge}\n")); err == nil ||
		!strings.Contains(err.Error(), "revocationFeed.clientId: unknown field") {
		t.Errorf("misspelt field = %v, want an unknown-field error with its path", err)
	}
}

func validBrowser() *verify.BrowserConfig {
	return &verify.BrowserConfig{
		ClientID: "shop-web", ClientSecretFile: "/etc/keyward/shop-web-secret", CookieSecretFile: "/etc/keyward/verify-cookie",
		RedirectURL: "https://shop.example.com/oauth2/callback",
	}
}

// TestVerifyHandlerOptions reads the browser secrets and maps the gateway
// to its header family.
func TestVerifyHandlerOptions(t *testing.T) {
	dir := t.TempDir()
	c := mustParseVerify(t, validVerifyYAML+"gateway: traefik\n")
	c.Browser = validBrowser()
	c.Browser.CookieSecretFile = writeFile(t, dir, "cookie", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n")
	c.Browser.ClientSecretFile = writeFile(t, dir, "secret", "s3cret\n")
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	v, err := verify.New(t.Context(), c.Config)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := c.handlerOptions(v)
	if err != nil || opts.Headers != verify.HeadersForwarded || opts.Browser == nil {
		t.Errorf("handlerOptions() = %+v, %v; want the forwarded family and a browser", opts, err)
	}
	c.Browser.CookieSecretFile = writeFile(t, dir, "short", "too-short\n")
	if _, err := c.handlerOptions(v); err == nil || !strings.Contains(err.Error(), "browser.cookieSecretFile") {
		t.Errorf("handlerOptions() with a short cookie secret = %v, want a browser.cookieSecretFile problem", err)
	}
}

func TestVerifyReservedFields(t *testing.T) {
	tests := []struct{ yaml, want string }{
		{"headers:\n  X-Auth-Request-User: email\n", "headers: the identity headers are not configurable yet;"},
	}
	for _, tt := range tests {
		c := mustParseVerify(t, validVerifyYAML+tt.yaml)
		if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("Validate() with %q = %v, want %s…", tt.yaml, err, tt.want)
		}
	}
}

func TestLoadVerifyConfigErrors(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"unknown field", "isuer: x\n", []string{"line 1: isuer: unknown field; check its spelling and place (see examples/verify.yaml)"}},
		{"unknown rule field", "rules:\n  - path: /\n    scope: {anyOf: [a]}\n", []string{"line 3: rules[0].scope: unknown field"}},
		{"unknown set field", "rules:\n  - {path: /, groups: {oneOf: [a]}}\n", []string{"line 2: rules[0].groups.oneOf: unknown field"}},
		{"bad leeway", "leeway: 30\n", []string{`line 1: leeway: "30" is not a duration`}},
		{"audience not a list", "audience: {a: b}\n", []string{"line 1: audience: got a mapping, want a list"}},
		{"empty", "", []string{"the file is empty; start from examples/verify.yaml"}},
		{"two documents", "issuer: a\n---\nissuer: b\n", []string{"line 2: a second YAML document"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseVerifyConfig([]byte(tt.yaml))
			errs := splitErrors(err)
			if len(errs) != len(tt.want) {
				t.Fatalf("parseVerifyConfig() = %v, want %d problems", err, len(tt.want))
			}
			for i, e := range errs {
				if !strings.HasPrefix(e.Error(), tt.want[i]) {
					t.Errorf("problem %d = %q, want prefix %q", i, e, tt.want[i])
				}
			}
		})
	}
}

// A duration of web/verify's (time.Duration) reads 0 as config.Duration
// does: unset, so the default applies.
func TestVerifyZeroDurationIsTheDefault(t *testing.T) {
	c := mustParseVerify(t, validVerifyYAML+"leeway: 0\nrevocationFeed: {clientID: edge, clientSecretFile: /x, interval: 0}\n")
	if c.Leeway != verify.DefaultLeeway || c.Revocation.Interval != verify.DefaultRevocationInterval {
		t.Errorf("leeway, interval = %s, %s; want the defaults", c.Leeway, c.Revocation.Interval)
	}
}

func TestVerifyExample(t *testing.T) {
	c, err := LoadVerifyConfig(filepath.Join("..", "..", "examples", "verify.yaml"))
	if err != nil {
		t.Fatalf("LoadVerifyConfig() = %v", err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	if len(c.Audiences) != 2 || len(c.Rules) != 5 || c.Metrics.Listen == "" || c.Browser == nil || !c.Rules[4].Browser {
		t.Errorf("example: %d audiences, %d rules, metrics %q, browser %v; want 2, 5, an address and a browser rule",
			len(c.Audiences), len(c.Rules), c.Metrics.Listen, c.Browser)
	}
}

func TestCheckVerifyConfig(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "verify.yaml", validVerifyYAML)
	var out bytes.Buffer
	if err := checkVerifyConfig(good, &out); err != nil || out.String() != good+": OK (1 audience, 3 rules)\n" {
		t.Errorf("checkVerifyConfig() = %v, output %q", err, out.String())
	}

	bad := writeFile(t, dir, "bad.yaml", strings.Replace(validVerifyYAML, "https://sso", "http://sso", 1)+"leeway: 5m\n")
	out.Reset()
	err := checkVerifyConfig(bad, &out)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if err == nil || err.Error() != bad+": 2 problems" || len(lines) != 2 ||
		!strings.HasPrefix(lines[0], bad+": issuer: ") || lines[1] != bad+": leeway: 5m is too long; use at most 1m" {
		t.Errorf("checkVerifyConfig() = %v, output:\n%s", err, out.String())
	}

	// The command's --check flag runs the same check.
	cmd := newRootCommand()
	out.Reset()
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"verify", "--check", "-c", good})
	if err := cmd.Execute(); err != nil || !strings.HasSuffix(out.String(), ": OK (1 audience, 3 rules)\n") {
		t.Errorf("keyward verify --check = %v, output %q", err, out.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Fatal("missing.yaml exists")
	}
	cmd.SetArgs([]string{"verify", "--check", "-c", filepath.Join(dir, "missing.yaml")})
	if err := cmd.Execute(); err == nil {
		t.Error("keyward verify --check on a missing file succeeded")
	}
}

// TestVerifyBrowserDefaultRedirectDomains: without allowedRedirectDomains, rd
// may name the callback's host only on the callback's port and scheme, never
// another port of the same host. Sign-out, with no
// end_session_endpoint to go to, redirects straight to an accepted rd.
func TestVerifyBrowserDefaultRedirectDomains(t *testing.T) {
	issuer := httptest.NewServer(http.NotFoundHandler()) // no discovery: sign-out goes to rd
	t.Cleanup(issuer.Close)
	dir := t.TempDir()
	c := mustParseVerify(t, strings.Replace(validVerifyYAML, "https://sso.example.com/", issuer.URL, 1))
	c.Browser = validBrowser()
	c.Browser.CookieSecretFile = writeFile(t, dir, "cookie", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n")
	c.Browser.ClientSecretFile = writeFile(t, dir, "secret", "s3cret\n")
	c.Browser.AllowedRedirectDomains = nil
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	v, err := verify.New(t.Context(), c.Config)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := c.handlerOptions(v)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(verify.NewHandler(v, c.Rules, opts))
	t.Cleanup(srv.Close)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for rd, want := range map[string]string{
		"https://shop.example.com/cart":     "https://shop.example.com/cart",
		"https://shop.example.com:443/cart": "https://shop.example.com:443/cart",
		"https://shop.example.com:8443/x":   "/", // another port of the same host
		"http://shop.example.com/x":         "/", // port 80, and not https
		"https://evil.example.com/":         "/",
		"/cart":                             "/cart",
	} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/oauth2/sign_out?rd="+url.QueryEscape(rd), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if got := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || got != want {
			t.Errorf("sign_out?rd=%s = %d to %q, want 302 to %q", rd, resp.StatusCode, got, want)
		}
	}
}
