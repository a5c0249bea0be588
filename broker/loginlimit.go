package broker

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/time/rate"
)

// Login-attempt rate limit. Every /authorize that has to send the person
// upstream, and every choice on the chooser, writes a login attempt (with
// bbolt: an fsync). Token buckets bound how fast that may happen: one per
// client address, and one for everybody together. Buckets are consumed
// only where a write follows, so single sign-on answers, invalid requests
// and the callback never count; a refused request writes nothing.
//
// A share of the ceiling (quietReservePercent) is reserved for quiet
// addresses: those that have made few attempts lately (quietAttempts,
// one more back every quietRefill), refused ones included, counted per
// IPv4 address or IPv6 /48 (quietKey). Addresses that
// flood keep trying, so they are never quiet, and a flood from many
// addresses cannot lock out people arriving from addresses it does not
// use. It takes the ordinary share first; quiet addresses draw on the
// reserve once that is empty.

// LoginLimits bounds how fast login attempts are written. Zero fields take
// the defaults noted.
type LoginLimits struct {
	// PerMinute is the sustained rate of one client address (an IPv4
	// address, or an IPv6 /64). Default: 60, so that an office behind one
	// NAT address, whose people each sign in about once per session (two
	// writes with the chooser), is not refused at its morning peak.
	PerMinute int
	// Burst is how many attempts one client address may make at once.
	// Default: 30.
	Burst int
	// GlobalPerSecond is the ceiling of all clients together. Default: 50,
	// a fraction of what the store can write (a whole sign-in is about 12
	// writes and the bench measures 60–100 sign-ins/s with bbolt and
	// fsync), so that clients on many addresses cannot starve refreshes
	// and token exchange of writes. It bounds new sign-ins only.
	GlobalPerSecond int
	// GlobalBurst. Default: 200. A fifth of the ceiling's rate and burst
	// (quietReservePercent) is kept for quiet addresses (see above).
	GlobalBurst int
	// MaxClients bounds how many client addresses are tracked; past it the
	// least recently seen is forgotten (its bucket starts full again, and
	// it counts as quiet), so the limiter itself uses bounded memory
	// (about 350 bytes each).
	// The global ceiling still holds for clients rotating through more
	// addresses. Default: 10000.
	MaxClients int
	// InsecureUnlimited turns the limit off (benchmarks): any client can
	// then write login attempts as fast as the store takes them.
	InsecureUnlimited bool
}

func (l *LoginLimits) withDefaults() {
	def := func(p *int, v int) {
		if *p <= 0 {
			*p = v
		}
	}
	def(&l.PerMinute, DefaultLoginPerMinute)
	def(&l.Burst, DefaultLoginBurst)
	def(&l.GlobalPerSecond, 50)
	def(&l.GlobalBurst, 200)
	def(&l.MaxClients, 10000)
}

// Limit scopes of a LoginLimitedError.
const (
	LimitClient = "client" // the client address's bucket
	LimitGlobal = "global" // the ceiling of all clients
)

// LoginLimitedError is the limit behind RefusedLoginLimited, a refused login
// attempt: web sends RetryAfter as Retry-After and counts Scope.
type LoginLimitedError struct {
	// Scope is LimitClient or LimitGlobal.
	Scope string
	// RetryAfter is when the next attempt would be allowed (whole seconds,
	// at least 1s).
	RetryAfter time.Duration
	// Client is the client address's bucket key (an address, or an IPv6
	// /64); invalid when the address was unknown.
	Client netip.Prefix
}

func (e *LoginLimitedError) Error() string {
	return fmt.Sprintf("login attempt rate limit (%s) exceeded by %s; retry after %s", e.Scope, e.Client, e.RetryAfter)
}

// The reserve of the global ceiling for quiet addresses.
const (
	// quietReservePercent of the ceiling's rate and burst only quiet
	// addresses may take.
	quietReservePercent = 20
	// quietAttempts: an address is quiet while it has made fewer than
	// this many attempts (allowed or refused) lately; one more is allowed
	// every quietRefill. A person needs one or two per sign-in (two with
	// the chooser). Addresses pacing themselves to stay quiet drain the
	// reserve at one attempt per quietRefill each: with the defaults it
	// takes 600 of them to empty the 10/s reserve.
	quietAttempts = 5
	quietRefill   = time.Minute
)

// loginLimiter holds the buckets. It is safe for concurrent use.
type loginLimiter struct {
	cfg     LoginLimits
	mu      sync.Mutex
	clients *simplelru.LRU[netip.Prefix, *clientBucket]
	// recent counts attempts per quietKey, refused ones included: while a
	// key has a token, its addresses are quiet.
	recent *simplelru.LRU[netip.Prefix, *rate.Limiter]
	// global is the ceiling's ordinary share, reserve the share that only
	// quiet addresses may take; together they are the ceiling.
	global, reserve *rate.Limiter
	// globalLogged is when a global refusal was last logged.
	globalLogged time.Time
}

type clientBucket struct {
	lim    *rate.Limiter
	logged time.Time // when a refusal of this client was last logged
}

// refusalLogInterval: a refusal is logged at most this often per client
// (and for the global ceiling), so a flood cannot flood the log; the
// metric counts every refusal.
const refusalLogInterval = time.Minute

