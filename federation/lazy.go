package federation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ErrUpstreamUnavailable: the upstream's discovery has not succeeded yet,
// so it cannot take sign-ins; a LazyUpstream keeps retrying in the
// background. It says nothing about the person or the token.
var ErrUpstreamUnavailable = errors.New("upstream unavailable")

// Retry defaults of a LazyUpstream.
const (
	// FirstDiscoveryTimeout bounds Run's first discovery attempt, so an
	// upstream that does not answer delays start-up (the binary waits for
	// Attempted before it serves) by at most this long.
	FirstDiscoveryTimeout = 5 * time.Second
	// lazyRetryTimeout bounds each background discovery.
	lazyRetryTimeout = 30 * time.Second
	// lazyMaxIDToken bounds a native ID token parsed before the upstream is
	// ready, as VerifyIDToken does.
	lazyMaxIDToken  = 16 << 10
	defaultMinDelay = time.Second
	defaultMaxDelay = 5 * time.Minute
)

// LazyUpstream is an upstream whose discovery may still be pending: it is
// configured (ID, Name, Issuer are known at once) but it takes sign-ins only
// once its discovery (Config.Open, run by Run) has succeeded. NewLazy builds
// it without I/O; Run discovers and retries. It is safe for concurrent use;
// once ready it stays ready and every method delegates to the opened
// *Upstream.
//
// Before it is ready (Run not started yet, discovery under way or failed):
// Ready returns an error wrapping ErrUpstreamUnavailable;
// AuthCodeURL returns ""; Exchange, VerifyLogoutToken, Refresh and
// VerifyIDToken return errors wrapping ErrUpstreamUnavailable (Refresh also
// ErrRefreshUnavailable, VerifyIDToken also ErrIssuerUnavailable, so their
// callers treat it as transient). Check Ready before sending a person there.
type LazyUpstream struct {
	cfg       Config // Name defaulted
	up        atomic.Pointer[Upstream]
	last      atomic.Pointer[lazyFailure] // nil before the first failure and once opened
	running   atomic.Bool                 // Run was called
	attempted chan struct{}               // closed when the first attempt has ended
	done      chan struct{}               // closed when Run returns

	client *http.Client
	base   *slog.Logger // for Open, which adds its own attributes
	logger *slog.Logger
	opts   lazyOptions
}

// lazyFailure is the last failed discovery.
type lazyFailure struct {
	err      error
	attempt  int       // failed attempts so far
	first    time.Time // of the first failure
	at       time.Time // of the last failure
	next     time.Time // of the next attempt; zero: retries stopped
	stopping bool      // the retry loop ended (ctx done) without success
}

// LazyOption tunes NewLazy.
type LazyOption func(*lazyOptions)

type lazyOptions struct {
	minDelay, maxDelay time.Duration
	firstTimeout       time.Duration
	retryTimeout       time.Duration
	// Test hooks.
	now    func() time.Time
	jitter func() float64                                  // in [0, 1)
	wait   func(ctx context.Context, d time.Duration) bool // false: ctx ended
}

// WithRetryDelay sets the delay before the first retry (minDelay; doubled
// after every failure) and its cap (maxDelay). Each delay varies by ±20% so
// that replicas do not retry in step. Default: 1s doubling to 5m.
func WithRetryDelay(minDelay, maxDelay time.Duration) LazyOption {
	return func(o *lazyOptions) {
		if minDelay > 0 {
			o.minDelay = minDelay
		}
		if maxDelay > 0 {
			o.maxDelay = maxDelay
		}
	}
}

