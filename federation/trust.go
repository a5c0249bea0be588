package federation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
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
	errs = append(errs, OverlappingSubjects(cfg.Rules)...)
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
// match. It is ParseSubjectToken followed by VerifyParsed.
func (t *Trust) Verify(ctx context.Context, rawToken string) (TrustMatch, error) {
	tok, err := ParseSubjectToken(rawToken)
	if err != nil {
		return TrustMatch{}, fmt.Errorf("federation: verify subject token: %w: %w", ErrInvalidIDToken, err)
	}
	return t.VerifyParsed(ctx, tok)
}

// VerifyParsed is Verify for a token already decoded by ParseSubjectToken;
// nothing is decoded again.
//
// Before any network request it refuses tokens whose iss no rule names
// (ErrUntrustedIssuer), and tokens that are expired, carry none of the
// rules' audiences, or use an algorithm no rule allows (ErrInvalidIDToken).
// Then it discovers the issuer once (retried with backoff after a failure,
// ErrIssuerUnavailable meanwhile), verifies the signature over the decoded
// segments against the issuer's rate-limited key set (an allowed alg, a key
// of the alg's type), checks iss exactly, exp (required), nbf and iat (with
// leeway), and matches the rules (ErrNoRuleMatched). The error never
// contains the token.
func (t *Trust) VerifyParsed(ctx context.Context, tok *SubjectToken) (TrustMatch, error) {
	is := t.issuers[tok.issuer]
	if is == nil {
		return TrustMatch{}, fmt.Errorf("federation: verify subject token: %w: %q", ErrUntrustedIssuer, clean(tok.issuer, 100))
	}
	if err := is.precheck(tok, t.now()); err != nil {
		return TrustMatch{}, fmt.Errorf("federation: verify subject token: %w: %w", ErrInvalidIDToken, err)
	}

	keys, err := is.ready(ctx)
	if err != nil {
		return TrustMatch{}, fmt.Errorf("federation: verify subject token: %w", err)
	}
	if err := keys.ensure(ctx, tok.kid); err != nil {
		return TrustMatch{}, fmt.Errorf("federation: verify subject token: %w", err)
	}
	if err := keys.verify(ctx, tok); err != nil {
		return TrustMatch{}, fmt.Errorf("federation: verify subject token: %w: %w", ErrInvalidIDToken, err)
	}
	m, err := t.checkVerified(is, tok)
	if err != nil {
		return TrustMatch{}, fmt.Errorf("federation: verify subject token: %w: %w", ErrInvalidIDToken, err)
	}
	return is.match(ctx, m, tok.alg, tok.audience)
}

// checkVerified checks the claims of a token whose signature verified: iss
// exactly is's, exp present and not past, nbf and iat not in the future,
// each with leeway.
func (t *Trust) checkVerified(is *trustIssuer, tok *SubjectToken) (TrustMatch, error) {
	now := t.now()
	switch {
	case tok.issuer != is.url:
		return TrustMatch{}, fmt.Errorf("iss: %q is not %q", clean(tok.issuer, 100), is.url)
	case tok.exp.IsZero():
		return TrustMatch{}, errors.New("exp: required")
	case tok.exp.Add(t.leeway).Before(now):
		return TrustMatch{}, fmt.Errorf("exp: expired at %s", tok.exp.Format(time.RFC3339))
	case !tok.nbf.IsZero() && tok.nbf.After(now.Add(t.leeway)):
		return TrustMatch{}, fmt.Errorf("nbf: not valid before %s", tok.nbf.Format(time.RFC3339))
	case !tok.iat.IsZero() && tok.iat.After(now.Add(t.leeway)):
		return TrustMatch{}, fmt.Errorf("iat: issued in the future, at %s", tok.iat.Format(time.RFC3339))
	}
	return TrustMatch{Claims: tok.claims, Expiry: tok.exp, IssuedAt: tok.iat, JTI: tok.jti, Issuer: tok.issuer}, nil
}

