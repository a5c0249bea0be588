package main

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/federation"
	"github.com/keyward/keyward/keys"
	"github.com/keyward/keyward/store/bolt"
	"github.com/keyward/keyward/store/postgres"
	"github.com/keyward/keyward/web"
)

// Config is the shape of keyward.yaml, composed of the packages' own
// configuration types where a package owns a section (upstreams:
// federation.Config, keys: keys.Config, store: the backend's Options; see
// docs/architecture.md). LoadConfig reads it and applies every section's
// defaults, Validate checks it without I/O (each section validates itself;
// Config adds the rules that span sections), ResolveSecrets reads the files
// it names; the wiring then adds what is not in the file. Keys are
// camelCase; durations are Go durations ("90s", "15m", "24h"); an omitted
// or zero field takes its default. examples/keyward.yaml documents every
// field.
type Config struct {
	// Issuer is the public URL of the broker (discovery lives under it): https,
	// or http on a loopback host; no query or fragment. A trailing slash is
	// removed. Required.
	Issuer string `yaml:"issuer"`
	// Listen is the host:port of the HTTP server. Default: 127.0.0.1:5556.
	Listen string `yaml:"listen,omitempty"`
	// TLS serves HTTPS itself; usually the gateway terminates TLS instead.
	TLS TLSConfig `yaml:"tls,omitempty"`
	// SessionSecretFile holds the secret that seals session cookies and,
	// without keys.encryptionKeyFile, the signing keys at rest (at least 32
	// bytes; every replica needs the same one). Exactly one of it and
	// SessionSecret is required.
	SessionSecretFile string `yaml:"sessionSecretFile,omitempty"`
	// SessionSecret is the secret itself, normally "${ENV_VAR}".
	SessionSecret string      `yaml:"sessionSecret,omitempty"`
	Store         StoreConfig `yaml:"store,omitempty"`
	// Keys are the signing keys' settings; keys owns them.
	Keys   keys.Config         `yaml:"keys,omitempty"`
	Tokens broker.TokensConfig `yaml:"tokens,omitempty"`
	// Upstreams are the identity providers people sign in with; federation
	// owns each entry's fields, defaults and validation.
	Upstreams []federation.Config `yaml:"upstreams"`
	// Clients are the OAuth clients; broker owns each entry.
	Clients []broker.Client `yaml:"clients"`
	// Trust rules let external JWTs (CI, Kubernetes, cloud workloads) be
	// exchanged for Keyward tokens (RFC 8693). See docs/token-exchange.md.
	Trust   []federation.TrustRule `yaml:"trust,omitempty"`
	Logging LoggingConfig          `yaml:"logging,omitempty"`
	Metrics MetricsConfig          `yaml:"metrics,omitempty"`
	// Admin is the admin API (docs/admin-api.md); off without tokenFile.
	Admin AdminConfig `yaml:"admin,omitempty"`
	// RevocationFeed says who may read GET /revocations.
	RevocationFeed RevocationFeedConfig `yaml:"revocationFeed,omitempty"`
	// TrustedProxies are the reverse proxies in front of Keyward, as CIDRs
	// (10.0.0.0/8) or addresses: from them X-Forwarded-For is believed, and
	// the client is its rightmost address outside this list. The sign-in
	// rate limit goes by that address. Default: none; the TCP peer is the
	// client (behind a proxy every browser then shares its limit).
	TrustedProxies []string `yaml:"trustedProxies,omitempty"`
	// Limits bound what clients can make Keyward write (config_limits.go).
	Limits LimitsConfig `yaml:"limits,omitempty"`
	// Pages is what the sign-in pages say beyond Keyward's wording; web
	// owns it.
	Pages web.PagesConfig `yaml:"pages,omitempty"`
	// SCIM turns on SCIM 2.0 provisioning per upstream (docs/provisioning.md).
	SCIM []broker.SCIMConfig `yaml:"scim,omitempty"`
	// SSF receives OpenID Shared Signals (CAEP/RISC) per upstream
	// (docs/provisioning.md).
	SSF []broker.SSFConfig `yaml:"ssf,omitempty"`
}

