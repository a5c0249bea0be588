package broker

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/time/rate"
)

// Per-client limits at /token. Each request is judged before fosite sees
// it, so a refused request reads and writes nothing in the store:
//
//   - A client that authenticates (its secret checked here, as cheaply as
//     fosite does: SHA-256 in constant time) takes a token from its own
//     bucket, keyed by client id. Only the client itself can spend it: a
//     request that merely names a client_id never touches that bucket.
//   - A public client cannot authenticate, so its bucket is keyed by
//     (client id, source address): one address cannot spend the bucket of
//     the app's other users.
//   - A failed authentication (an unknown client, a wrong secret, no
//     credentials at all) takes a token from the failure bucket of
//     (claimed client id, source address) and from that of the source
//     address alone. While either is empty, further requests from that
//     address naming that client id are refused before any secret is
//     compared, so guessing is slowed to the failure rate; the same client
//     id from any other address is unaffected, so nobody can lock a
//     legitimate client out by failing in its name.
//
// Refusals are 429 with Retry-After and the RFC 6749 §5.2 error
// temporarily_unavailable (RFC 6749 has no code for "too many requests";
// this is the registered code that tells a client to retry later, and 429
// is what HTTP clients and their retry policies understand).

// TokenLimits bounds the token requests of each client. Zero fields take
// the defaults noted.
type TokenLimits struct {
	// PerSecond is the sustained rate of one client (a confidential client
	// by id; a public client per source address). Default: 500, about
	// twice what a 2-core machine answers (docs/performance.md: ~265
	// refreshes/s with RS256 and bbolt+fsync): the limit is there so that
	// one client cannot take a large machine's whole store, and an
	// operator who knows the clients sets it lower.
	PerSecond int
	// Burst is how many requests one client may make at once. Default: 1000.
	Burst int
	// FailuresPerMinute is the sustained rate of failed client
	// authentications per (claimed client id, source address). Default:
	// 10: a client with a mistyped secret sees its error ten times, while
	// guessing a 32-byte secret at 10 per minute is hopeless.
	FailuresPerMinute int
	// FailureBurst. Default: 10.
	FailureBurst int
	// AddressFailuresPerMinute is the sustained rate of failed client
	// authentications per source address, whatever client id they name
	// (an IPv4 address or an IPv6 /64). Default: 60.
	AddressFailuresPerMinute int
	// AddressFailureBurst. Default: 30.
	AddressFailureBurst int
	// MaxTracked bounds each table of buckets; past it the least recently
	// seen is forgotten (its bucket starts full again). Default: 10000.
	MaxTracked int
	// InsecureUnlimited turns the limits off (benchmarks).
	InsecureUnlimited bool
}

func (l *TokenLimits) withDefaults() {
	def := func(p *int, v int) {
		if *p <= 0 {
			*p = v
		}
	}
	def(&l.PerSecond, DefaultTokenPerSecond)
	def(&l.Burst, DefaultTokenBurst)
	def(&l.FailuresPerMinute, DefaultTokenFailuresPerMinute)
	def(&l.FailureBurst, DefaultTokenFailureBurst)
	def(&l.AddressFailuresPerMinute, 60)
	def(&l.AddressFailureBurst, 30)
	def(&l.MaxTracked, 10000)
}

// The defaults of TokenLimits that keyward.yaml's limits section names.
const (
	DefaultTokenPerSecond         = 500
	DefaultTokenBurst             = 1000
	DefaultTokenFailuresPerMinute = 10
	DefaultTokenFailureBurst      = 10
)

// Token limit scopes: the label of keyward_token_requests_limited_total.
const (
	TokenLimitClient          = "client"           // the client's own bucket
	TokenLimitClientFailures  = "client_failures"  // failures of (client id, address)
	TokenLimitAddressFailures = "address_failures" // failures of one address
)

var tokenLimitScopes = []string{TokenLimitClient, TokenLimitClientFailures, TokenLimitAddressFailures}

type failKey struct {
	client string
	addr   netip.Prefix
}

type limitedBucket struct {
	lim    *rate.Limiter
	logged time.Time // when a refusal of this key was last logged
}

// tokenLimiter holds the buckets. It is safe for concurrent use.
type tokenLimiter struct {
	cfg     TokenLimits
	clients *clientRegistry
	log     *slog.Logger
	now     func() time.Time

	mu sync.Mutex
	// ok is keyed by client id (addr invalid) for confidential clients,
	// by (id, address) for public ones.
	ok        *simplelru.LRU[failKey, *limitedBucket]
	failures  *simplelru.LRU[failKey, *limitedBucket]
	addresses *simplelru.LRU[netip.Prefix, *limitedBucket]

	refused [3]atomic.Uint64 // by tokenLimitScopes index
}

