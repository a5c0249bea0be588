package federation

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

// Sentinels of workload federation, for errors.Is. A subject token with a
// bad signature, a wrong audience, an unknown kid, or outside its validity
// period wraps ErrInvalidIDToken.
var (
	// ErrUntrustedIssuer: no trust rule names the token's iss. Nothing was
	// fetched from that issuer.
	ErrUntrustedIssuer = errors.New("subject token issuer is not trusted")
	// ErrNoRuleMatched: the token is valid, but no rule of its issuer accepts
	// its audience and claims, or the first rule that does cannot render
	// its subject from them.
	ErrNoRuleMatched = errors.New("no trust rule accepts the subject token")
	// ErrIssuerUnavailable: discovery or the key set of a trusted issuer
	// could not be fetched, so the token could not be checked. Not the
	// client's fault; retrying later may succeed.
	ErrIssuerUnavailable = errors.New("trusted issuer unavailable")
)

// Limits and defaults of TrustConfig and TrustRule.
const (
	maxSubjectToken     = 16 << 10
	defaultRuleTTL      = 10 * time.Minute
	maxRuleTTL          = 24 * time.Hour
	defaultMinRefresh   = 30 * time.Second
	defaultLeeway       = 30 * time.Second
	maxLeeway           = time.Minute
	discoveryBackoffMin = time.Second
	discoveryBackoffMax = 5 * time.Minute
)

// Trust verifies subject tokens from external workload issuers (CI systems,
// Kubernetes, cloud identity) against trust rules. It is safe for
// concurrent use.
type Trust struct {
	issuers map[string]*trustIssuer
	leeway  time.Duration
	now     func() time.Time
	logger  *slog.Logger
}

// TrustConfig configures NewTrust. It is tagless; cmd converts the YAML
// shape into it.
type TrustConfig struct {
	// Rules are tried in order among those of the token's issuer.
	Rules []TrustRule
	// HTTPClient fetches discovery and key sets of trusted issuers.
	// Default: a client with a 10s timeout.
	HTTPClient *http.Client
	// MinRefreshInterval is the least time between two key set fetches of
	// one issuer; an unknown kid within it is refused without a fetch.
	// Default: 30s.
	MinRefreshInterval time.Duration
	// Leeway is the clock skew allowed on exp, nbf and iat. Default: 30s;
	// at most 1m.
	Leeway time.Duration
	Logger *slog.Logger
	// Now is the clock for token checks and rate limits. Default: time.Now.
	Now func() time.Time
}

// TrustMatch is a verified subject token and the rule that accepted it.
type TrustMatch struct {
	// Rule is the accepted rule, with defaults filled in. Read only.
	Rule *TrustRule
	// Subject is the rule's template rendered from the token's claims.
	Subject string
	// Claims are all of the token's claims; JSON numbers are json.Number.
	Claims map[string]any
	// Expiry is exp; IssuedAt is iat, zero if absent.
	Expiry, IssuedAt time.Time
	// JTI is the jti claim, "" if absent (never "" when Rule.SingleUse).
	JTI    string
	Issuer string
}