// TLSConfig names a PEM certificate chain and its private key. Both or neither.
type TLSConfig struct {
	CertFile string `yaml:"certFile,omitempty"`
	KeyFile  string `yaml:"keyFile,omitempty"`
}

// Enabled reports whether the broker serves HTTPS itself.
func (t TLSConfig) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" }

// LoggingConfig configures the slog logger.
type LoggingConfig struct {
	// Level is debug, info, warn or error. Default: info.
	Level string `yaml:"level,omitempty"`
	// Format is json or text. Default: json.
	Format string `yaml:"format,omitempty"`
}

// MetricsConfig configures the Prometheus endpoint.
type MetricsConfig struct {
	// Listen is the host:port serving /metrics; empty: no metrics server.
	Listen string `yaml:"listen,omitempty"`
}

// withDefaults fills every zero field with its default and normalises the
// issuer. Defaults are fresh slices, never shared between clients.
func (c *Config) withDefaults() {
	c.Issuer = strings.TrimRight(c.Issuer, "/")
	setDefault(&c.Listen, "127.0.0.1:5556")
	setDefault(&c.Store.Type, "bolt")
	if decode, ok := storeTypes[c.Store.Type]; ok && c.Store.Backend == nil {
		c.Store.Backend, _ = decode(func(any) error { return nil }) // The zero settings.
	}
	c.Keys.SetDefaults()
	c.Tokens.SetDefaults()
	for i := range c.Upstreams {
		c.Upstreams[i].SetDefaults()
	}
	for i := range c.Clients {
		c.Clients[i].SetDefaults()
	}
	for i := range c.SCIM {
		c.SCIM[i].SetDefaults()
	}
	setDefault(&c.Admin.Listen, "127.0.0.1:8081")
	setDefault(&c.Logging.Level, "info")
	setDefault(&c.Logging.Format, "json")
}

func setDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

// StoreConfig selects the storage backend. In YAML it is one flat mapping:
// `type` picks an entry of storeTypes and the other keys are that type's
// settings, e.g. {type: bolt, path: /var/lib/keyward/keyward.db}.
type StoreConfig struct {
	// Type is bolt (one process) or postgres (several replicas). Default: bolt.
	Type string
	// Backend holds the settings of Type: *bolt.Options or
	// *postgres.Options. Nil when Type is unknown (Validate reports it).
	Backend StoreBackend
}

// StoreBackend is the per-type part of a StoreConfig: the backend's own
// Options, which validate themselves by path within the section.
type StoreBackend interface {
	Validate() error
}

// storeTypes is the registry of store types: a new backend adds its Options
// type here. Only cmd knows the concrete backends.
var storeTypes = map[string]func(unmarshal func(any) error) (StoreBackend, error){
	"bolt":     decodeStore[bolt.Options],
	"postgres": decodeStore[postgres.Options],
}

const sessionSecretHint = "at least 32 random bytes, e.g. head -c32 /dev/urandom | base64 > /etc/keyward/session-secret"

// Validate checks the loaded config and reports every problem at once, each
// naming the field path and the fix. It does no I/O: secret files are checked
// by ResolveSecrets, upstream discovery at startup.
func (c *Config) Validate() error {
	var p problems
	p.CheckURL("issuer", c.Issuer)
	checkListen(&p, "listen", c.Listen)
	if c.TLS.Enabled() && c.TLS.CertFile == "" {
		p.Add("tls.certFile", "set it too (tls needs both certFile and keyFile) or remove tls")
	}
	if c.TLS.Enabled() && c.TLS.KeyFile == "" {
		p.Add("tls.keyFile", "set it too (tls needs both certFile and keyFile) or remove tls")
	}
	switch n := len(strings.TrimSpace(c.SessionSecret)); {
	case c.SessionSecretFile == "" && c.SessionSecret == "":
		p.Add("sessionSecretFile", "set it (or sessionSecret) to a file holding %s", sessionSecretHint)
	case c.SessionSecretFile != "" && c.SessionSecret != "":
		p.Add("sessionSecret", "set either sessionSecretFile or sessionSecret, not both")
	case c.SessionSecret != "" && n < 32:
		p.Add("sessionSecret", "is %d bytes; use %s", n, sessionSecretHint)
	}
	if c.Store.Backend == nil {
		p.Add("store.type", "%q is not a store type; use bolt or postgres", c.Store.Type)
	} else {
		p.AddAll("store", c.Store.Backend.Validate())
	}
	p.AddAll("keys", c.Keys.Validate())
	c.validateTokens(&p)
	c.validateUpstreams(&p)
	c.validateClients(&p)
	c.validateTrust(&p)
	validateLoggingMetrics(&p, c.Logging, c.Metrics, c.Listen)
	c.validateAdmin(&p)
	c.validateLimits(&p)
	p.AddAll("pages", c.Pages.Validate())
	c.validateSCIM(&p)
	c.validateSSF(&p)
	return p.Err()
}

