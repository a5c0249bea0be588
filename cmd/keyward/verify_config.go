package main

// This file holds the shape of verify.yaml, the configuration of
// `keyward verify`: loading (LoadVerifyConfig), defaults and validation.

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/keyward/keyward/cmd/config"
	"github.com/keyward/keyward/web/httpserver"
	"github.com/keyward/keyward/web/loopback"
	"github.com/keyward/keyward/web/verify"
)

// VerifyConfig is the shape of verify.yaml. LoadVerifyConfig reads it and
// applies the defaults; Validate checks it without I/O; buildVerifier turns
// it into a verify.Config. Keys are camelCase and durations Go durations, as
// in keyward.yaml. examples/verify.yaml documents every field.
type VerifyConfig struct {
	// Issuer is the broker's issuer URL, exactly as its tokens carry it in
	// iss: https, or http on a loopback host. A trailing slash is removed,
	// as the broker does. Required.
	Issuer string `yaml:"issuer"`
	// Audience lists the APIs this verifier protects: a token's aud must
	// contain at least one. A rule's audience narrows it per route. Required.
	Audience []string `yaml:"audience"`
	// Listen is the host:port of the forward-auth endpoint.
	// Default: 127.0.0.1:4180.
	Listen string `yaml:"listen,omitempty"`
	// JWKSURL is where the signing keys are. Default: the jwks_uri of the
	// issuer's discovery document.
	JWKSURL string `yaml:"jwksURL,omitempty"`
	// Algorithms is the allowlist of signing algorithms, from
	// verify.SupportedAlgorithms. Default: verify.DefaultAlgorithms.
	Algorithms []string `yaml:"algorithms,omitempty"`
	// Leeway is the clock skew allowed for exp, nbf and iat; at most 1m.
	// Default: 30s.
	Leeway Duration `yaml:"leeway,omitempty"`
	// Cache sizes the cache of verified tokens.
	Cache VerifyCacheConfig `yaml:"cache,omitempty"`
	// UserClaim names the token claim sent as X-Auth-Request-User. sub (the
	// default) is stable; email counts only when email_verified is true;
	// preferred_username and name can be changed by their owner upstream
	// and are sent as X-Auth-Request-Preferred-Username anyway. A token
	// without the claim is denied (403). Default: sub (verify.Config's).
	UserClaim string `yaml:"userClaim,omitempty"`
	// PassAccessToken adds X-Auth-Request-Access-Token (the bearer token) to
	// allowed answers. Default: false.
	PassAccessToken bool `yaml:"passAccessToken,omitempty"`
	// Gateway names the gateway in front: nginx, traefik, caddy, envoy or
	// kong. It decides the only headers trusted to describe the original
	// request (nginx, kong: X-Original-*; traefik, caddy: X-Forwarded-*;
	// envoy: the check request itself). Default: nginx.
	Gateway string `yaml:"gateway,omitempty"`
	// EnvoyPrefix serves Envoy ext_authz (HTTP service) checks under this
	// path; it must equal the path_prefix in Envoy. Empty: off.
	EnvoyPrefix string `yaml:"envoyPrefix,omitempty"`
	// Rules decide per host, path and method; the first match wins and no
	// match denies (403). At least one is required.
	Rules verify.Rules `yaml:"rules"`
	// Browser turns on sign-in at the edge for rules with browser: true.
	// Omitted: bearer tokens only.
	Browser *VerifyBrowserConfig `yaml:"browser,omitempty"`
	// RevocationFeed polls the broker's revocation feed, so that the tokens
	// of deprovisioned people and ended sessions are refused before they
	// expire. Omitted: off.
	RevocationFeed *VerifyRevocationFeedConfig `yaml:"revocationFeed,omitempty"`
	Logging        LoggingConfig               `yaml:"logging,omitempty"`
	Metrics        MetricsConfig               `yaml:"metrics,omitempty"`
	// MaxConnections caps the connections each listener (listen, metrics)
	// holds open at once; further clients wait until one closes.
	// Default: 4096 (web/httpserver).
	MaxConnections int `yaml:"maxConnections,omitempty"`

	// Reserved: accepted by the parser so that Validate can say what to do
	// instead of "unknown field".
	Headers yaml.Node `yaml:"headers,omitempty"`
}

