package jwkscache

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// source is a key set behind a fetch function: it counts fetches, can
// fail, and can hold a fetch until released.
type source struct {
	mu      sync.Mutex
	version int
	err     error
	block   chan struct{}
	maxAge  time.Duration
	fetches atomic.Int64
}

func (s *source) fetch(ctx context.Context) (int, time.Duration, error) {
	s.fetches.Add(1)
	s.mu.Lock()
	block, v, err, maxAge := s.block, s.version, s.err, s.maxAge
	s.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		}
	}
	return v, maxAge, err
}

func (s *source) set(version int, err error) {
	s.mu.Lock()
	s.version, s.err = version, err
	s.mu.Unlock()
}

func (s *source) hold() (release func()) {
	ch := make(chan struct{})
	s.mu.Lock()
	s.block = ch
	s.mu.Unlock()
	return sync.OnceFunc(func() {
		s.mu.Lock()
		s.block = nil
		s.mu.Unlock()
		close(ch)
	})
}

func newTest(t *testing.T, opts Options) (*Cache[int], *source, *clock) {
	t.Helper()
	clk := &clock{now: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)}
	src := &source{version: 1, maxAge: time.Hour}
	opts.Now = clk.Now
	return New(src.fetch, opts), src, clk
}

func wait(t *testing.T, c *Cache[int]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := c.Wait(ctx); err != nil {
		t.Fatalf("Wait() = %v", err)
	}
}

// wantRefresh calls Refresh and checks the value and error it returns.
func wantRefresh(t *testing.T, c *Cache[int], wantValue int, wantErr error) {
	t.Helper()
	v, ok, err := c.Refresh(t.Context(), nil)
	if !errors.Is(err, wantErr) || (wantErr == nil && err != nil) {
		t.Errorf("Refresh() error = %v, want %v", err, wantErr)
	}
	if (wantValue != 0) != ok || v != wantValue {
		t.Errorf("Refresh() = %d, %t; want %d", v, ok, wantValue)
	}
}

func TestLoadNeverFetchesAColdCache(t *testing.T) {
	c, src, _ := newTest(t, Options{MissInterval: time.Minute})
	if v, ok := c.Load(t.Context()); ok {
		t.Errorf("Load() of an empty cache = %d, true", v)
	}
	wait(t, c)
	if got := src.fetches.Load(); got != 0 {
		t.Errorf("fetches after Load() = %d, want 0", got)
	}
	wantRefresh(t, c, 1, nil)
	if v, ok := c.Load(t.Context()); !ok || v != 1 {
		t.Errorf("Load() = %d, %t; want 1, true", v, ok)
	}
}

func TestMaxAgeRefreshesInBackground(t *testing.T) {
	c, src, clk := newTest(t, Options{MissInterval: time.Minute})
	wantRefresh(t, c, 1, nil)
	src.set(2, nil)
	clk.Advance(59 * time.Minute)
	if v, _ := c.Load(t.Context()); v != 1 {
		t.Errorf("Load() before max-age = %d, want 1", v)
	}
	wait(t, c)
	if got := src.fetches.Load(); got != 1 {
		t.Fatalf("fetches before max-age = %d, want 1", got)
	}
	release := src.hold()
	clk.Advance(time.Minute)
	// Past max-age: the held value comes back at once, the refresh runs
	// behind it, and further loads do not start another.
	for range 3 {
		if v, _ := c.Load(t.Context()); v != 1 {
			t.Errorf("Load() past max-age during the refresh = %d, want 1", v)
		}
	}
	release()
	wait(t, c)
	if v, _ := c.Load(t.Context()); v != 2 {
		t.Errorf("Load() after the refresh = %d, want 2", v)
	}
	if got := src.fetches.Load(); got != 2 {
		t.Errorf("fetches = %d, want 2", got)
	}
}

func TestJitter(t *testing.T) {
	c, _, _ := newTest(t, Options{Jitter: 0.1})
	seen := map[time.Duration]bool{}
	for range 200 {
		got := c.jitter(time.Minute)
		if got < 54*time.Second || got > 66*time.Second {
			t.Fatalf("jitter(1m) = %v, want within ±10%%", got)
		}
		seen[got] = true
	}
	if len(seen) < 2 {
		t.Errorf("jitter(1m) returned one value in 200 tries: %v", seen)
	}
	if got := (&Cache[int]{}).jitter(time.Minute); got != time.Minute {
		t.Errorf("jitter(1m) without Jitter = %v, want 1m", got)
	}
}

// TestMissInterval: Refresh of a held value fetches at most once per
// MissInterval, counted from the last miss or, with
// MissIntervalFromAnyFetch, from any fetch.
func TestMissInterval(t *testing.T) {
	tests := []struct {
		name    string
		anyFrom bool
		// fetches after a first load and an immediate miss
		wantAfterFirstMiss int64
	}{
		{"from the last miss", false, 2},
		{"from any fetch", true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, src, clk := newTest(t, Options{MissInterval: 30 * time.Second, MissIntervalFromAnyFetch: tt.anyFrom})
			wantRefresh(t, c, 1, nil)
			_, _, _ = c.Refresh(t.Context(), nil)
			if got := src.fetches.Load(); got != tt.wantAfterFirstMiss {
				t.Fatalf("fetches after a load and a miss = %d, want %d", got, tt.wantAfterFirstMiss)
			}
			clk.Advance(31 * time.Second)
			src.set(2, nil)
			wantRefresh(t, c, 2, nil)
			before := src.fetches.Load()
			for range 10 {
				clk.Advance(2 * time.Second)
				var limited *LimitedError
				if _, _, err := c.Refresh(t.Context(), nil); !errors.As(err, &limited) {
					t.Errorf("Refresh() within the interval = %v, want a *LimitedError", err)
				}
			}
			if got := src.fetches.Load() - before; got != 0 {
				t.Errorf("fetches within the interval = %d, want 0", got)
			}
			clk.Advance(11 * time.Second)
			wantRefresh(t, c, 2, nil)
			if got := src.fetches.Load() - before; got != 1 {
				t.Errorf("fetches past the interval = %d, want 1", got)
			}
		})
	}
}

