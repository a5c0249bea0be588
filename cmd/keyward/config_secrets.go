package main

// This file holds what reads the outside world for the config: the YAML file
// (LoadConfig, with error messages that name line and field), ${ENV_VAR} in
// the secret fields, the secret files (ResolveSecrets) and check-config.

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/cmd/config"
	"github.com/keyward/keyward/store/postgres"
)

// Duration and StringList are config's: keyward.yaml and the packages'
// sections share them.
type (
	Duration   = config.Duration
	StringList = config.StringList
)

// LoadConfig reads the YAML file at path. It refuses unknown fields, expands
// ${ENV_VAR} in the secret fields only (sessionSecret, clientSecret, secret)
// and applies the defaults. It reads no other file: ResolveSecrets does. Each
// problem is one joined error, prefixed with path and the line. When the file
// parses but some values do not decode (an unknown field, a bad duration, an
// unset variable), it returns those problems together with the config, the
// bad values left at their defaults, so that the later stages can still
// report theirs (loadConfigFile).
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path) //nolint:gosec // G304: the operator names the file.
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, err := parseConfig(data, os.LookupEnv)
	if err != nil {
		return c, prefixEach(path, withFile(err, path))
	}
	return c, nil
}

func parseConfig(data []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	var c Config
	if err := decodeStrict(data, &c, kindBroker); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, explainYAMLError(data, err, kindBroker)
		}
		// Every value that decoded is in c: go on, so that the later stages
		// report their problems too.
		eerr := expandSecretEnv(&c, lookupEnv)
		c.withDefaults()
		return &c, errors.Join(explainYAMLError(data, err, kindBroker), eerr)
	}
	eerr := expandSecretEnv(&c, lookupEnv)
	c.withDefaults()
	return &c, eerr
}

// decodeStrict decodes the one YAML document of data into v, refusing
// unknown fields. A file of the other kind (a verify.yaml given to
// check-config) is refused as a whole with a *wrongKindError. A
// *yaml.TypeError leaves every value that did decode in v.
func decodeStrict(data []byte, v any, kind configKind) error {
	if err := checkKind(data, kind); err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("the file is empty; start from %s", kind.example)
		}
		return err
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		return fmt.Errorf("line %d: a second YAML document; keep one per file", next.Line)
	} else if !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// decodeStore decodes the whole store mapping into T, beside the type key, so
// unknown keys are still refused.
func decodeStore[T any, PT interface {
	*T
	StoreBackend
}](unmarshal func(any) error) (StoreBackend, error) {
	var w struct {
		Type     string `yaml:"type"`
		Settings T      `yaml:",inline"`
	}
	if err := unmarshal(&w); err != nil {
		return nil, err
	}
	return PT(&w.Settings), nil
}

// UnmarshalYAML reads the type, then decodes the mapping into its settings.
// It uses the callback form because only that keeps the decoder's
// KnownFields (yaml.Node.Decode starts a lax decoder).
func (s *StoreConfig) UnmarshalYAML(unmarshal func(any) error) error {
	var head struct {
		Type string         `yaml:"type"`
		Rest map[string]any `yaml:",inline"`
	}
	if err := unmarshal(&head); err != nil {
		return err
	}
	s.Type, s.Backend = head.Type, nil
	decode, ok := storeTypes[cmp.Or(head.Type, "bolt")]
	if !ok {
		return nil
	}
	b, err := decode(unmarshal)
	s.Backend = b
	return err
}

// MarshalYAML writes the flat mapping UnmarshalYAML reads.
func (s StoreConfig) MarshalYAML() (any, error) {
	n := &yaml.Node{Kind: yaml.MappingNode}
	if s.Backend != nil {
		if err := n.Encode(s.Backend); err != nil {
			return nil, fmt.Errorf("encode store settings: %w", err)
		}
	}
	typ := []*yaml.Node{{Kind: yaml.ScalarNode, Value: "type"}, {Kind: yaml.ScalarNode, Value: s.Type}}
	n.Content = append(typ, n.Content...)
	return n, nil
}