// NewLazy validates cfg (a configuration error fails at once) and returns
// an upstream that is not ready yet. It does no I/O and starts nothing: Run
// does the discovery. httpClient and logger are as for Config.Open.
func NewLazy(cfg Config, httpClient *http.Client, logger *slog.Logger, opts ...LazyOption) (*LazyUpstream, error) {
	cfg.SetDefaults() // the issuer too (google's): native sign-in finds the upstream by it
	if err := cfg.validateOpen(); err != nil {
		return nil, fmt.Errorf("federation: upstream %q: %w", cfg.ID, err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	o := lazyOptions{
		minDelay:     defaultMinDelay,
		maxDelay:     defaultMaxDelay,
		firstTimeout: FirstDiscoveryTimeout,
		retryTimeout: lazyRetryTimeout,
		now:          time.Now,
		jitter:       rand.Float64,
		wait:         sleep,
	}
	for _, opt := range opts {
		opt(&o)
	}
	o.maxDelay = max(o.maxDelay, o.minDelay)
	return &LazyUpstream{
		cfg:       cfg,
		attempted: make(chan struct{}),
		done:      make(chan struct{}),
		client:    httpClient,
		base:      logger,
		logger:    logger.With("component", "federation", "upstream", cfg.ID),
		opts:      o,
	}, nil
}

// Run discovers the upstream: one attempt bounded by FirstDiscoveryTimeout
// (Attempted is closed when it ends), then, if it failed, retries with
// exponential backoff (1s doubling to 5m, ±20% jitter; see WithRetryDelay)
// until discovery succeeds or ctx ends. Every failure is logged at Warn
// (upstream id, attempt, next retry, the cause), the recovery at Info. It
// returns nil once the upstream is open or ctx has ended (cancel ctx at
// shutdown to stop the retries); a second call returns an error at once.
func (l *LazyUpstream) Run(ctx context.Context) error {
	if l.running.Swap(true) {
		return fmt.Errorf("federation: upstream %q: Run called twice", l.cfg.ID)
	}
	defer close(l.done)
	ok := l.attempt(ctx, 1, l.opts.firstTimeout)
	close(l.attempted)
	if !ok {
		l.retry(ctx)
	}
	return nil
}

// Attempted is closed once Run's first discovery attempt has ended, with
// or without success: the binary waits for it (at most
// FirstDiscoveryTimeout) before it serves, so an upstream that is up is
// ready when the first request arrives.
func (l *LazyUpstream) Attempted() <-chan struct{} { return l.attempted }

// attempt runs discovery once, bounded by timeout, and records the result.
// It reports whether the upstream is now open.
func (l *LazyUpstream) attempt(ctx context.Context, n int, timeout time.Duration) bool {
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// Open keeps only what it needs from actx: go-oidc's key set detaches
	// from its cancellation, so the deadline ends discovery only.
	up, err := l.cfg.Open(actx, l.client, l.base)
	if err == nil {
		l.up.Store(up)
		if prev := l.last.Swap(nil); prev != nil {
			l.logger.InfoContext(ctx, "upstream discovery recovered; sign-ins through it are open",
				"event", "upstream_recovered", "attempt", n, "unavailable_for", l.opts.now().Sub(prev.first).Round(time.Millisecond))
		}
		return true
	}
	now := l.opts.now()
	f := &lazyFailure{err: err, attempt: n, first: now, at: now}
	if prev := l.last.Load(); prev != nil {
		f.first = prev.first
	}
	if ctx.Err() != nil {
		f.stopping = true
		l.last.Store(f)
		return false
	}
	delay := l.delay(n)
	f.next = now.Add(delay)
	l.last.Store(f)
	l.logger.WarnContext(ctx, "upstream discovery failed; sign-ins through it are unavailable until it succeeds",
		"event", "upstream_unavailable", "attempt", n, "retry_in", delay.Round(time.Millisecond), "next_retry", f.next, "err", err)
	return false
}

// retry runs discovery with backoff until it succeeds or ctx ends.
func (l *LazyUpstream) retry(ctx context.Context) {
	for n := 2; ; n++ {
		f := l.last.Load()
		if f == nil || f.stopping || !l.opts.wait(ctx, f.next.Sub(f.at)) {
			l.stop(ctx)
			return
		}
		if l.attempt(ctx, n, l.opts.retryTimeout) {
			return
		}
	}
}

// stop records that retries ended with ctx.
func (l *LazyUpstream) stop(ctx context.Context) {
	f := l.last.Load()
	if f == nil {
		return
	}
	stopped := *f
	stopped.stopping, stopped.next = true, time.Time{}
	l.last.Store(&stopped)
	l.logger.InfoContext(ctx, "upstream discovery retries stopped", "attempts", f.attempt)
}

// delay is the wait after the n-th failed attempt: minDelay·2ⁿ⁻¹, capped
// at maxDelay, times a factor in [0.8, 1.2).
func (l *LazyUpstream) delay(n int) time.Duration {
	return backoff(l.opts.minDelay, l.opts.maxDelay, n, l.opts.jitter())
}

func backoff(minDelay, maxDelay time.Duration, n int, jitter float64) time.Duration {
	d := minDelay
	for i := 1; i < n && d < maxDelay; i++ {
		d *= 2
	}
	d = min(d, maxDelay)
	return time.Duration(float64(d) * (0.8 + 0.4*jitter))
}

// sleep waits d or until ctx ends; false when ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Ready returns nil once discovery has succeeded; before, an error wrapping
// ErrUpstreamUnavailable and, after a failed attempt, the last discovery
// error, saying when discovery last failed and when it will be retried. The
// text holds no secret and no upstream body.
func (l *LazyUpstream) Ready() error {
	if l.up.Load() != nil {
		return nil
	}
	f := l.last.Load()
	if f == nil {
		if l.up.Load() != nil { // opened between the loads: up is stored before last is cleared
			return nil
		}
		return &unavailableError{msg: fmt.Sprintf("federation: upstream %q unavailable: discovery has not completed yet", l.cfg.ID)}
	}
	when := "retries stopped"
	if !f.next.IsZero() && !f.stopping {
		when = "next retry at " + f.next.UTC().Format(time.RFC3339)
	}
	cause := strings.TrimPrefix(f.err.Error(), fmt.Sprintf("federation: upstream %q: ", l.cfg.ID))
	return &unavailableError{
		msg: fmt.Sprintf("federation: upstream %q unavailable: discovery attempt %d failed at %s; %s: %s",
			l.cfg.ID, f.attempt, f.at.UTC().Format(time.RFC3339), when, cause),
		cause: f.err,
	}
}

// unavailableError is ErrUpstreamUnavailable with the discovery error that
// caused it.
type unavailableError struct {
	msg   string
	cause error
}

func (e *unavailableError) Error() string { return e.msg }

func (e *unavailableError) Unwrap() []error {
	if e.cause == nil {
		return []error{ErrUpstreamUnavailable}
	}
	return []error{ErrUpstreamUnavailable, e.cause}
}

// Done is closed when Run has returned: no more discovery will run (the
// upstream is open, or Run's ctx ended first).
func (l *LazyUpstream) Done() <-chan struct{} { return l.done }

// unavailable is the error of a call before the upstream is ready.
func (l *LazyUpstream) unavailable(op string, also ...error) error {
	err := l.Ready()
	if err == nil { // opened meanwhile; the caller may try again
		err = &unavailableError{msg: fmt.Sprintf("federation: upstream %q unavailable: opened meanwhile, try again", l.cfg.ID)}
	}
	for _, e := range also {
		err = fmt.Errorf("%w: %w", e, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// ID returns the stable upstream id.
func (l *LazyUpstream) ID() string { return l.cfg.ID }

// Name returns the display name: the opened upstream's, before that the
// configured one (default: the id).
func (l *LazyUpstream) Name() string {
	if up := l.up.Load(); up != nil {
		return up.Name()
	}
	return l.cfg.Name
}

// Issuer returns the opened upstream's exact issuer URL, before that the
// configured one.
func (l *LazyUpstream) Issuer() string {
	if up := l.up.Load(); up != nil {
		return up.Issuer()
	}
	return l.cfg.Issuer
}

// AuthCodeURL is Upstream.AuthCodeURL, or "" while the upstream is not
// ready (check Ready first).
func (l *LazyUpstream) AuthCodeURL(state, nonce, pkceVerifier string, opts AuthOptions) string {
	if up := l.up.Load(); up != nil {
		return up.AuthCodeURL(state, nonce, pkceVerifier, opts)
	}
	return ""
}

// Exchange is Upstream.Exchange; before the upstream is ready it wraps
// ErrUpstreamUnavailable.
func (l *LazyUpstream) Exchange(ctx context.Context, code, pkceVerifier, nonce string) (Identity, error) {
	if up := l.up.Load(); up != nil {
		return up.Exchange(ctx, code, pkceVerifier, nonce)
	}
	return Identity{}, l.unavailable("federation: exchange code")
}

// CheckAuthorizationResponseIssuer is
// Upstream.CheckAuthorizationResponseIssuer; before the upstream is ready
// it wraps ErrUpstreamUnavailable (no login can have been sent there).
func (l *LazyUpstream) CheckAuthorizationResponseIssuer(iss string) error {
	if up := l.up.Load(); up != nil {
		return up.CheckAuthorizationResponseIssuer(iss)
	}
	return l.unavailable("federation: check authorization response iss")
}

// VerifyIDToken is Upstream.VerifyIDToken. Before the upstream is ready it
// still refuses, with ErrNativeNotAccepted and without any request, a token
// native sign-in would refuse for its iss or aud; any other token gets an
// error wrapping ErrIssuerUnavailable and ErrUpstreamUnavailable.
func (l *LazyUpstream) VerifyIDToken(ctx context.Context, raw string) (Identity, error) {
	if up := l.up.Load(); up != nil {
		return up.VerifyIDToken(ctx, raw)
	}
	const op = "federation: verify native id token"
	if len(l.cfg.NativeClientIDs) == 0 {
		return Identity{}, fmt.Errorf("%s: %w: native sign-in is off for upstream %q", op, ErrNativeNotAccepted, l.cfg.ID)
	}
	if len(raw) > lazyMaxIDToken {
		return Identity{}, fmt.Errorf("%s: %w: larger than 16 KiB", op, ErrInvalidIDToken)
	}
	var pre jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(raw, &pre); err != nil {
		return Identity{}, fmt.Errorf("%s: %w: %w", op, ErrInvalidIDToken, err)
	}
	if pre.Issuer != l.cfg.Issuer {
		return Identity{}, fmt.Errorf("%s: %w: iss %.100q is not the upstream's", op, ErrNativeNotAccepted, pre.Issuer)
	}
	if !slices.ContainsFunc(pre.Audience, func(aud string) bool { return slices.Contains(l.cfg.NativeClientIDs, aud) }) {
		return Identity{}, fmt.Errorf("%s: %w: aud names no native client id of upstream %q", op, ErrNativeNotAccepted, l.cfg.ID)
	}
	return Identity{}, l.unavailable(op, ErrIssuerUnavailable)
}

// NativePublicClients is Upstream.NativePublicClients, from the
// configuration while the upstream is not ready.
func (l *LazyUpstream) NativePublicClients() bool {
	if up := l.up.Load(); up != nil {
		return up.NativePublicClients()
	}
	return l.cfg.NativePublicClients && len(l.cfg.NativeClientIDs) > 0
}

// VerifyLogoutToken is Upstream.VerifyLogoutToken; before the upstream is
// ready it wraps ErrUpstreamUnavailable.
func (l *LazyUpstream) VerifyLogoutToken(ctx context.Context, raw string) (LogoutClaims, error) {
	if up := l.up.Load(); up != nil {
		return up.VerifyLogoutToken(ctx, raw)
	}
	return LogoutClaims{}, l.unavailable("federation: verify logout token")
}

// RecheckInterval is Config.RecheckInterval.
func (l *LazyUpstream) RecheckInterval() time.Duration { return time.Duration(l.cfg.RecheckInterval) }

// RecheckMaxAge is Upstream.RecheckMaxAge.
func (l *LazyUpstream) RecheckMaxAge() time.Duration { return l.cfg.recheckMaxAge() }

// Refresh is Upstream.Refresh; before the upstream is ready it wraps
// ErrRefreshUnavailable and ErrUpstreamUnavailable (transient: the
// re-check tries again at the next refresh).
func (l *LazyUpstream) Refresh(ctx context.Context, refreshToken string) (string, error) {
	if up := l.up.Load(); up != nil {
		return up.Refresh(ctx, refreshToken)
	}
	return "", l.unavailable("federation: refresh", ErrRefreshUnavailable)
}