// NewTrust validates cfg and returns a Trust; it does no I/O. Issuers are
// discovered on the first token that names them.
func NewTrust(cfg TrustConfig) (*Trust, error) {
	var errs []error
	names := map[string]bool{}
	rules := make([]*compiledRule, 0, len(cfg.Rules))
	for i, r := range cfg.Rules {
		for _, err := range r.problems() {
			errs = append(errs, fmt.Errorf("rules[%d].%w", i, err))
		}
		if r.Name != "" && names[r.Name] {
			errs = append(errs, fmt.Errorf("rules[%d].name: %q is used by an earlier rule", i, r.Name))
		}
		names[r.Name] = true
		rules = append(rules, compile(r))
	}
	if cfg.MinRefreshInterval < 0 {
		errs = append(errs, errors.New("min_refresh_interval: must not be negative"))
	}
	if cfg.Leeway < 0 || cfg.Leeway > maxLeeway {
		errs = append(errs, errors.New("leeway: must be between 0 and 1m"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("federation: trust: %w", err)
	}

	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: defaultTimeout}
	}
	if cfg.MinRefreshInterval == 0 {
		cfg.MinRefreshInterval = defaultMinRefresh
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = defaultLeeway
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	t := &Trust{
		issuers: map[string]*trustIssuer{},
		leeway:  cfg.Leeway,
		now:     cfg.Now,
		logger:  cfg.Logger.With("component", "federation.trust"),
	}
	for _, r := range rules {
		is := t.issuers[r.Issuer]
		if is == nil {
			is = &trustIssuer{url: r.Issuer, client: cfg.HTTPClient, interval: cfg.MinRefreshInterval, trust: t}
			t.issuers[r.Issuer] = is
		}
		is.rules = append(is.rules, r)
		for _, a := range r.Algorithms {
			if !slices.Contains(is.algs, a) {
				is.algs = append(is.algs, a)
			}
		}
	}
	return t, nil
}

// Issuers returns the trusted issuer URLs, sorted.
func (t *Trust) Issuers() []string {
	out := make([]string, 0, len(t.issuers))
	for iss := range t.issuers {
		out = append(out, iss)
	}
	slices.Sort(out)
	return out
}

// Verify checks rawToken, a JWT from an external issuer, and returns the
// first rule of its issuer (in config order) whose audience the token
// carries, whose algorithms include the token's, and whose pinned claims all
// match.
//
// Before any network request it refuses tokens over 16 KiB, tokens whose
// iss no rule names (ErrUntrustedIssuer), and tokens that are expired, carry
// none of the rules' audiences, or use an algorithm no rule allows
// (ErrInvalidIDToken); these checks are repeated after the signature. Then
// it discovers the issuer once (retried with backoff after a failure,
// ErrIssuerUnavailable meanwhile), verifies the signature against the
// issuer's rate-limited key set, iss, exp, nbf and iat (with leeway), and
// matches the rules (ErrNoRuleMatched). The error never contains the token.
func (t *Trust) Verify(ctx context.Context, rawToken string) (TrustMatch, error) {
	if len(rawToken) > maxSubjectToken {
		return TrustMatch{}, fmt.Errorf("federation: verify subject token: %w: larger than 16 KiB", ErrInvalidIDToken)
	}
	var pre jwt.RegisteredClaims
	tok, _, err := jwt.NewParser().ParseUnverified(rawToken, &pre)
	if err != nil {
		return TrustMatch{}, fmt.Errorf("federation: verify subject token: %w: %w", ErrInvalidIDToken, err)
	}
	is := t.issuers[pre.Issuer]
	if is == nil {
		return TrustMatch{}, fmt.Errorf("federation: verify subject token: %w: %q", ErrUntrustedIssuer, clean(pre.Issuer, 100))
	}
	alg := tok.Method.Alg()
	kid, _ := tok.Header["kid"].(string)
	if err := is.precheck(alg, pre, t.now()); err != nil {
		return TrustMatch{}, fmt.Errorf("federation: verify subject token: %w: %w", ErrInvalidIDToken, err)
	}

	verifier, keys, err := is.ready(ctx)
	if err != nil {
		return TrustMatch{}, fmt.Errorf("federation: verify subject token: %w", err)
	}
	if err := keys.ensure(ctx, kid); err != nil {
		return TrustMatch{}, fmt.Errorf("federation: verify subject token: %w", err)
	}
	idt, err := verifier.Verify(ctx, rawToken)
	if err != nil {
		return TrustMatch{}, fmt.Errorf("federation: verify subject token: %w: %w", ErrInvalidIDToken, err)
	}
	m, err := t.checkTimes(idt)
	if err != nil {
		return TrustMatch{}, fmt.Errorf("federation: verify subject token: %w: %w", ErrInvalidIDToken, err)
	}
	return is.match(ctx, m, alg, idt.Audience)
}

// checkTimes decodes the verified claims and checks exp, nbf and iat.
func (t *Trust) checkTimes(idt *oidc.IDToken) (TrustMatch, error) {
	var raw json.RawMessage
	if err := idt.Claims(&raw); err != nil {
		return TrustMatch{}, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var claims map[string]any
	if err := dec.Decode(&claims); err != nil {
		return TrustMatch{}, fmt.Errorf("decode claims: %w", err)
	}
	var times struct {
		Exp *jwt.NumericDate `json:"exp"`
		Nbf *jwt.NumericDate `json:"nbf"`
		Iat *jwt.NumericDate `json:"iat"`
	}
	if err := json.Unmarshal(raw, &times); err != nil {
		return TrustMatch{}, fmt.Errorf("decode time claims: %w", err)
	}
	now := t.now()
	switch {
	case times.Exp == nil:
		return TrustMatch{}, errors.New("exp: required")
	case times.Exp.Add(t.leeway).Before(now):
		return TrustMatch{}, fmt.Errorf("exp: expired at %s", times.Exp.UTC().Format(time.RFC3339))
	case times.Nbf != nil && times.Nbf.After(now.Add(t.leeway)):
		return TrustMatch{}, fmt.Errorf("nbf: not valid before %s", times.Nbf.UTC().Format(time.RFC3339))
	case times.Iat != nil && times.Iat.After(now.Add(t.leeway)):
		return TrustMatch{}, fmt.Errorf("iat: issued in the future, at %s", times.Iat.UTC().Format(time.RFC3339))
	}
	m := TrustMatch{Claims: claims, Expiry: times.Exp.UTC(), Issuer: idt.Issuer}
	if times.Iat != nil {
		m.IssuedAt = times.Iat.UTC()
	}
	m.JTI, _ = claims["jti"].(string)
	return m, nil
}

// trustIssuer is one trusted issuer: its rules and, once discovered, its
// verifier and key set.
type trustIssuer struct {
	url      string
	rules    []*compiledRule
	algs     []string // union of the rules' algorithms
	client   *http.Client
	interval time.Duration
	trust    *Trust

	mu          sync.Mutex
	verifier    *oidc.IDTokenVerifier // built once: keys is its cache
	keys        *keySet
	discovering chan struct{} // closed when the running discovery ends
	lastErr     error
	failures    int
	retryAt     time.Time
}

// precheck rejects, from unverified claims, what no rule of is could
// accept, so such tokens cause no discovery or key fetch.
func (is *trustIssuer) precheck(alg string, c jwt.RegisteredClaims, now time.Time) error {
	if !slices.Contains(is.algs, alg) {
		return fmt.Errorf("alg: %q is not allowed for this issuer", clean(alg, 20))
	}
	if c.ExpiresAt == nil {
		return errors.New("exp: required")
	}
	if c.ExpiresAt.Add(is.trust.leeway).Before(now) {
		return fmt.Errorf("exp: expired at %s", c.ExpiresAt.UTC().Format(time.RFC3339))
	}
	for _, r := range is.rules {
		if slices.Contains(c.Audience, r.Audience) {
			return nil
		}
	}
	return errors.New("aud: carries no audience a trust rule of this issuer requires")
}

// ready returns the verifier and key set, discovering the issuer if no
// discovery has succeeded yet. Concurrent callers share one discovery;
// after a failure, callers get ErrIssuerUnavailable without a request until
// the backoff (1s doubling to 5m) has passed.
func (is *trustIssuer) ready(ctx context.Context) (*oidc.IDTokenVerifier, *keySet, error) {
	is.mu.Lock()
	if is.verifier != nil {
		defer is.mu.Unlock()
		return is.verifier, is.keys, nil
	}
	ch := is.discovering
	if ch == nil {
		if is.trust.now().Before(is.retryAt) {
			defer is.mu.Unlock()
			return nil, nil, fmt.Errorf("%w: discovery failed, next try at %s: %w",
				ErrIssuerUnavailable, is.retryAt.UTC().Format(time.RFC3339), is.lastErr)
		}
		ch = make(chan struct{})
		is.discovering = ch
		go is.discover(context.WithoutCancel(ctx), ch)
	}
	is.mu.Unlock()

	select {
	case <-ch:
	case <-ctx.Done():
		return nil, nil, fmt.Errorf("%w: waiting for discovery: %w", ErrIssuerUnavailable, context.Cause(ctx))
	}
	is.mu.Lock()
	defer is.mu.Unlock()
	if is.verifier == nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrIssuerUnavailable, is.lastErr)
	}
	return is.verifier, is.keys, nil
}