// trustIssuer is one trusted issuer: its rules and, once discovered, its
// key set.
type trustIssuer struct {
	url      string
	rules    []*compiledRule
	algs     []string // union of the rules' algorithms
	client   *http.Client
	interval time.Duration
	trust    *Trust

	mu          sync.Mutex
	keys        *keySet       // set once by the first successful discovery
	discovering chan struct{} // closed when the running discovery ends
	lastErr     error
	failures    int
	retryAt     time.Time
}

// precheck rejects, from unverified claims, what no rule of is could
// accept, so such tokens cause no discovery or key fetch.
func (is *trustIssuer) precheck(tok *SubjectToken, now time.Time) error {
	if !slices.Contains(is.algs, tok.alg) {
		return fmt.Errorf("alg: %q is not allowed for this issuer", clean(tok.alg, 20))
	}
	if tok.exp.IsZero() {
		return errors.New("exp: required")
	}
	if tok.exp.Add(is.trust.leeway).Before(now) {
		return fmt.Errorf("exp: expired at %s", tok.exp.Format(time.RFC3339))
	}
	for _, r := range is.rules {
		if slices.Contains(tok.audience, r.Audience) {
			return nil
		}
	}
	return errors.New("aud: carries no audience a trust rule of this issuer requires")
}

// ready returns the key set, discovering the issuer if no
// discovery has succeeded yet. Concurrent callers share one discovery;
// after a failure, callers get ErrIssuerUnavailable without a request until
// the backoff (1s doubling to 5m) has passed.
func (is *trustIssuer) ready(ctx context.Context) (*keySet, error) {
	is.mu.Lock()
	if is.keys != nil {
		defer is.mu.Unlock()
		return is.keys, nil
	}
	ch := is.discovering
	if ch == nil {
		if is.trust.now().Before(is.retryAt) {
			defer is.mu.Unlock()
			return nil, fmt.Errorf("%w: discovery failed, next try at %s: %w",
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
		return nil, fmt.Errorf("%w: waiting for discovery: %w", ErrIssuerUnavailable, context.Cause(ctx))
	}
	is.mu.Lock()
	defer is.mu.Unlock()
	if is.keys == nil {
		return nil, fmt.Errorf("%w: %w", ErrIssuerUnavailable, is.lastErr)
	}
	return is.keys, nil
}

// discover runs discovery (it must report exactly is.url) and builds the
// key set; it closes ch when done.
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
		keys := newKeySet(meta.JWKSURI, is.client, algs, is.interval, t.now, t.logger.With("issuer", is.url))
		is.mu.Lock()
		is.keys = keys
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

// OverlappingSubjects refuses rules of different issuers whose subject
// templates could render the same subject: each issuer's subjects must
// start with their own literal prefix, and no prefix may begin another
// issuer's. Otherwise a token from one issuer (say a CI system whose
// claims its users control) could be given the subject of another's
// workload. Each error starts "rules[i].subject: ". NewTrust runs it; cmd
// runs it for check-config.
func OverlappingSubjects(rules []TrustRule) []error {
	var errs []error
	for i, r := range rules {
		pi, err := parseTemplate(r.Subject)
		if err != nil {
			continue // reported by problems
		}
		for j := range i {
			o := rules[j]
			if o.Issuer == r.Issuer {
				continue
			}
			pj, err := parseTemplate(o.Subject)
			if err != nil {
				continue
			}
			a, b := subjectPrefix(pi), subjectPrefix(pj)
			if a == "" || b == "" || strings.HasPrefix(a, b) || strings.HasPrefix(b, a) {
				errs = append(errs, fmt.Errorf("rules[%d].subject: %q may render the same subjects as rules[%d] (%q), which trusts another issuer; start each issuer's subjects with its own literal prefix, e.g. \"gitlab:\" and \"github:\"", i, r.Subject, j, o.Subject))
			}
		}
	}
	return errs
}
