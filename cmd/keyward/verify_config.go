package main

// This file holds the shape of verify.yaml, the configuration of
// `keyward verify`: loading (LoadVerifyConfig), defaults and validation.

import (
	"errors"
	"fmt"
	"io"
	"os"

	"go.yaml.in/yaml/v3"

	"github.com/keyward/keyward/web/httpserver"
	"github.com/keyward/keyward/web/verify"
)

// VerifyConfig is the shape of verify.yaml: web/verify's own sections
// (verify.Config inline: issuer, audience, jwksURL, algorithms, leeway,
// cache, userClaim, revocationFeed; verify.GatewayConfig inline: gateway,
// envoyPrefix, passAccessToken; rules; browser) composed with the binary's
// listeners, logging and metrics. LoadVerifyConfig reads it and applies the
// defaults; Validate checks it without I/O. Keys are camelCase and durations
// Go durations, as in keyward.yaml. examples/verify.yaml documents every
// field.
type VerifyConfig struct {
	verify.Config `yaml:",inline"`
	// gateway, envoyPrefix, passAccessToken: web/verify's too.
	verify.GatewayConfig `yaml:",inline"`
	// Listen is the host:port of the forward-auth endpoint.
	// Default: 127.0.0.1:4180.
	Listen string `yaml:"listen,omitempty"`
	// Rules decide per host, path and method; the first match wins and no
	// match denies (403). At least one is required.
	Rules verify.Rules `yaml:"rules"`
	// Browser turns on sign-in at the edge for rules with browser: true.
	// Omitted: bearer tokens only.
	Browser *verify.BrowserConfig `yaml:"browser,omitempty"`
	Logging LoggingConfig         `yaml:"logging,omitempty"`
	Metrics MetricsConfig         `yaml:"metrics,omitempty"`
	// MaxConnections caps the connections each listener (listen, metrics)
	// holds open at once; further clients wait until one closes.
	// Default: 4096 (web/httpserver).
	MaxConnections int `yaml:"maxConnections,omitempty"`

	// Reserved: accepted by the parser so that Validate can say what to do
	// instead of "unknown field".
	Headers yaml.Node `yaml:"headers,omitempty"`
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
	c.Config.SetDefaults()
	c.GatewayConfig.SetDefaults()
	if c.Browser != nil {
		c.Browser.SetDefaults()
	}
	setDefault(&c.Listen, defaultVerifyListen)
	setDefault(&c.Logging.Level, "info")
	setDefault(&c.Logging.Format, "json")
}

// Validate checks the loaded config and reports every problem at once, each
// naming the field path and the fix. It does no I/O: the key set is fetched
// when the verifier starts.
func (c *VerifyConfig) Validate() error {
	var p problems
	p.AddAll("", c.Config.Validate())
	checkListen(&p, "listen", c.Listen)
	if err := httpserver.ValidateMaxConnections(c.MaxConnections); err != nil {
		p.Add("maxConnections", "%v", err)
	}
	p.AddAll("", c.GatewayConfig.Validate())
	p.AddAll("", c.Rules.Validate())
	c.validateBrowser(&p)
	if c.Headers.Kind != 0 {
		p.Add("headers", "the identity headers are not configurable yet; remove headers (the verifier sends X-Auth-Request-User: the userClaim, default sub; -Preferred-Username; -Email when verified; -Groups, comma-joined; -Subject); to choose the user claim set userClaim")
	}
	validateLoggingMetrics(&p, c.Logging, c.Metrics, c.Listen)
	return p.Err()
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
		len(c.Audiences), plural(len(c.Audiences), "audience"), len(c.Rules), plural(len(c.Rules), "rule")))
}