func newTokenLimiter(cfg TokenLimits, clients *clientRegistry, log *slog.Logger, now func() time.Time) (*tokenLimiter, error) {
	if cfg.InsecureUnlimited {
		return nil, nil
	}
	cfg.withDefaults()
	l := &tokenLimiter{cfg: cfg, clients: clients, log: log, now: now}
	var err error
	if l.ok, err = simplelru.NewLRU[failKey, *limitedBucket](cfg.MaxTracked, nil); err != nil {
		return nil, fmt.Errorf("token limits: %w", err)
	}
	if l.failures, err = simplelru.NewLRU[failKey, *limitedBucket](cfg.MaxTracked, nil); err != nil {
		return nil, fmt.Errorf("token limits: %w", err)
	}
	if l.addresses, err = simplelru.NewLRU[netip.Prefix, *limitedBucket](cfg.MaxTracked, nil); err != nil {
		return nil, fmt.Errorf("token limits: %w", err)
	}
	return l, nil
}

// TokenLimitedError is a /token request refused by a per-client limit.
type TokenLimitedError struct {
	// Scope is one of TokenLimitClient, TokenLimitClientFailures,
	// TokenLimitAddressFailures.
	Scope string
	// ClientID is the client id the request authenticated as or claimed.
	ClientID string
	// RetryAfter is when the next request would be allowed (whole
	// seconds, at least 1s).
	RetryAfter time.Duration
}

func (e *TokenLimitedError) Error() string {
	return fmt.Sprintf("token request rate limit (%s) exceeded by client %q; retry after %s", e.Scope, e.ClientID, e.RetryAfter)
}