// discover runs discovery (it must report exactly is.url) and builds the
// one verifier and key set; it closes ch when done.
func (is *trustIssuer) discover(ctx context.Context, ch chan struct{}) {
	t := is.trust
	err := func() error {
		ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
		defer cancel()
		p, err := oidc.NewProvider(oidc.ClientContext(ctx, is.client), is.url)
		if err != nil {
			return fmt.Errorf("discover %s: %w", is.url, redact(err))
		}
		var meta struct {
			JWKSURI string `json:"jwks_uri"`
		}
		if err := p.Claims(&meta); err != nil || meta.JWKSURI == "" {
			return fmt.Errorf("discover %s: no jwks_uri", is.url)
		}
		algs := make([]jose.SignatureAlgorithm, len(is.algs))
		for i, a := range is.algs {
			algs[i] = jose.SignatureAlgorithm(a)
		}
		keys := &keySet{
			url: meta.JWKSURI, client: is.client, algs: algs, interval: is.interval,
			now: t.now, logger: t.logger.With("issuer", is.url),
		}
		verifier := oidc.NewVerifier(is.url, keys, &oidc.Config{
			SkipClientIDCheck:    true, // each rule's audience is checked in match
			SupportedSigningAlgs: slices.Clone(is.algs),
			Now:                  func() time.Time { return t.now().Add(-t.leeway) },
		})
		is.mu.Lock()
		is.verifier, is.keys = verifier, keys
		is.mu.Unlock()
		return nil
	}()

	is.mu.Lock()
	defer is.mu.Unlock()
	is.discovering = nil
	defer close(ch)
	if err == nil {
		is.failures, is.lastErr = 0, nil
		t.logger.InfoContext(ctx, "trusted issuer discovered", "issuer", is.url)
		return
	}
	is.failures++
	backoff := discoveryBackoffMax
	if is.failures <= 10 {
		backoff = min(discoveryBackoffMin<<(is.failures-1), discoveryBackoffMax)
	}
	is.retryAt = t.now().Add(backoff)
	is.lastErr = err
	t.logger.WarnContext(ctx, "trusted issuer discovery failed", "issuer", is.url, "retry_in", backoff, "err", err)
}