// envRefRE is ${NAME}; other dollar signs in a secret stay literal.
var envRefRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expandSecretEnv replaces ${NAME} in sessionSecret, store.dsn, upstreams[].clientSecret
// and clients[].secret, and nowhere else. An unset or empty variable is an
// error: an empty client secret would silently make a public client. A
// field with such a variable keeps its text unexpanded, so that validation
// does not report it a second time as missing.
func expandSecretEnv(c *Config, lookupEnv func(string) (string, bool)) error {
	var p problems
	expand := func(path string, v *string) {
		failed := false
		expanded := envRefRE.ReplaceAllStringFunc(*v, func(ref string) string {
			name := ref[2 : len(ref)-1]
			val, ok := lookupEnv(name)
			switch {
			case !ok:
				p.Add(path, "environment variable %s is not set", name)
				failed = true
			case val == "":
				p.Add(path, "environment variable %s is empty", name)
				failed = true
			}
			return val
		})
		if !failed {
			*v = expanded
		}
	}
	expand("sessionSecret", &c.SessionSecret)
	if pg, ok := c.Store.Backend.(*postgres.Options); ok {
		expand("store.dsn", &pg.DSN)
	}
	for i := range c.Upstreams {
		expand(fmt.Sprintf("upstreams[%d].clientSecret", i), &c.Upstreams[i].ClientSecret)
	}
	for i := range c.Clients {
		expand(fmt.Sprintf("clients[%d].secret", i), &c.Clients[i].Secret)
	}
	for i := range c.SCIM {
		expand(fmt.Sprintf("scim[%d].token", i), &c.SCIM[i].Token)
	}
	for i := range c.SSF {
		expand(fmt.Sprintf("ssf[%d].token", i), &c.SSF[i].Token)
		expand(fmt.Sprintf("ssf[%d].pollToken", i), &c.SSF[i].PollToken)
	}
	return p.Err()
}

// Secrets holds the secret values a Config names. Never log it: String
// redacts it.
type Secrets struct {
	// SessionSecret seals session cookies: the text of sessionSecretFile or
	// sessionSecret without surrounding white space, at least 32 bytes, used
	// as is (not base64-decoded); derive keys from it, e.g. with HKDF.
	SessionSecret []byte
	// EncryptionKey is the 32-byte AES-256-GCM key for private keys at rest;
	// nil when keys.encryptionKeyFile is unset (keys then derives one from
	// SessionSecret).
	EncryptionKey []byte
	// UpstreamClientSecrets maps an upstream id to Keyward's client secret there.
	UpstreamClientSecrets map[string]string
	// ClientSecrets maps a client id to its secret; public clients are absent.
	ClientSecrets map[string]string
	// AdminToken is the admin API's bearer token (admin.tokenFile); nil:
	// no admin API.
	AdminToken []byte
	// StoreDSN is the PostgreSQL connection string (store.dsn or
	// store.dsnFile); empty for bolt.
	StoreDSN string
	// SCIM are the scim entries with their tokens read (config_scim.go).
	SCIM []broker.SCIMConfig
	// SSF are the ssf entries with their tokens read (config_ssf.go).
	SSF []broker.SSFConfig
}

// String redacts the secrets, so %v never prints them.
func (Secrets) String() string { return "Secrets{redacted}" }

// GoString redacts the secrets, so %#v never prints them.
func (s Secrets) GoString() string { return s.String() }

// ResolveSecrets reads the …File fields named by a validated config and
// returns their values together with the inline (env-expanded) ones. A file's
// trailing newline is trimmed. Each problem names the field:
// "upstreams[0].clientSecretFile: open /etc/x: no such file or directory".
func (c *Config) ResolveSecrets() (Secrets, error) {
	var p problems
	s := Secrets{UpstreamClientSecrets: map[string]string{}, ClientSecrets: map[string]string{}}
	session := strings.TrimSpace(readSecret(&p, "sessionSecretFile", c.SessionSecretFile, c.SessionSecret))
	if c.SessionSecretFile != "" && session != "" && len(session) < 32 {
		p.Add("sessionSecretFile", "%s holds %d bytes; write %s", c.SessionSecretFile, len(session), sessionSecretHint)
	}
	s.SessionSecret = []byte(session)
	if f := c.Keys.EncryptionKeyFile; f != "" {
		data, err := os.ReadFile(f) //nolint:gosec // G304: the operator names the file.
		if err != nil {
			p = append(p, fmt.Errorf("keys.encryptionKeyFile: %w", err))
		} else if s.EncryptionKey, err = parseEncryptionKey(data); err != nil {
			p.Add("keys.encryptionKeyFile", "%s: %s", f, err.Error())
		}
	}
	for i, u := range c.Upstreams {
		path := fmt.Sprintf("upstreams[%d].clientSecretFile", i)
		if v := readSecret(&p, path, u.ClientSecretFile, u.ClientSecret); v != "" {
			s.UpstreamClientSecrets[u.ID] = v
		}
	}
	for i, cl := range c.Clients {
		path := fmt.Sprintf("clients[%d].secretFile", i)
		if v := readSecret(&p, path, cl.SecretFile, cl.Secret); v != "" {
			s.ClientSecrets[cl.ID] = v
		}
	}
	s.AdminToken = readAdminToken(&p, c.Admin.TokenFile)
	s.StoreDSN = resolveStoreDSN(&p, c.Store)
	s.SCIM = readSCIMTokens(&p, c)
	s.SSF = readSSFTokens(&p, c)
	if err := p.Err(); err != nil {
		return Secrets{}, err
	}
	return s, nil
}