func TestSatisfiedSkipsFetch(t *testing.T) {
	c, src, _ := newTest(t, Options{})
	wantRefresh(t, c, 1, nil)
	v, ok, err := c.Refresh(t.Context(), func(v int) bool { return v == 1 })
	if v != 1 || !ok || err != nil {
		t.Errorf("Refresh(satisfied) = %d, %t, %v; want 1, true, nil", v, ok, err)
	}
	if got := src.fetches.Load(); got != 1 {
		t.Errorf("fetches = %d, want 1", got)
	}
}

// TestWaitersShareOneFetch: callers that refresh while a fetch runs all
// wait for that one fetch. (A caller that arrives after it ended is limited
// by MissInterval and gets the same value.)
func TestWaitersShareOneFetch(t *testing.T) {
	for _, held := range []bool{false, true} {
		c, src, clk := newTest(t, Options{MissInterval: time.Hour, MissIntervalFromAnyFetch: true})
		want, wantFetches := 1, int64(1)
		if held {
			wantRefresh(t, c, 1, nil)
			clk.Advance(time.Hour)
			src.set(2, nil)
			want, wantFetches = 2, 2
		}
		release := src.hold()
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				v, _, err := c.Refresh(t.Context(), nil)
				var limited *LimitedError
				if err != nil && !errors.As(err, &limited) {
					t.Errorf("held=%t: Refresh() = %v", held, err)
				}
				if v != want {
					t.Errorf("held=%t: a waiter got %d, want %d", held, v, want)
				}
			})
		}
		for src.fetches.Load() != wantFetches {
			time.Sleep(time.Millisecond) // until the shared fetch has started
		}
		release()
		wg.Wait()
		if got := src.fetches.Load(); got != wantFetches {
			t.Errorf("held=%t: fetches = %d, want %d", held, got, wantFetches)
		}
	}
}

// TestKeepsLastGoodValue: a failed fetch keeps the value held, reports its
// error, and backs off.
func TestKeepsLastGoodValue(t *testing.T) {
	c, src, clk := newTest(t, Options{MissInterval: 10 * time.Second, FailureBackoff: time.Second})
	wantRefresh(t, c, 1, nil)
	boom := errors.New("issuer down")
	src.set(2, boom)
	clk.Advance(time.Hour) // past max-age: the background refresh fails
	if v, _ := c.Load(t.Context()); v != 1 {
		t.Errorf("Load() = %d, want 1", v)
	}
	wait(t, c)
	if v, ok := c.Load(t.Context()); !ok || v != 1 {
		t.Errorf("Load() after a failed refresh = %d, %t; want 1, true", v, ok)
	}
	wait(t, c)
	if got := src.fetches.Load(); got != 2 {
		t.Errorf("fetches within the failure backoff = %d, want 2", got)
	}
	clk.Advance(time.Second)
	c.Load(t.Context())
	wait(t, c)
	if got := src.fetches.Load(); got != 3 {
		t.Errorf("fetches past the failure backoff = %d, want 3", got)
	}
	wantRefresh(t, c, 1, boom)
}

func TestColdFailureBacksOff(t *testing.T) {
	c, src, clk := newTest(t, Options{MissInterval: time.Minute, FailureBackoff: time.Second})
	boom := errors.New("issuer down")
	src.set(1, boom)
	wantRefresh(t, c, 0, boom)
	var limited *LimitedError
	if _, ok, err := c.Refresh(t.Context(), nil); ok || !errors.As(err, &limited) || !errors.Is(err, boom) {
		t.Errorf("Refresh() within the backoff = %t, %v; want a *LimitedError wrapping the last error", ok, err)
	}
	if got := src.fetches.Load(); got != 1 {
		t.Errorf("fetches = %d, want 1", got)
	}
	src.set(1, nil)
	clk.Advance(time.Second)
	wantRefresh(t, c, 1, nil)
}

// TestCancelledWaiter: a caller whose ctx ends stops waiting; the fetch
// goes on for the others.
func TestCancelledWaiter(t *testing.T) {
	c, src, _ := newTest(t, Options{})
	release := src.hold()
	defer release()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, ok, err := c.Refresh(ctx, nil); ok || !errors.Is(err, context.Canceled) {
		t.Errorf("Refresh(cancelled) = %t, %v; want context.Canceled", ok, err)
	}
	release()
	wait(t, c)
	if v, ok := c.Peek(); !ok || v != 1 {
		t.Errorf("Peek() after the fetch = %d, %t; want 1, true", v, ok)
	}
}

// TestContextBoundsFetches: with Options.Context, fetches end with it.
func TestContextBoundsFetches(t *testing.T) {
	life, stop := context.WithCancel(t.Context())
	clk := &clock{now: time.Now()}
	src := &source{version: 1, maxAge: time.Hour}
	c := New(src.fetch, Options{Context: life, Now: clk.Now, FailureBackoff: time.Second})
	release := src.hold()
	defer release()
	c.Prefetch(t.Context())
	stop()
	wait(t, c)
	if _, ok, err := c.Refresh(t.Context(), nil); ok || !errors.Is(err, context.Canceled) {
		t.Errorf("Refresh() after the lifetime ended = %t, %v; want context.Canceled", ok, err)
	}
}