// VerifyCacheConfig sizes the verified-token cache.
type VerifyCacheConfig struct {
	// MaxEntries is how many verified tokens are kept (until their exp), so
	// a repeated token costs no signature check; -1 disables the cache.
	// Default: 10000.
	MaxEntries int `yaml:"maxEntries,omitempty"`
}

const defaultVerifyListen = "127.0.0.1:4180"

// LoadVerifyConfig reads the verify.yaml at path. It refuses unknown fields,
// applies the defaults and reads no other file. Each problem is one joined
// error, prefixed with path and the line. As LoadConfig, it returns the
// config with the problems when only some values did not decode.
func LoadVerifyConfig(path string) (*VerifyConfig, error) {
	data, err := os.ReadFile(path) //nolint:gosec // G304: the operator names the file.
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, err := parseVerifyConfig(data)
	if err != nil {
		return c, prefixEach(path, withFile(err, path))
	}
	return c, nil
}

func parseVerifyConfig(data []byte) (*VerifyConfig, error) {
	var c VerifyConfig
	if err := decodeStrict(data, &c, kindVerify); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, explainYAMLError(data, err, kindVerify)
		}
		c.withDefaults()
		return &c, explainYAMLError(data, err, kindVerify)
	}
	c.withDefaults()
	return &c, nil
}

func (c *VerifyConfig) withDefaults() {
	c.Issuer = strings.TrimRight(c.Issuer, "/")
	setDefault(&c.Listen, defaultVerifyListen)
	setDefault(&c.Gateway, "nginx")
	setDefaults(&c.Algorithms, verify.DefaultAlgorithms()...)
	setDefault(&c.Leeway, Duration(verify.DefaultLeeway))
	setDefault(&c.Cache.MaxEntries, verify.DefaultCacheEntries)
	setDefault(&c.Logging.Level, "info")
	setDefault(&c.Logging.Format, "json")
	if c.RevocationFeed != nil {
		c.RevocationFeed.withDefaults(c.Issuer)
	}
}

// Validate checks the loaded config and reports every problem at once, each
// naming the field path and the fix. It does no I/O: the key set is fetched
// when the verifier starts.
func (c *VerifyConfig) Validate() error {
	var p problems
	p.CheckURL("issuer", c.Issuer)
	if len(c.Audience) == 0 {
		p.Add("audience", "list the audiences this verifier accepts, e.g. [orders-api] (the audiences of the broker's clients)")
	}
	for i, a := range c.Audience {
		if strings.TrimSpace(a) == "" {
			p.Add(fmt.Sprintf("audience[%d]", i), "is empty; remove it or name the API")
		}
	}
	checkListen(&p, "listen", c.Listen)
	if c.JWKSURL != "" {
		checkJWKSURL(&p, "jwksURL", c.JWKSURL)
	}
	for i, alg := range c.Algorithms {
		if supported := verify.SupportedAlgorithms(); !slices.Contains(supported, alg) {
			p.Add(fmt.Sprintf("algorithms[%d]", i), "%q is not supported; use %s", alg, strings.Join(supported, ", "))
		}
	}
	p.CheckDuration("leeway", c.Leeway, verify.MaxLeeway)
	if strings.ContainsFunc(c.UserClaim, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		p.Add("userClaim", "%q is not a claim name; use sub (the default), email, or the name of a stable claim such as oid", c.UserClaim)
	}
	if c.Cache.MaxEntries < -1 {
		p.Add("cache.maxEntries", "%d: use a positive size, or -1 to disable the cache", c.Cache.MaxEntries)
	}
	if err := httpserver.ValidateMaxConnections(c.MaxConnections); err != nil {
		p.Add("maxConnections", "%v", err)
	}
	c.validateGateway(&p)
	c.validateEnvoyPrefix(&p)
	c.validateRules(&p)
	c.validateBrowser(&p)
	c.validateRevocationFeed(&p)
	if c.Headers.Kind != 0 {
		p.Add("headers", "the identity headers are not configurable yet; remove headers (the verifier sends X-Auth-Request-User: the userClaim, default sub; -Preferred-Username; -Email when verified; -Groups, comma-joined; -Subject); to choose the user claim set userClaim")
	}
	validateLoggingMetrics(&p, c.Logging, c.Metrics, c.Listen)
	return p.Err()
}