// readSecret returns the content of file without its trailing newline, or
// inline when file is empty.
func readSecret(p *problems, path, file, inline string) string {
	if file == "" {
		return inline
	}
	data, err := os.ReadFile(file) //nolint:gosec // G304: the operator names the file.
	if err != nil {
		*p = append(*p, fmt.Errorf("%s: %w", path, err))
		return ""
	}
	v := strings.TrimRight(string(data), "\r\n")
	if v == "" {
		p.Add(path, "%s is empty; write the secret into it", file)
	}
	return v
}

// parseEncryptionKey accepts exactly 32 raw bytes, or 32 bytes written as
// hex or base64 (standard or URL alphabet, padded or not), optionally
// followed by a newline. Generate one with
// head -c32 /dev/urandom | base64 > /etc/keyward/kek.
func parseEncryptionKey(data []byte) ([]byte, error) {
	if len(data) == 32 {
		return data, nil
	}
	text := string(bytes.TrimSpace(data))
	if k, err := hex.DecodeString(text); err == nil && len(k) == 32 {
		return k, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(text); err == nil && len(k) == 32 {
			return k, nil
		}
	}
	return nil, fmt.Errorf("holds %d bytes that are not a 32-byte key; write 32 random bytes, raw or as base64 or hex, e.g. head -c32 /dev/urandom | base64", len(data))
}

// loadConfigFile loads, validates and resolves the secrets of the config at
// path: what serve and check-config both need. Every problem of every stage
// is its own joined error, prefixed with path, so one run lists them all; a
// field that failed to load is not reported again by the later stages.
func loadConfigFile(path string) (*Config, Secrets, error) {
	c, lerr := LoadConfig(path)
	if c == nil {
		return nil, Secrets{}, lerr
	}
	verr := c.Validate()
	s, serr := c.ResolveSecrets()
	if err := errors.Join(lerr, prefixEach(path, dropCovered(errors.Join(verr, serr), lerr))); err != nil {
		return nil, Secrets{}, err
	}
	return c, s, nil
}

// checkConfig implements `keyward check-config`: it writes "PATH: OK (2
// upstreams, 3 clients)", after a warning line for each secret file that
// others may read, or each problem on its own line and returns an error
// counting them.
func checkConfig(path string, w io.Writer) error {
	c, _, err := loadConfigFile(path)
	if err != nil {
		return writeProblems(w, path, err)
	}
	if err := writeWarnings(w, path, exposedSecretFiles(c.secretFiles())); err != nil {
		return err
	}
	for _, warning := range c.scimWarnings() {
		if _, err := fmt.Fprintf(w, "%s: warning: %s\n", path, warning); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
	}
	return writeOK(w, path, fmt.Sprintf("%d %s, %d %s",
		len(c.Upstreams), plural(len(c.Upstreams), "upstream"), len(c.Clients), plural(len(c.Clients), "client")))
}

// writeProblems prints each problem of err on its own line and returns an
// error counting them: the report of a failed check.
func writeProblems(w io.Writer, path string, err error) error {
	errs := splitErrors(err)
	for _, e := range errs {
		if _, werr := fmt.Fprintln(w, e); werr != nil {
			return fmt.Errorf("write report: %w", werr)
		}
	}
	return fmt.Errorf("%s: %d %s", path, len(errs), plural(len(errs), "problem"))
}