// match returns the first rule of is that accepts m, with the subject
// rendered. The rules tried and why they failed are logged at Debug.
func (is *trustIssuer) match(ctx context.Context, m TrustMatch, alg string, aud []string) (TrustMatch, error) {
	tried := make([]string, 0, len(is.rules))
	for _, r := range is.rules {
		why := r.refuse(m, alg, aud)
		if why != "" {
			tried = append(tried, r.Name+": "+why)
			continue
		}
		sub, err := r.render(m.Claims)
		if err != nil {
			is.trust.logger.DebugContext(ctx, "trust rule matched but its subject cannot be rendered",
				"issuer", is.url, "rule", r.Name, "jti", m.JTI, "err", err)
			return TrustMatch{}, fmt.Errorf("federation: verify subject token: %w: rule %q: subject: %w", ErrNoRuleMatched, r.Name, err)
		}
		m.Rule, m.Subject = &r.TrustRule, sub
		return m, nil
	}
	is.trust.logger.DebugContext(ctx, "no trust rule matched", "issuer", is.url, "jti", m.JTI, "rules_tried", tried)
	return TrustMatch{}, fmt.Errorf("federation: verify subject token: %w (issuer %s)", ErrNoRuleMatched, is.url)
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

// TrustRule lets tokens from one external issuer be exchanged for Keyward
// tokens. See docs/trust-rules.md for the semantics and presets.
type TrustRule struct {
	// Name identifies the rule in logs and errors; unique. Pattern: [a-z0-9-]+
	Name string
	// Issuer is the exact iss, e.g. https://token.actions.githubusercontent.com.
	Issuer string
	// Audience is a value the token's aud must contain, usually Keyward's
	// issuer URL.
	Audience string
	// Claims pins top-level claims (no dotted paths): every one must be
	// present and match. A value is a glob: '*' matches any run of
	// characters except '/', '**' any run including '/', '?' one character
	// except '/', and '\' makes the next character literal. A value with
	// none of these is an exact match. Booleans and numbers match their
	// JSON text ("true", "42"); null, arrays and objects never match.
	Claims map[string]string
	// Subject is the template of the Keyward subject: each {claim} is
	// replaced by that claim, which must be a non-empty string without
	// control characters. No escape exists for literal braces.
	Subject string
	// Audiences the issued Keyward token may carry; at least one.
	Audiences []string
	// Scopes the issued Keyward token may receive.
	Scopes []string
	// MaxTTL bounds the issued token's lifetime. Default: 10m; at most 24h.
	MaxTTL time.Duration
	// PublicClient lets a client without a secret use this rule: the
	// subject token is its credential.
	PublicClient bool
	// SingleUse: the token must carry a jti, which the caller may exchange
	// once (TrustMatch.JTI; the caller owns the replay store).
	SingleUse bool
	// Algorithms the token may be signed with. Default: RS256, ES256.
	Algorithms []string
}

// reservedClaims cannot be pinned: other fields or the verifier check them.
var reservedClaims = map[string]string{
	"iss": "use issuer", "aud": "use audience", "exp": "checked by the verifier",
	"nbf": "checked by the verifier", "iat": "checked by the verifier",
}

// asymmetricAlgs are the algorithms a rule may allow; none and HS* never.
var asymmetricAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// Validate reports every problem with r, each prefixed by its field path
// (e.g. `claims["ref"]: …`). It does no I/O.
func (r TrustRule) Validate() error { return errors.Join(r.problems()...) }

func (r TrustRule) problems() []error {
	var errs []error
	switch {
	case r.Name == "":
		errs = append(errs, errors.New("name: must not be empty"))
	case !idPattern.MatchString(r.Name):
		errs = append(errs, fmt.Errorf("name: %q must match [a-z0-9-]+", r.Name))
	}
	if err := checkURL(r.Issuer); err != nil {
		errs = append(errs, fmt.Errorf("issuer: %w", err))
	}
	if r.Audience == "" {
		errs = append(errs, errors.New("audience: must not be empty"))
	}
	for _, name := range sortedKeys(r.Claims) {
		field := fmt.Sprintf("claims[%q]", name)
		if name == "" {
			errs = append(errs, fmt.Errorf("%s: claim name must not be empty", field))
		} else if why, ok := reservedClaims[name]; ok {
			errs = append(errs, fmt.Errorf("%s: cannot be pinned (%s)", field, why))
		}
		if _, err := parseGlob(r.Claims[name]); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", field, err))
		}
	}
	if _, err := parseTemplate(r.Subject); err != nil {
		errs = append(errs, fmt.Errorf("subject: %w", err))
	}
	if len(r.Audiences) == 0 {
		errs = append(errs, errors.New("audiences: must list at least one audience"))
	}
	for i, a := range r.Audiences {
		switch {
		case strings.TrimSpace(a) != a || a == "":
			errs = append(errs, fmt.Errorf("audiences[%d]: %q must be non-empty without surrounding space", i, a))
		case slices.Index(r.Audiences, a) < i:
			errs = append(errs, fmt.Errorf("audiences[%d]: %q is listed twice", i, a))
		}
	}
	for i, s := range r.Scopes {
		if !validScope(s) {
			errs = append(errs, fmt.Errorf("scopes[%d]: %q is not a valid scope token", i, s))
		}
	}
	if r.MaxTTL < 0 || r.MaxTTL > maxRuleTTL {
		errs = append(errs, fmt.Errorf("max_ttl: %s must be between 0 (default 10m) and 24h", r.MaxTTL))
	}
	for i, a := range r.Algorithms {
		if !slices.Contains(asymmetricAlgs, a) {
			errs = append(errs, fmt.Errorf("algorithms[%d]: %q is not one of %s (none and HMAC are never accepted)",
				i, a, strings.Join(asymmetricAlgs, ", ")))
		}
	}
	return errs
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
		r.MaxTTL = defaultRuleTTL
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
