package federation

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/keyward/keyward/cmd/config"
)

// TrustRule lets tokens from one external issuer be exchanged for Keyward
// tokens. See docs/token-exchange.md for the semantics and presets.
type TrustRule struct {
	// Name identifies the rule in logs and errors; unique. Pattern: [a-z0-9-]+
	Name string `yaml:"name"`
	// Issuer is the exact iss, e.g. https://token.actions.githubusercontent.com.
	// Only issuers named by a rule are ever contacted (discovery, JWKS).
	Issuer string `yaml:"issuer"`
	// Audience is a value the token's aud must contain, usually Keyward's
	// issuer URL.
	Audience string `yaml:"audience"`
	// Claims pins top-level claims (no dotted paths): every one must be
	// present and match. A value is a glob: '*' matches any run of
	// characters except '/', '**' any run including '/', '?' one character
	// except '/', and '\' makes the next character literal. A value with
	// none of these is an exact match. Booleans and numbers match their
	// JSON text ("true", "42"); null, arrays and objects never match.
	Claims map[string]string `yaml:"claims,omitempty"`
	// Subject is the template of the Keyward subject: each {claim} is
	// replaced by that claim, which must be a non-empty string without
	// control characters. No escape exists for literal braces.
	Subject string `yaml:"subject"`
	// Audiences the issued Keyward token may carry; at least one.
	Audiences []string `yaml:"audiences"`
	// Scopes the issued Keyward token may receive.
	Scopes []string `yaml:"scopes,omitempty"`
	// MaxTTL bounds the issued token's lifetime. Default: 10m; at most 24h.
	MaxTTL config.Duration `yaml:"maxTTL,omitempty"`
	// PublicClient lets a client without a secret use this rule: the
	// subject token is its credential.
	PublicClient bool `yaml:"publicClient,omitempty"`
	// SingleUse: the token must carry a jti, which the caller may exchange
	// once (TrustMatch.JTI; the caller owns the replay store).
	SingleUse bool `yaml:"singleUse,omitempty"`
	// Algorithms the token may be signed with. Default: RS256, ES256.
	Algorithms []string `yaml:"algorithms,omitempty"`
}

// reservedClaims cannot be pinned: other fields or the verifier check them.
var reservedClaims = map[string]string{
	"iss": "use issuer", "aud": "use audience", "exp": "checked by the verifier",
	"nbf": "checked by the verifier", "iat": "checked by the verifier",
}

// asymmetricAlgs are the algorithms a rule may allow; none and HS* never.
var asymmetricAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// Validate reports every problem with r, each a *config.FieldError named
// by its YAML path below the rule (e.g. `claims["ref"]`). It does no I/O.
func (r TrustRule) Validate() error { return errors.Join(r.problems()...) }

func (r TrustRule) problems() []error {
	var p config.Problems
	switch {
	case r.Name == "":
		p.Add("name", "must not be empty")
	case !idPattern.MatchString(r.Name):
		p.Add("name", "%q must match [a-z0-9-]+", r.Name)
	}
	p.CheckURL("issuer", r.Issuer)
	if r.Audience == "" {
		p.Add("audience", "must not be empty")
	}
	for _, name := range sortedKeys(r.Claims) {
		field := fmt.Sprintf("claims[%q]", name)
		if name == "" {
			p.Add(field, "claim name must not be empty")
		} else if why, ok := reservedClaims[name]; ok {
			p.Add(field, "cannot be pinned (%s)", why)
		}
		if _, err := parseGlob(r.Claims[name]); err != nil {
			p.Add(field, "%s", err)
		}
	}
	if parts, err := parseTemplate(r.Subject); err != nil {
		p.Add("subject", "%s", err)
	} else if !slices.ContainsFunc(parts, outsidePersonAlphabet) {
		p.Add("subject", "%q needs a literal character other than a-z and 2-7, such as a prefix \"ci:\", so that a workload's subject can never equal a person's Keyward subject", r.Subject)
	}
	if len(r.Audiences) == 0 {
		p.Add("audiences", "must list at least one audience")
	}
	for i, a := range r.Audiences {
		switch {
		case strings.TrimSpace(a) != a || a == "":
			p.Add(fmt.Sprintf("audiences[%d]", i), "%q must be non-empty without surrounding space", a)
		case slices.Index(r.Audiences, a) < i:
			p.Add(fmt.Sprintf("audiences[%d]", i), "%q is listed twice", a)
		}
	}
	for i, s := range r.Scopes {
		if !validScope(s) {
			p.Add(fmt.Sprintf("scopes[%d]", i), "%q is not a valid scope token", s)
		}
	}
	if r.MaxTTL < 0 || time.Duration(r.MaxTTL) > maxRuleTTL {
		p.Add("maxTTL", "%s must be between 0 (default 10m) and 24h", time.Duration(r.MaxTTL))
	}
	for i, a := range r.Algorithms {
		if !slices.Contains(asymmetricAlgs, a) {
			p.Add(fmt.Sprintf("algorithms[%d]", i), "%q is not one of %s (none and HMAC are never accepted)",
				a, strings.Join(asymmetricAlgs, ", "))
		}
	}
	return p
}

