package verify

// This file holds the one home of the verifier's configuration rules: the
// defaults (SetDefaults) and the validation by YAML field path (Validate) of
// Config, RevocationConfig and BrowserConfig, which keyward verify's
// verify.yaml decodes into and New and NewBrowser apply.

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/keyward/keyward/cmd/config/field"
	"github.com/keyward/keyward/web/shed"
)

// FieldError is one configuration problem: the YAML field path in
// verify.yaml ("revocationFeed.interval") and what to do about it. It is
// field.Error, the problem type of every configuration section (the
// binary's cmd/config.FieldError is the same type), from the std-only
// helper this leaf may import.
type FieldError = field.Error

// problems collects FieldErrors.
type problems []error

func (p *problems) add(path, format string, args ...any) {
	*p = append(*p, &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (p problems) err() error { return errors.Join(p...) }

// checkURL reports raw at path unless it passes field.CheckURL's rule (the
// one every configured URL follows) with r.
func (p *problems) checkURL(path, raw string, r field.URLRule) {
	if msg := field.CheckURL(raw, r); msg != "" {
		p.add(path, "%s", msg)
	}
}

// fmtDuration formats d without zero units: "2h", "1h30m", "5m", "1m30s".
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// SetDefaults applies the documented defaults of c and of its revocation
// feed (New supplies the dependencies: HTTPClient, Now), and removes a trailing slash from Issuer, as the broker does; calling
// it twice changes nothing.
func (c *Config) SetDefaults() {
	c.Issuer = strings.TrimRight(c.Issuer, "/")
	c.setDefaults()
}

// setDefaults is SetDefaults without the issuer's normalization: New takes a
// Go caller's Issuer as the exact iss.
func (c *Config) setDefaults() {
	if len(c.Algorithms) == 0 {
		c.Algorithms = DefaultAlgorithms()
	}
	if c.Leeway == 0 {
		c.Leeway = DefaultLeeway
	}
	if c.MinRefreshInterval == 0 {
		c.MinRefreshInterval = defaultMinRefresh
	}
	if c.Cache.MaxEntries == 0 {
		c.Cache.MaxEntries = DefaultCacheEntries
	}
	if c.MaxTokenBytes == 0 {
		c.MaxTokenBytes = defaultMaxTokenBytes
	}
	if c.MaxConcurrentVerifications == 0 {
		c.MaxConcurrentVerifications = shed.PerCPU(128, 256)
	}
	if c.UserClaim == "" {
		c.UserClaim = "sub"
	}
	if c.Revocation != nil {
		c.Revocation.SetDefaults(c.Issuer)
	}
}

// Validate reports every problem of c (after SetDefaults) at once, each a
// *FieldError named by its verify.yaml path. It does no I/O.
func (c *Config) Validate() error { return c.validate(true) }

// validate is Validate; with policy false it leaves out what only verify.yaml
// demands (the revocation feed's poll-interval bounds and its client secret
// file), which New does not impose on a Go caller.
func (c *Config) validate(policy bool) error {
	var p problems
	if c.Issuer == "" {
		p.add("issuer", "set it to the issuer URL (https://…)")
	} else {
		p.checkURL("issuer", c.Issuer, field.URLRule{Example: "https://sso.example.com"})
	}
	if len(c.Audiences) == 0 {
		p.add("audience", "at least one is required: list the audiences this verifier accepts, e.g. [orders-api] (the audiences of the broker's clients)")
	}
	for i, a := range c.Audiences {
		if strings.TrimSpace(a) == "" {
			p.add(fmt.Sprintf("audience[%d]", i), "is empty; remove it or name the API")
		}
	}
	if c.JWKSURL != "" {
		p.checkURL("jwksURL", c.JWKSURL, field.URLRule{Query: true, Example: "https://sso.example.com/keys"})
	}
	for i, alg := range c.Algorithms {
		if _, ok := supportedAlgorithms[alg]; !ok {
			p.add(fmt.Sprintf("algorithms[%d]", i), "%q is not supported; use %s", alg, strings.Join(SupportedAlgorithms(), ", "))
		}
	}
	switch {
	case c.Leeway <= 0:
		p.add("leeway", "%s must be positive", fmtDuration(c.Leeway))
	case c.Leeway > MaxLeeway:
		p.add("leeway", "%s is too long; use at most %s", fmtDuration(c.Leeway), fmtDuration(MaxLeeway))
	}
	if c.MinRefreshInterval < 0 {
		p.add("minRefreshInterval", "%s must not be negative", c.MinRefreshInterval)
	}
	if c.MaxTokenBytes < 0 {
		p.add("maxTokenBytes", "%d must not be negative", c.MaxTokenBytes)
	}
	if strings.ContainsFunc(c.UserClaim, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		p.add("userClaim", "%q is not a claim name; use sub (the default), email, or the name of a stable claim such as oid", c.UserClaim)
	}
	if c.MaxConcurrentVerifications < -1 {
		p.add("maxConcurrentVerifications", "%d: use a positive number, or -1 for no limit", c.MaxConcurrentVerifications)
	}
	if c.Cache.MaxEntries < -1 {
		p.add("cache.maxEntries", "%d: use a positive size, or -1 to disable the cache", c.Cache.MaxEntries)
	}
	if c.Revocation != nil {
		c.Revocation.validate(&p, policy)
	}
	return p.err()
}

// The values of RevocationConfig.OnStale.
const (
	OnStaleDeny  = "deny"
	OnStaleAllow = "allow"
)

// verify.yaml's bounds of RevocationConfig.Interval.
const (
	MinRevocationInterval = time.Second
	MaxRevocationInterval = 5 * time.Minute
)

// SetDefaults applies the feed's defaults; issuer is Config.Issuer.
func (rc *RevocationConfig) SetDefaults(issuer string) {
	if rc.URL == "" && issuer != "" {
		rc.URL = strings.TrimRight(issuer, "/") + "/revocations"
	}
	if rc.Interval == 0 {
		rc.Interval = DefaultRevocationInterval
	}
	if rc.MaxStaleness == 0 {
		rc.MaxStaleness = DefaultMaxStaleness
	}
	if rc.OnStale == "" {
		rc.OnStale = OnStaleDeny
	}
}

func (rc *RevocationConfig) validate(p *problems, policy bool) {
	const at = "revocationFeed."
	if rc.URL != "" {
		p.checkURL(at+"url", rc.URL, field.URLRule{Example: "https://sso.example.com/revocations", Why: "the verifier sends its client secret there"})
	}
	switch {
	case rc.Interval <= 0:
		p.add(at+"interval", "%s must be positive (default 5s)", fmtDuration(rc.Interval))
	case policy && rc.Interval < MinRevocationInterval:
		p.add(at+"interval", "%s is too short; poll at most once a second (default 5s)", fmtDuration(rc.Interval))
	case policy && rc.Interval > MaxRevocationInterval:
		p.add(at+"interval", "%s is too long; use at most %s (a revoked token keeps working up to one interval)", fmtDuration(rc.Interval), fmtDuration(MaxRevocationInterval))
	}
	if rc.MaxStaleness <= rc.Interval {
		p.add(at+"maxStaleness", "%s must exceed the interval (%s); a few intervals, e.g. 60s, survive a short broker outage", fmtDuration(rc.MaxStaleness), fmtDuration(rc.Interval))
	}
	if rc.OnStale != OnStaleDeny && rc.OnStale != OnStaleAllow {
		p.add(at+"onStale", "%q: use deny (refuse every token with 503 while the feed is stale: fail closed) or allow (fail open)", rc.OnStale)
	}
	if strings.TrimSpace(rc.ClientID) == "" {
		p.add(at+"clientID", "required; set it to a client listed in revocationFeed.readers of keyward.yaml; only readers may see who was deprovisioned")
	}
	if policy && rc.ClientSecretFile == "" && rc.ClientSecret == "" {
		p.add(at+"clientSecretFile", "name the file holding that client's secret")
	}
}

// SetDefaults applies the browser mode's defaults. AllowedRedirectDomains
// defaults to the host and port of RedirectURL (the scheme's default port
// when it has none), so rd cannot name another port.
func (b *BrowserConfig) SetDefaults() {
	if len(b.AllowedRedirectDomains) == 0 {
		if u, err := url.Parse(b.RedirectURL); err == nil && u.Host != "" {
			b.AllowedRedirectDomains = []string{redirectOrigin(u)}
		}
	}
	if len(b.Scopes) == 0 {
		b.Scopes = slices.Clone(defaultBrowserScopes)
	}
	if b.RefreshBefore <= 0 {
		b.RefreshBefore = 30 * time.Second
	}
	if b.LoginTTL <= 0 {
		b.LoginTTL = 10 * time.Minute
	}
}

// redirectOrigin is the default allowedRedirectDomains entry for the
// callback u (SafeRedirect refuses http for an https callback).
func redirectOrigin(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "443"
		if u.Scheme == "http" {
			port = "80"
		}
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// Validate reports every problem of b at once, each a *FieldError named by
// its path below verify.yaml's browser section. It does no I/O: the secret
// files are the loader's to read.
func (b *BrowserConfig) Validate() error {
	var p problems
	if strings.TrimSpace(b.ClientID) == "" {
		p.add("clientID", "is required; set it to the verifier's client id at the broker (clients[].id in keyward.yaml)")
	}
	if b.CookieSecretFile == "" && b.CookieSecret == nil {
		p.add("cookieSecretFile", "name a file holding 32 random bytes, e.g. head -c32 /dev/urandom | base64 > /etc/keyward/verify-cookie")
	}
	if b.CookieSecret != nil && len(b.CookieSecret) != 32 {
		p.add("cookieSecretFile", "cookie secret: %d bytes, want 32 (AES-256)", len(b.CookieSecret))
	}
	u, _ := url.Parse(b.RedirectURL)
	switch msg := field.CheckURL(b.RedirectURL, field.URLRule{Example: "https://shop.example.com/oauth2/callback", Why: "the session cookie is Secure"}); {
	case b.RedirectURL == "":
		p.add("redirectURL", "set it to the callback as browsers reach it, e.g. https://shop.example.com/oauth2/callback")
	case msg != "":
		p.add("redirectURL", "%s", msg)
	case !strings.HasPrefix(u.Path, "/oauth2/") || slices.Contains([]string{"/oauth2/auth", "/oauth2/start", "/oauth2/sign_out", signedOutPath}, u.Path) || cleanPath(u.Path) != u.Path:
		p.add("redirectURL", "%q: the path must be under /oauth2/ and not auth, start, sign_out or signed_out; use /oauth2/callback", b.RedirectURL)
	}
	for i, d := range b.AllowedRedirectDomains {
		if d == "" || d == "." || strings.ContainsAny(d, "/\\@ *?#") {
			p.add(fmt.Sprintf("allowedRedirectDomains[%d]", i), "%q must be a host (shop.example.com) or .domain (.example.com), without scheme or wildcard", d)
		}
	}
	if len(b.Scopes) > 0 && !slices.Contains(b.Scopes, "openid") {
		p.add("scopes", "must include openid (sign-in needs an ID token)")
	}
	for _, e := range []string{b.AuthURL, b.TokenURL} {
		if e != "" {
			if eu, err := url.Parse(e); err != nil || eu.Host == "" {
				p.add("authURL", "endpoint %q: want an absolute URL", e)
			}
		}
	}
	if (b.AuthURL == "") != (b.TokenURL == "") {
		p.add("authURL", "set both authURL and tokenURL, or neither")
	}
	return p.err()
}

// GatewayConfig is verify.yaml's choice of gateway and what the handler
// answers it (inline at the top of the file); HandlerOptions turns it into
// NewHandler's options.
type GatewayConfig struct {
	// Gateway names the gateway in front: nginx, traefik, caddy, envoy or
	// kong. It decides the only headers trusted to describe the original
	// request (nginx, kong: X-Original-*; traefik, caddy: X-Forwarded-*;
	// envoy: the check request itself). Default: nginx.
	Gateway string `yaml:"gateway,omitempty"`
	// EnvoyPrefix serves Envoy ext_authz (HTTP service) checks under this
	// path; it must equal the path_prefix in Envoy. Empty: off.
	EnvoyPrefix string `yaml:"envoyPrefix,omitempty"`
	// PassAccessToken adds X-Auth-Request-Access-Token (the bearer token) to
	// allowed answers. Default: false.
	PassAccessToken bool `yaml:"passAccessToken,omitempty"`
}

// gatewayHeaders maps each gateway to the header family the handler reads;
// only that family is trusted.
var gatewayHeaders = map[string]Headers{
	"nginx":   HeadersNginx,
	"kong":    HeadersNginx, // docs/gateways/kong.md sends X-Original-*
	"traefik": HeadersForwarded,
	"caddy":   HeadersForwarded,
	"envoy":   HeadersEnvoy,
}

// GatewayHeaders is the header family the handler trusts behind gateway;
// false for a gateway it does not know.
func GatewayHeaders(gateway string) (Headers, bool) {
	h, ok := gatewayHeaders[gateway]
	return h, ok
}

// SetDefaults applies the default gateway, nginx.
func (g *GatewayConfig) SetDefaults() {
	if g.Gateway == "" {
		g.Gateway = "nginx"
	}
}

// reservedPaths are served by the handler itself.
var reservedPaths = []string{"/oauth2", "/healthz"}

// Validate reports every problem of g at once, each a *FieldError named by
// its verify.yaml path.
func (g *GatewayConfig) Validate() error {
	var p problems
	if _, ok := gatewayHeaders[g.Gateway]; !ok {
		p.add("gateway", "%q is not a gateway; use nginx, traefik, caddy, envoy or kong (it decides which headers describe the original request)", g.Gateway)
	}
	e := g.EnvoyPrefix
	switch {
	case e == "" && g.Gateway == "envoy":
		p.add("envoyPrefix", "gateway envoy needs envoyPrefix, e.g. /ext_authz (the path_prefix in Envoy)")
	case e == "":
	case e[0] != '/' || e == "/" || path.Clean(e) != e || strings.ContainsAny(e, "?#% "):
		p.add("envoyPrefix", "%q must be a clean absolute path other than /, e.g. /ext_authz (the path_prefix in Envoy)", e)
	default:
		for _, r := range reservedPaths {
			if e == r || strings.HasPrefix(e, r+"/") || strings.HasPrefix(r, e) {
				p.add("envoyPrefix", "%q overlaps %s, which the verifier serves itself; use e.g. /ext_authz", e, r)
			}
		}
	}
	return p.err()
}

// HandlerOptions is g as NewHandler's options, without browser mode.
func (g GatewayConfig) HandlerOptions() HandlerOptions {
	return HandlerOptions{Headers: gatewayHeaders[g.Gateway], PassAccessToken: g.PassAccessToken, EnvoyPrefix: g.EnvoyPrefix}
}