func newLoginLimiter(cfg LoginLimits) (*loginLimiter, error) {
	cfg.withDefaults()
	clients, err := simplelru.NewLRU[netip.Prefix, *clientBucket](cfg.MaxClients, nil)
	if err != nil {
		return nil, fmt.Errorf("login limits: %w", err)
	}
	recent, err := simplelru.NewLRU[netip.Prefix, *rate.Limiter](cfg.MaxClients, nil)
	if err != nil {
		return nil, fmt.Errorf("login limits: %w", err)
	}
	reservedRate := float64(cfg.GlobalPerSecond) * quietReservePercent / 100
	reservedBurst := cfg.GlobalBurst * quietReservePercent / 100
	return &loginLimiter{
		cfg:     cfg,
		clients: clients,
		recent:  recent,
		global:  rate.NewLimiter(rate.Limit(float64(cfg.GlobalPerSecond)-reservedRate), cfg.GlobalBurst-reservedBurst),
		reserve: rate.NewLimiter(rate.Limit(reservedRate), reservedBurst),
	}, nil
}

// clientKey is the bucket of addr: the address itself, or for IPv6 its
// /64 (one subscriber's usual allocation, which one client can rotate
// through freely). An invalid addr gives the invalid prefix: all unknown
// clients share one bucket.
func clientKey(addr netip.Addr) netip.Prefix { return addrKey(addr, 64) }

// quietKey is what quietness is judged on: the IPv4 address, or the IPv6
// /48. A /48 is what one tunnel-broker account or small site gets for free,
// so judging IPv6 per /64 would let one attacker appear as 65,536 quiet
// newcomers and drain the reserve. IPv4 stays per address: a /24 is shared
// by many unrelated people behind one provider, and holding many IPv4
// addresses is not free.
func quietKey(addr netip.Addr) netip.Prefix { return addrKey(addr, 48) }

// addrKey is an IPv4 address as a /32, or an IPv6 address's /v6Bits
// prefix; the invalid prefix for an invalid address.
func addrKey(addr netip.Addr, v6Bits int) netip.Prefix {
	addr = addr.Unmap().WithZone("")
	switch {
	case !addr.IsValid():
		return netip.Prefix{}
	case addr.Is4():
		return netip.PrefixFrom(addr, 32)
	}
	p, _ := addr.Prefix(v6Bits)
	return p
}

// allow takes one token from client's bucket and from the ceiling at
// now (its ordinary share, else the reserve when client is quiet), or
// none when either is empty. A refusal says which bucket refused and
// whether it should be logged.
func (l *loginLimiter) allow(client netip.Addr, now time.Time) (_ *LoginLimitedError, log bool) {
	key := clientKey(client)
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.clients.Get(key)
	if !ok {
		b = &clientBucket{lim: rate.NewLimiter(rate.Limit(float64(l.cfg.PerMinute)/60), l.cfg.Burst)}
		l.clients.Add(key, b)
	}
	qk := quietKey(client)
	recent, ok := l.recent.Get(qk)
	if !ok {
		recent = rate.NewLimiter(rate.Every(quietRefill), quietAttempts)
		l.recent.Add(qk, recent)
	}
	quiet := recent.AllowN(now, 1) // every attempt counts
	if wait := untilToken(b.lim, now); wait > 0 {
		log = now.Sub(b.logged) >= refusalLogInterval
		if log {
			b.logged = now
		}
		return &LoginLimitedError{Scope: LimitClient, RetryAfter: wait, Client: key}, log
	}
	ceiling := l.global
	wait := untilToken(l.global, now)
	if wait > 0 && quiet {
		if w := untilToken(l.reserve, now); w == 0 {
			ceiling, wait = l.reserve, 0
		} else {
			wait = min(wait, w)
		}
	}
	if wait > 0 {
		log = now.Sub(l.globalLogged) >= refusalLogInterval
		if log {
			l.globalLogged = now
		}
		return &LoginLimitedError{Scope: LimitGlobal, RetryAfter: wait, Client: key}, log
	}
	b.lim.AllowN(now, 1)
	ceiling.AllowN(now, 1)
	return nil, false
}

// untilToken is 0 when lim has a token at now, else the wait for one,
// rounded up to whole seconds (Retry-After's unit).
func untilToken(lim *rate.Limiter, now time.Time) time.Duration {
	missing := 1 - lim.TokensAt(now)
	if missing <= 0 {
		return 0
	}
	if lim.Limit() <= 0 {
		return time.Hour // a share of nothing (a tiny ceiling has no reserve)
	}
	secs := math.Ceil(missing / float64(lim.Limit()))
	return time.Duration(max(secs, 1)) * time.Second
}

// tracked is how many client buckets are held (tests).
func (l *loginLimiter) tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.clients.Len()
}

// limitLogin consumes a login-attempt token for client, or returns the
// RefusedLoginLimited refusal carrying the *LoginLimitedError. Call it
// right before the store write it guards.
func (si *signIn) limitLogin(ctx context.Context, client netip.Addr) error {
	if si.limiter == nil {
		return nil
	}
	le, log := si.limiter.allow(client, si.now())
	if le == nil {
		return nil
	}
	if log {
		si.log.InfoContext(ctx, "login attempt refused: rate limit; further refusals of this client are counted, not logged, for a minute",
			"event", "login_rate_limited", "limit", le.Scope, "client_addr", le.Client.String(), "retry_after", le.RetryAfter)
	}
	return &Refusal{Kind: RefusedLoginLimited, Limited: le, cause: le}
}