// checkJWKSURL requires an absolute https URL (http on loopback).
func checkJWKSURL(p *problems, path, raw string) {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		p.Add(path, "%q must be an https URL with a host, e.g. https://sso.example.com/keys", raw)
	case u.Scheme == "http" && !loopback.Host(u.Hostname()):
		p.Add(path, "%q %s", raw, config.HTTPSHint)
	}
}

// reservedVerifyPaths are served by the handler itself.
var reservedVerifyPaths = []string{"/oauth2", "/healthz"}

func (c *VerifyConfig) validateEnvoyPrefix(p *problems) {
	e := c.EnvoyPrefix
	if e == "" {
		return
	}
	if e[0] != '/' || e == "/" || path.Clean(e) != e || strings.ContainsAny(e, "?#% ") {
		p.Add("envoyPrefix", "%q must be a clean absolute path other than /, e.g. /ext_authz (the path_prefix in Envoy)", e)
		return
	}
	for _, r := range reservedVerifyPaths {
		if e == r || strings.HasPrefix(e, r+"/") || strings.HasPrefix(r, e) {
			p.Add("envoyPrefix", "%q overlaps %s, which the verifier serves itself; use e.g. /ext_authz", e, r)
		}
	}
}

// validateRules reports verify.Rules.Validate's problems as field errors
// (rules[2]: …).
func (c *VerifyConfig) validateRules(p *problems) {
	for _, err := range splitErrors(c.Rules.Validate()) {
		field, msg, ok := strings.Cut(err.Error(), ": ")
		if !ok {
			field, msg = "rules", err.Error()
		}
		if field == "rules" && len(c.Rules) == 0 {
			msg = "add at least one rule, e.g. {path: /, audience: my-api}; a request no rule matches is denied"
		}
		p.Add(field, "%s", msg)
	}
}

// verifyConfig converts c into the library's config.
func (c *VerifyConfig) verifyConfig() verify.Config {
	return verify.Config{
		Issuer:       c.Issuer,
		Audiences:    c.Audience,
		JWKSURL:      c.JWKSURL,
		Algorithms:   c.Algorithms,
		Leeway:       time.Duration(c.Leeway),
		CacheEntries: c.Cache.MaxEntries,
		UserClaim:    c.UserClaim,
	}
}

// loadVerifyConfigFile loads and validates the verify.yaml at path and
// reads its secret files; every problem of every stage is its own joined
// error, prefixed with path, as loadConfigFile does.
func loadVerifyConfigFile(path string) (*VerifyConfig, error) {
	c, lerr := LoadVerifyConfig(path)
	if c == nil {
		return nil, lerr
	}
	later := errors.Join(c.Validate(), c.checkSecrets())
	if err := errors.Join(lerr, prefixEach(path, dropCovered(later, lerr))); err != nil {
		return nil, err
	}
	return c, nil
}

// checkVerifyConfig implements `keyward verify --check`: it writes "PATH: OK
// (1 audience, 5 rules)", or each problem on its own line and returns an
// error counting them.
func checkVerifyConfig(path string, w io.Writer) error {
	c, err := loadVerifyConfigFile(path)
	if err != nil {
		return writeProblems(w, path, err)
	}
	if err := writeWarnings(w, path, exposedSecretFiles(c.secretFiles())); err != nil {
		return err
	}
	return writeOK(w, path, fmt.Sprintf("%d %s, %d %s",
		len(c.Audience), plural(len(c.Audience), "audience"), len(c.Rules), plural(len(c.Rules), "rule")))
}
