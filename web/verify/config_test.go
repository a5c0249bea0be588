package verify

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// problemPaths lists the YAML paths of err's *FieldErrors; an error of
// another type fails the test.
func problemPaths(t *testing.T, err error) []string {
	t.Helper()
	var paths []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("problem %v is not a *FieldError", e)
		}
		paths = append(paths, fe.Path)
	}
	return paths
}

// Validate reports every problem of the file's sections at once, by YAML
// path, and New refuses the same configuration with the same words.
func TestConfigValidateReportsEveryProblemByPath(t *testing.T) {
	cfg := Config{
		Issuer:     "http://sso.example.com",
		Audiences:  []string{"api", " "},
		JWKSURL:    "keys",
		Algorithms: []string{"HS256"},
		Leeway:     2 * time.Minute,
		Cache:      CacheConfig{MaxEntries: -5},
		UserClaim:  "preferred username",
		Revocation: &RevocationConfig{Interval: 100 * time.Millisecond, MaxStaleness: 50 * time.Millisecond, OnStale: "ignore"},
	}
	cfg.SetDefaults()
	err := cfg.Validate()
	want := []string{"issuer", "audience[1]", "jwksURL", "algorithms[0]", "leeway", "userClaim", "cache.maxEntries",
		"revocationFeed.url", "revocationFeed.interval", "revocationFeed.maxStaleness", "revocationFeed.onStale",
		"revocationFeed.clientID", "revocationFeed.clientSecretFile"}
	if got := problemPaths(t, err); !slices.Equal(got, want) {
		t.Errorf("Validate() paths = %q, want %q\n%v", got, want, err)
	}
	_, nerr := New(t.Context(), cfg)
	for _, p := range []string{"issuer: ", "leeway: 2m is too long", "algorithms[0]: \"HS256\" is not supported"} {
		if nerr == nil || !strings.Contains(nerr.Error(), p) {
			t.Errorf("New() = %v, want the problem %q that Validate reports", nerr, p)
		}
	}
	// Only verify.yaml's policy is left out of New: a Go caller may poll
	// faster than once a second and pass the secret itself.
	if nerr != nil && strings.Contains(nerr.Error(), "revocationFeed.interval") {
		t.Errorf("New() = %v, want no poll-interval bound", nerr)
	}
}

func TestConfigSetDefaults(t *testing.T) {
	cfg := Config{Issuer: "https://sso.example.com/", Revocation: &RevocationConfig{}}
	cfg.SetDefaults()
	cfg.SetDefaults() // idempotent
	rc := cfg.Revocation
	if cfg.Issuer != "https://sso.example.com" || !slices.Equal(cfg.Algorithms, DefaultAlgorithms()) || cfg.Leeway != DefaultLeeway ||
		cfg.Cache.MaxEntries != DefaultCacheEntries || cfg.UserClaim != "sub" ||
		rc.URL != "https://sso.example.com/revocations" || rc.Interval != DefaultRevocationInterval ||
		rc.MaxStaleness != DefaultMaxStaleness || rc.OnStale != OnStaleDeny {
		t.Errorf("SetDefaults() = %+v, revocation %+v", cfg, *rc)
	}
	b := BrowserConfig{RedirectURL: "https://shop.example.com/oauth2/callback"}
	b.SetDefaults()
	if !slices.Equal(b.AllowedRedirectDomains, []string{"shop.example.com:443"}) || !slices.Contains(b.Scopes, "offline_access") {
		t.Errorf("BrowserConfig.SetDefaults() = %+v", b)
	}
	if err := (&BrowserConfig{}).Validate(); err == nil || !slices.Equal(problemPaths(t, err), []string{"clientID", "cookieSecretFile", "redirectURL"}) {
		t.Errorf("BrowserConfig{}.Validate() = %v, want clientID, cookieSecretFile and redirectURL", err)
	}
}

func TestGatewayConfig(t *testing.T) {
	for _, tc := range []struct {
		g    GatewayConfig
		want []string
	}{
		{GatewayConfig{Gateway: "haproxy"}, []string{"gateway"}},
		{GatewayConfig{Gateway: "envoy"}, []string{"envoyPrefix"}},
		{GatewayConfig{EnvoyPrefix: "/oauth2/x"}, []string{"envoyPrefix"}},
		{GatewayConfig{EnvoyPrefix: "ext_authz"}, []string{"envoyPrefix"}},
	} {
		tc.g.SetDefaults()
		if err := tc.g.Validate(); err == nil || !slices.Equal(problemPaths(t, err), tc.want) {
			t.Errorf("%+v: Validate() = %v, want problems at %q", tc.g, err, tc.want)
		}
	}
	g := GatewayConfig{Gateway: "envoy", EnvoyPrefix: "/ext_authz", PassAccessToken: true}
	if err := g.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	if o := g.HandlerOptions(); o.Headers != HeadersEnvoy || o.EnvoyPrefix != "/ext_authz" || !o.PassAccessToken {
		t.Errorf("HandlerOptions() = %+v", o)
	}
	var d GatewayConfig
	d.SetDefaults()
	if h, ok := GatewayHeaders(d.Gateway); !ok || h != HeadersNginx {
		t.Errorf("default gateway %q maps to %v, %v; want nginx's headers", d.Gateway, h, ok)
	}
	// The family each guide in docs/gateways relies on: kong.md's
	// pre-function sends nginx's headers, traefik.md and caddy.md the
	// X-Forwarded-* ones.
	for gw, want := range map[string]Headers{
		"nginx": HeadersNginx, "kong": HeadersNginx, "traefik": HeadersForwarded, "caddy": HeadersForwarded, "envoy": HeadersEnvoy,
	} {
		g := GatewayConfig{Gateway: gw}
		if gw == "envoy" {
			g.EnvoyPrefix = "/ext_authz"
		}
		if err := g.Validate(); err != nil {
			t.Errorf("gateway %s: Validate() = %v", gw, err)
		}
		if h := g.HandlerOptions().Headers; h != want {
			t.Errorf("gateway %s reads the %v headers, want %v", gw, h, want)
		}
	}
}
