package jwkscache

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// FetchFunc fetches and parses the key set. maxAge is how long the value
// may be used before a background refresh.
type FetchFunc[T any] func(ctx context.Context) (value T, maxAge time.Duration, err error)

// Options is a caller's refresh policy.
type Options struct {
	// MissInterval is the least time between two fetches that Refresh
	// starts for a value that is held (an unknown kid).
	MissInterval time.Duration
	// MissIntervalFromAnyFetch makes MissInterval count from the start of
	// any fetch (the first load, background refreshes and failed
	// fetches too), not only from the last fetch Refresh started.
	MissIntervalFromAnyFetch bool
	// FailureBackoff: after a failed fetch, no background refresh starts,
	// nor a Refresh while no value is held, before this has passed.
	FailureBackoff time.Duration
	// Jitter spreads each max-age over ±Jitter of itself (0.1: ±10%), so
	// that many caches do not refresh at once. 0: none.
	Jitter float64
	// Context bounds every fetch (a verifier's lifetime). nil: a fetch
	// runs under the context of the call that started it, without its
	// cancellation, because other callers may be waiting for it.
	Context context.Context
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

// LimitedError is Refresh's error when its policy allowed no fetch. Last
// is the error of the last fetch, nil if it succeeded.
type LimitedError struct {
	Last error
}

func (e *LimitedError) Error() string {
	if e.Last != nil {
		return "key set fetched too recently; last fetch: " + e.Last.Error()
	}
	return "key set fetched too recently"
}

func (e *LimitedError) Unwrap() error { return e.Last }

// Cache is safe for concurrent use.
type Cache[T any] struct {
	fetch FetchFunc[T]
	opts  Options

	current atomic.Pointer[entry[T]] // nil until the first successful fetch

	mu          sync.Mutex
	inflight    *call
	lastAttempt time.Time // start of the last fetch of any kind
	lastMiss    time.Time // start of the last fetch Refresh started for a held value
	retryAt     time.Time // after a failed fetch, none before this
	lastErr     error
}

type entry[T any] struct {
	value  T
	expiry time.Time
}

type call struct {
	done chan struct{}
	err  error // written before done is closed
}

// New returns an empty Cache; nothing is fetched before the first Load or
// Refresh.
func New[T any](fetch FetchFunc[T], opts Options) *Cache[T] {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Cache[T]{fetch: fetch, opts: opts}
}

// Peek returns the value held (ok false: no fetch has succeeded yet),
// without starting anything.
func (c *Cache[T]) Peek() (value T, ok bool) {
	if e := c.current.Load(); e != nil {
		return e.value, true
	}
	return value, false
}

// Load returns the value held, like Peek, and starts a background refresh
// when it is past its max-age (unless a fetch is running or the last one
// failed within FailureBackoff). It never waits and never fetches a value
// that was never held: that is Refresh's job.
func (c *Cache[T]) Load(ctx context.Context) (value T, ok bool) {
	e := c.current.Load()
	if e == nil {
		return value, false
	}
	if now := c.opts.Now(); !now.Before(e.expiry) {
		c.mu.Lock()
		if c.inflight == nil && !now.Before(c.retryAt) {
			c.startLocked(ctx, now)
		}
		c.mu.Unlock()
	}
	return e.value, true
}

// Refresh fetches the value again, or joins the fetch under way, and waits
// for it (or for ctx). satisfied, if not nil, reports whether a value
// already has what the caller looks for: then Refresh returns it at once
// (a fetch that ended while the caller was deciding to refresh).
//
// It returns the value held afterwards (ok false: none yet) and the
// error of the fetch it waited for, ctx's error if ctx ended first, or a
// *LimitedError when the policy allowed no fetch.
func (c *Cache[T]) Refresh(ctx context.Context, satisfied func(T) bool) (value T, ok bool, err error) {
	now := c.opts.Now()
	c.mu.Lock()
	e := c.current.Load()
	if e != nil && satisfied != nil && satisfied(e.value) {
		c.mu.Unlock()
		return e.value, true, nil
	}
	cl := c.inflight
	switch {
	case cl != nil:
		// Join the fetch under way: it may bring what we need at no cost.
	case e == nil:
		if now.Before(c.retryAt) {
			err := c.lastErr
			c.mu.Unlock()
			return value, false, &LimitedError{Last: err}
		}
		cl = c.startLocked(ctx, now)
	default:
		last := c.lastMiss
		if c.opts.MissIntervalFromAnyFetch {
			last = c.lastAttempt
		}
		if !last.IsZero() && now.Sub(last) < c.opts.MissInterval {
			err := c.lastErr
			c.mu.Unlock()
			return e.value, true, &LimitedError{Last: err}
		}
		c.lastMiss = now
		cl = c.startLocked(ctx, now)
	}
	c.mu.Unlock()

	select {
	case <-cl.done:
		err = cl.err
	case <-ctx.Done():
		err = ctx.Err()
	}
	value, ok = c.Peek()
	return value, ok, err
}

// Prefetch starts a fetch in the background, unless one is running: a
// verifier warms its cache at start-up this way. It never waits.
func (c *Cache[T]) Prefetch(ctx context.Context) {
	c.mu.Lock()
	if c.inflight == nil {
		c.startLocked(ctx, c.opts.Now())
	}
	c.mu.Unlock()
}

// Wait waits until no fetch is in flight, or ctx ends.
func (c *Cache[T]) Wait(ctx context.Context) error {
	c.mu.Lock()
	cl := c.inflight
	c.mu.Unlock()
	if cl == nil {
		return nil
	}
	select {
	case <-cl.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// startLocked starts a fetch; c.mu must be held and no fetch in flight.
func (c *Cache[T]) startLocked(ctx context.Context, now time.Time) *call {
	cl := &call{done: make(chan struct{})}
	c.inflight = cl
	c.lastAttempt = now
	fctx := c.opts.Context
	if fctx == nil {
		fctx = context.WithoutCancel(ctx)
	}
	go c.run(fctx, cl)
	return cl
}

func (c *Cache[T]) run(ctx context.Context, cl *call) {
	value, maxAge, err := c.fetch(ctx)
	now := c.opts.Now()
	c.mu.Lock()
	if err == nil {
		c.current.Store(&entry[T]{value: value, expiry: now.Add(c.jitter(maxAge))})
		c.lastErr, c.retryAt = nil, time.Time{}
	} else {
		c.lastErr, c.retryAt = err, now.Add(c.opts.FailureBackoff)
	}
	c.inflight = nil
	cl.err = err
	c.mu.Unlock()
	close(cl.done)
}

func (c *Cache[T]) jitter(d time.Duration) time.Duration {
	if c.opts.Jitter == 0 {
		return d
	}
	j := c.opts.Jitter
	return time.Duration(float64(d) * (1 - j + 2*j*rand.Float64())) //nolint:gosec // timing spread, not a secret
}