// writeOK prints "PATH: OK (summary)".
func writeOK(w io.Writer, path, summary string) error {
	if _, err := fmt.Fprintf(w, "%s: OK (%s)\n", path, summary); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

var (
	yamlLineRE     = regexp.MustCompile(`^line (\d+): (.*)$`)
	unknownFieldRE = regexp.MustCompile(`^field (\S+) not found in type`)
	wrongTypeRE    = regexp.MustCompile("^cannot unmarshal !!(\\w+) (?:`([^`]*)` )?into (.+)$")
)

// explainYAMLError turns decoding errors into one *decodeError per problem
// that names the line and the field path: "line 12:
// upstreams[0].clientSecretFil: unknown field ...". Syntax errors pass
// through.
func explainYAMLError(data []byte, err error, kind configKind) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	paths := linePaths(data)
	errs := make([]error, 0, len(te.Errors))
	for _, msg := range te.Errors {
		m := yamlLineRE.FindStringSubmatch(msg)
		if m == nil {
			errs = append(errs, errors.New(msg))
			continue
		}
		e := &decodeError{Line: m[1], Msg: m[2]}
		if ps := paths[m[1]]; len(ps) > 0 {
			e.Path = ps[0]
		}
		if f := unknownFieldRE.FindStringSubmatch(e.Msg); f != nil {
			e.Path = f[1]
			for _, p := range paths[m[1]] {
				if p == f[1] || strings.HasSuffix(p, "."+f[1]) {
					e.Path = p
					break
				}
			}
			e.Msg = "unknown field; check its spelling and place (see " + kind.example + ")"
		} else if w := wrongTypeRE.FindStringSubmatch(e.Msg); w != nil && w[3] == "time.Duration" && w[2] == "0" {
			continue // 0 is a duration (unset: the default), as config.Duration reads it
		} else if w != nil && w[3] == "time.Duration" && w[2] != "" {
			// web/verify's durations are time.Duration (it imports no YAML):
			// the same words as config.Duration's.
			e.Msg = fmt.Sprintf("%q is not a duration; write one such as 90s, 15m or 24h", w[2])
		} else if w != nil {
			e.Msg = fmt.Sprintf("got %s, want %s", yamlKind(w[1], w[2]), goKind(w[3]))
		}
		errs = append(errs, e)
	}
	return errors.Join(errs...)
}

// decodeError is a value that did not decode: its line, its field path
// (empty when unknown) and what is wrong.
type decodeError struct{ Line, Path, Msg string }

func (e *decodeError) Error() string {
	if e.Path == "" {
		return "line " + e.Line + ": " + e.Msg
	}
	return "line " + e.Line + ": " + e.Path + ": " + e.Msg
}

// dropCovered removes from err the problems of fields that loaded already
// reported (a decode error or an unset variable at the same path or above
// it): a value that did not load is left at its default, and reporting that
// default too would be noise.
func dropCovered(err, loaded error) error {
	var covered []string
	for _, e := range splitErrors(loaded) {
		var de *decodeError
		var fe *fieldError
		switch {
		case errors.As(e, &de) && de.Path != "":
			covered = append(covered, de.Path)
		case errors.As(e, &fe):
			covered = append(covered, fe.Path)
		}
	}
	var kept []error
	for _, e := range splitErrors(err) {
		var fe *fieldError
		if errors.As(e, &fe) && slices.ContainsFunc(covered, func(c string) bool {
			return fe.Path == c || strings.HasPrefix(fe.Path, c+".") || strings.HasPrefix(fe.Path, c+"[")
		}) {
			continue
		}
		kept = append(kept, e)
	}
	return errors.Join(kept...)
}

// yamlKind describes a YAML value by its tag ("map", "seq", "str"…) and the
// value yaml.v3 quotes (truncated by it to about ten characters).
func yamlKind(tag, value string) string {
	switch tag {
	case "map":
		return "a mapping"
	case "seq":
		return "a list"
	}
	return fmt.Sprintf("%q", value)
}

// goKind describes the Go type a YAML value was decoded into.
func goKind(typ string) string {
	switch {
	case strings.HasPrefix(typ, "[]"):
		return "a list"
	case strings.HasPrefix(typ, "struct"), strings.HasPrefix(typ, "main."), strings.HasPrefix(typ, "map["):
		return "a mapping"
	case strings.HasPrefix(typ, "int"), strings.HasPrefix(typ, "uint"):
		return "a number"
	case typ == "time.Duration":
		return "a duration such as 90s, 15m or 24h"
	}
	return "a " + typ
}

// linePaths maps a line number to the paths of the keys and list items on
// it, outermost first ("clients[0]", "clients[0].id").
func linePaths(data []byte) map[string][]string {
	var doc yaml.Node
	paths := map[string][]string{}
	if yaml.Unmarshal(data, &doc) != nil {
		return paths
	}
	record := func(n *yaml.Node, path string) {
		line := strconv.Itoa(n.Line)
		paths[line] = append(paths[line], path)
	}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				p := strings.TrimPrefix(path+"."+n.Content[i].Value, ".")
				record(n.Content[i], p)
				walk(n.Content[i+1], p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				record(c, p)
				walk(c, p)
			}
		}
	}
	walk(&doc, "")
	return paths
}

// problems collects configuration problems, one fieldError each.
type (
	problems   = config.Problems
	fieldError = config.FieldError
)

// splitErrors flattens errors.Join trees into their leaves.
func splitErrors(err error) []error { return config.Split(err) }

// prefixEach prefixes every leaf of err with prefix, keeping one per line.
func prefixEach(prefix string, err error) error {
	errs := splitErrors(err)
	for i, e := range errs {
		errs[i] = fmt.Errorf("%s: %w", prefix, e)
	}
	return errors.Join(errs...)
}