// validateLoggingMetrics checks the logging and metrics sections, which the
// broker's and the verifier's configs share.
func validateLoggingMetrics(p *problems, l LoggingConfig, m MetricsConfig, listen string) {
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, l.Level) {
		p.Add("logging.level", "%q is not a level; use debug, info, warn or error", l.Level)
	}
	if l.Format != "json" && l.Format != "text" {
		p.Add("logging.format", "%q is not a format; use json or text", l.Format)
	}
	if m.Listen != "" {
		checkListen(p, "metrics.listen", m.Listen)
		if m.Listen == listen {
			p.Add("metrics.listen", "%q is also listen; use another port", m.Listen)
		}
	}
}

// validateTokens checks the tokens section and the rule it shares with the
// upstreams: a claim in tokens.claims is an identity claim or one an
// upstream copies.
func (c *Config) validateTokens(p *problems) {
	p.AddAll("tokens", c.Tokens.Validate())
	copied := map[string]bool{}
	for _, u := range c.Upstreams {
		for name := range u.Claims.Claims {
			copied[name] = true
		}
	}
	for i, claim := range c.Tokens.Claims {
		if !slices.Contains(broker.IdentityClaims, claim) && !copied[claim] {
			p.Add(fmt.Sprintf("tokens.claims[%d]", i), "%q is not an identity claim; use %s, or a name from an upstream's claimMapping.claims", claim, strings.Join(broker.IdentityClaims, ", "))
		}
	}
}

// validateUpstreams checks the list; federation checks each entry.
func (c *Config) validateUpstreams(p *problems) {
	if len(c.Upstreams) == 0 {
		p.Add("upstreams", "add at least one upstream identity provider (id, issuer, clientID, clientSecretFile)")
	}
	seen := map[string]int{}
	for i, u := range c.Upstreams {
		path := fmt.Sprintf("upstreams[%d]", i)
		if first, dup := seen[u.ID]; dup && u.ID != "" {
			p.Add(path+".id", "%q is used twice (also upstreams[%d])", u.ID, first)
		} else {
			seen[u.ID] = i
		}
		p.AddAll(path, u.Validate())
	}
}

func (c *Config) validateClients(p *problems) {
	if len(c.Clients) == 0 {
		p.Add("clients", "add at least one client (id, redirectURIs, secretFile)")
	}
	seen := map[string]int{}
	for i, cl := range c.Clients {
		path := fmt.Sprintf("clients[%d]", i)
		if first, dup := seen[cl.ID]; dup && cl.ID != "" {
			p.Add(path+".id", "%q is used twice (also clients[%d])", cl.ID, first)
		} else {
			seen[cl.ID] = i
		}
		p.AddAll(path, cl.ValidateConfig())
		// Spans sections: the client may only ask for an algorithm the key
		// set holds.
		if err := broker.CheckIDTokenAlgorithm(cl.IDTokenSignedResponseAlg, c.Keys.Algorithms()); err != nil {
			p.Add(path+".idTokenSignedResponseAlg", "%s", err)
		}
	}
}

func checkListen(p *problems, path, addr string) {
	_, port, err := net.SplitHostPort(addr)
	if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 0 || n > 65535 {
		p.Add(path, "%q must be host:port, e.g. 0.0.0.0:8080 or 127.0.0.1:5556", addr)
	}
}