// admit decides whether the /token request r may go on to fosite; when it
// may not, it has answered. The form must be parsed (a request whose form
// does not parse is admitted: Token answers it).
func (l *tokenLimiter) admit(ctx context.Context, w http.ResponseWriter, r *http.Request) bool {
	if l == nil {
		return true
	}
	if err := r.ParseForm(); err != nil {
		return true
	}
	id, secret, basic := BasicCredentials(r)
	if !basic {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	addr := clientAddr(ctx)
	le, log := l.judge(ctx, id, secret, addr, l.now())
	if le == nil {
		return true
	}
	if log {
		l.log.InfoContext(ctx, "token request refused: rate limit; further refusals of this client are counted, not logged, for a minute",
			"event", "token_rate_limited", "limit", le.Scope, "client_id", le.ClientID, "client_addr", clientKey(addr).String(),
			"retry_after", le.RetryAfter)
	}
	writeRateLimited(w, descTokenRateLimited(le.Scope), le.RetryAfter)
	return false
}

// judge takes the tokens the request needs, or returns the refusal and
// whether to log it.
func (l *tokenLimiter) judge(ctx context.Context, id, secret string, addr netip.Addr, now time.Time) (*TokenLimitedError, bool) {
	c, known := l.clients.get(id)
	if known && c.Public {
		return l.take(l.ok, failKey{client: id, addr: clientKey(addr)}, TokenLimitClient, id, l.okLimiter, now)
	}
	fk := failKey{client: id, addr: clientKey(addr)}
	// A failure bucket that is empty refuses before the secret is
	// compared: that is what slows guessing.
	if le, log := l.failing(fk, id, now); le != nil {
		return le, log
	}
	if id != "" {
		if _, err := l.clients.authenticate(ctx, id, secret); err == nil {
			return l.take(l.ok, failKey{client: id}, TokenLimitClient, id, l.okLimiter, now)
		}
	}
	// fosite will refuse it (invalid_client); it counts as a failure.
	l.mu.Lock()
	defer l.mu.Unlock()
	l.bucket(l.failures, fk, l.failureLimiter).lim.AllowN(now, 1)
	l.addressBucket(fk.addr).lim.AllowN(now, 1)
	return nil, false
}

// failing refuses when the failure bucket of fk or of its address is empty.
func (l *tokenLimiter) failing(fk failKey, id string, now time.Time) (*TokenLimitedError, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b, ok := l.failures.Get(fk); ok {
		if wait := untilToken(b.lim, now); wait > 0 {
			return l.refuse(b, TokenLimitClientFailures, id, wait, now)
		}
	}
	if b, ok := l.addresses.Get(fk.addr); ok {
		if wait := untilToken(b.lim, now); wait > 0 {
			return l.refuse(b, TokenLimitAddressFailures, id, wait, now)
		}
	}
	return nil, false
}

// take takes one token from table's bucket for key, or refuses.
func (l *tokenLimiter) take(table *simplelru.LRU[failKey, *limitedBucket], key failKey, scope, id string,
	newLim func() *rate.Limiter, now time.Time,
) (*TokenLimitedError, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucket(table, key, newLim)
	if wait := untilToken(b.lim, now); wait > 0 {
		return l.refuse(b, scope, id, wait, now)
	}
	b.lim.AllowN(now, 1)
	return nil, false
}

// refuse counts a refusal; it is logged at most once a minute per bucket.
// l.mu is held.
func (l *tokenLimiter) refuse(b *limitedBucket, scope, id string, wait time.Duration, now time.Time) (*TokenLimitedError, bool) {
	for i, s := range tokenLimitScopes {
		if s == scope {
			l.refused[i].Add(1)
		}
	}
	log := now.Sub(b.logged) >= refusalLogInterval
	if log {
		b.logged = now
	}
	return &TokenLimitedError{Scope: scope, ClientID: id, RetryAfter: wait}, log
}

func (l *tokenLimiter) bucket(table *simplelru.LRU[failKey, *limitedBucket], key failKey, newLim func() *rate.Limiter) *limitedBucket {
	b, ok := table.Get(key)
	if !ok {
		b = &limitedBucket{lim: newLim()}
		table.Add(key, b)
	}
	return b
}

func (l *tokenLimiter) addressBucket(key netip.Prefix) *limitedBucket {
	b, ok := l.addresses.Get(key)
	if !ok {
		b = &limitedBucket{lim: rate.NewLimiter(rate.Limit(float64(l.cfg.AddressFailuresPerMinute)/60), l.cfg.AddressFailureBurst)}
		l.addresses.Add(key, b)
	}
	return b
}

func (l *tokenLimiter) okLimiter() *rate.Limiter {
	return rate.NewLimiter(rate.Limit(l.cfg.PerSecond), l.cfg.Burst)
}

func (l *tokenLimiter) failureLimiter() *rate.Limiter {
	return rate.NewLimiter(rate.Limit(float64(l.cfg.FailuresPerMinute)/60), l.cfg.FailureBurst)
}

// TokenLimitRefusals counts /token requests refused by a per-client limit,
// by scope (every scope listed, 0 included; nil map when the limits are
// off).
func (b *Broker) TokenLimitRefusals() map[string]uint64 {
	l := b.tokenLimits
	if l == nil {
		return nil
	}
	out := make(map[string]uint64, len(tokenLimitScopes))
	for i, s := range tokenLimitScopes {
		out[s] = l.refused[i].Load()
	}
	return out
}

// writeRateLimited answers a /token request refused by a rate limit: 429
// with Retry-After and the RFC 6749 §5.2 error temporarily_unavailable.
func writeRateLimited(w http.ResponseWriter, desc string, retryAfter time.Duration) {
	h := w.Header()
	h.Set("Retry-After", strconv.Itoa(int(max(retryAfter, time.Second)/time.Second)))
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	writeJSON(w, http.StatusTooManyRequests, map[string]string{
		"error":             ErrTemporarilyUnavailable.Code,
		"error_description": desc,
	})
}

// WriteOverloaded answers a token-class request (/token, /revoke,
// /introspect, /userinfo) that web shed because every slot was taken: 503
// with Retry-After (seconds) and the RFC 6749 §5.2 error
// temporarily_unavailable.
func WriteOverloaded(w http.ResponseWriter, retryAfterSeconds int) {
	h := w.Header()
	h.Set("Retry-After", strconv.Itoa(max(retryAfterSeconds, 1)))
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	writeJSON(w, http.StatusServiceUnavailable, map[string]string{
		"error":             ErrTemporarilyUnavailable.Code,
		"error_description": descOverloaded,
	})
}

type clientAddrKey struct{}

// WithClientAddr returns ctx carrying the address of the client behind the
// request (web reads it from the TCP peer or trusted proxies), which the
// per-client limits at /token go by.
func WithClientAddr(ctx context.Context, addr netip.Addr) context.Context {
	return context.WithValue(ctx, clientAddrKey{}, addr)
}

// clientAddr is the address WithClientAddr put in ctx (invalid when none:
// all such requests share one address bucket).
func clientAddr(ctx context.Context) netip.Addr {
	a, _ := ctx.Value(clientAddrKey{}).(netip.Addr)
	return a
}