// validScope: RFC 6749 §3.3 scope-token.
func validScope(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if c < 0x21 || c == '"' || c == '\\' || c > 0x7e {
			return false
		}
	}
	return true
}

// compiledRule is a valid rule with defaults filled in and its patterns
// parsed.
type compiledRule struct {
	TrustRule
	pins    []pin
	subject []templatePart
}

type pin struct {
	claim string
	glob  glob
}

// compile prepares r, which must be valid; invalid parts compile to
// nothing (NewTrust refuses the config anyway).
func compile(r TrustRule) *compiledRule {
	r.Claims = maps.Clone(r.Claims)
	r.Audiences = slices.Clone(r.Audiences)
	r.Scopes = slices.Clone(r.Scopes)
	r.Algorithms = slices.Clone(r.Algorithms)
	if r.MaxTTL == 0 {
		r.MaxTTL = config.Duration(defaultRuleTTL)
	}
	if len(r.Algorithms) == 0 {
		r.Algorithms = []string{"RS256", "ES256"}
	}
	c := &compiledRule{TrustRule: r}
	for _, name := range sortedKeys(r.Claims) {
		g, _ := parseGlob(r.Claims[name])
		c.pins = append(c.pins, pin{claim: name, glob: g})
	}
	c.subject, _ = parseTemplate(r.Subject)
	return c
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// glob is a parsed pinned-claim pattern.
type glob struct {
	exact string   // the value to compare when literal
	ops   []globOp // nil when literal
}

type globOp struct {
	kind byte // 'l' literal rune, '?' one rune but '/', '*' run without '/', 'S' any run
	r    rune
}

func parseGlob(p string) (glob, error) {
	if p == "" {
		return glob{}, errors.New(`pattern must not be empty (use "**" to require any value)`)
	}
	var ops []globOp
	var lit strings.Builder
	meta := false
	rs := []rune(p)
	for i := 0; i < len(rs); i++ {
		switch c := rs[i]; c {
		case '\\':
			if i+1 == len(rs) {
				return glob{}, errors.New(`pattern ends with a lone '\'`)
			}
			i++
			ops = append(ops, globOp{kind: 'l', r: rs[i]})
			lit.WriteRune(rs[i])
		case '?':
			meta = true
			ops = append(ops, globOp{kind: '?'})
		case '*':
			meta = true
			if i+1 < len(rs) && rs[i+1] == '*' {
				for i+1 < len(rs) && rs[i+1] == '*' {
					i++
				}
				ops = append(ops, globOp{kind: 'S'})
			} else {
				ops = append(ops, globOp{kind: '*'})
			}
		default:
			ops = append(ops, globOp{kind: 'l', r: c})
			lit.WriteRune(c)
		}
	}
	if !meta {
		return glob{exact: lit.String()}, nil
	}
	return glob{ops: ops}, nil
}

// match reports whether claim value v matches: strings as is, booleans and
// numbers by their JSON text; anything else (missing, null, array, object)
// never matches. It runs in O(len(pattern)·len(value)).
func (g glob) match(v any) bool {
	var s string
	switch v := v.(type) {
	case string:
		s = v
	case bool:
		s = fmt.Sprint(v)
	case json.Number:
		s = v.String()
	case float64: // claims decoded without UseNumber
		s = fmt.Sprint(v)
	default:
		return false
	}
	if g.ops == nil {
		return s == g.exact
	}
	rs := []rune(s)
	cur := make([]bool, len(rs)+1) // cur[j]: the ops so far match rs[:j]
	next := make([]bool, len(rs)+1)
	cur[0] = true
	for _, op := range g.ops {
		next[0] = (op.kind == '*' || op.kind == 'S') && cur[0]
		for j := 1; j <= len(rs); j++ {
			c := rs[j-1]
			switch op.kind {
			case 'l':
				next[j] = cur[j-1] && c == op.r
			case '?':
				next[j] = cur[j-1] && c != '/'
			case '*':
				next[j] = cur[j] || (next[j-1] && c != '/')
			case 'S':
				next[j] = cur[j] || next[j-1]
			}
		}
		cur, next = next, cur
	}
	return cur[len(rs)]
}

// templatePart is literal text, or a claim name when claim is set.
type templatePart struct {
	text  string
	claim bool
}

func parseTemplate(tmpl string) ([]templatePart, error) {
	if tmpl == "" {
		return nil, errors.New("must not be empty")
	}
	var parts []templatePart
	rest := tmpl
	for rest != "" {
		open := strings.IndexAny(rest, "{}")
		if open < 0 {
			parts = append(parts, templatePart{text: rest})
			break
		}
		if rest[open] == '}' {
			return nil, fmt.Errorf("%q: '}' without '{'", tmpl)
		}
		if open > 0 {
			parts = append(parts, templatePart{text: rest[:open]})
		}
		end := strings.IndexAny(rest[open+1:], "{}")
		if end < 0 || rest[open+1+end] == '{' {
			return nil, fmt.Errorf("%q: '{' without '}'", tmpl)
		}
		name := rest[open+1 : open+1+end]
		if name == "" {
			return nil, fmt.Errorf("%q: empty {}", tmpl)
		}
		parts = append(parts, templatePart{text: name, claim: true})
		rest = rest[open+1+end+1:]
	}
	return parts, nil
}

// outsidePersonAlphabet reports whether p is literal text holding a
// character that a person's Keyward subject (broker.SubjectID: 32
// characters of lower-case base32, a-z and 2-7) never contains. A template
// with such a character renders subjects that cannot equal a person's,
// whatever its claims hold (a CI system's user name, say).
func outsidePersonAlphabet(p templatePart) bool {
	return !p.claim && strings.ContainsFunc(p.text, func(r rune) bool {
		return (r < 'a' || r > 'z') && (r < '2' || r > '7')
	})
}

// subjectPrefix is the literal text before the template's first claim.
func subjectPrefix(parts []templatePart) string {
	if len(parts) > 0 && !parts[0].claim {
		return parts[0].text
	}
	return ""
}

// render fills the subject template from claims.
func (r *compiledRule) render(claims map[string]any) (string, error) {
	var b strings.Builder
	for _, p := range r.subject {
		if !p.claim {
			b.WriteString(p.text)
			continue
		}
		v, ok := claims[p.text]
		if !ok {
			return "", fmt.Errorf("claim %q is missing", p.text)
		}
		s, ok := v.(string)
		switch {
		case !ok:
			return "", fmt.Errorf("claim %q is not a string", p.text)
		case s == "":
			return "", fmt.Errorf("claim %q is empty", p.text)
		case strings.ContainsFunc(s, unicode.IsControl):
			return "", fmt.Errorf("claim %q has control characters", p.text)
		}
		b.WriteString(s)
	}
	return b.String(), nil
}

// refuse returns why r does not accept the verified token, or "".
func (r *compiledRule) refuse(m TrustMatch, alg string, aud []string) string {
	if !slices.Contains(aud, r.Audience) {
		return "aud lacks " + r.Audience
	}
	if !slices.Contains(r.Algorithms, alg) {
		return "alg " + alg + " not allowed"
	}
	if r.SingleUse && m.JTI == "" {
		return "jti required for single use"
	}
	for _, p := range r.pins {
		if !p.glob.match(m.Claims[p.claim]) {
			return fmt.Sprintf("claims[%q] does not match", p.claim)
		}
	}
	return ""
}
