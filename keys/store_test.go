package keys

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyward/keyward/store"
)

// memStore is an in-memory Store following the store contract: updates are
// atomic, Version increases by one per stored change, times come back in UTC
// at µs precision and slices are never shared with the caller.
type memStore struct {
	mu     sync.Mutex
	ks     store.KeySet
	exists bool
	// retries makes UpdateKeySet call the updater 1+retries times and keep
	// the last result, as backends that retry transactions do.
	retries int
	// beforeUpdate, when set, runs at the start of UpdateKeySet (unlocked).
	beforeUpdate func()
	// fail, when set, is returned by every call.
	fail error

	gets, updates atomic.Int64
}

var _ Store = (*memStore)(nil)

func (s *memStore) GetKeySet(ctx context.Context) (store.KeySet, error) {
	s.gets.Add(1)
	if err := ctx.Err(); err != nil {
		return store.KeySet{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return store.KeySet{}, s.fail
	}
	if !s.exists {
		return store.KeySet{}, store.ErrNotFound
	}
	return cloneSet(s.ks), nil
}

func (s *memStore) UpdateKeySet(ctx context.Context, updater func(store.KeySet) (store.KeySet, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.beforeUpdate != nil {
		s.beforeUpdate()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	var out store.KeySet
	for range 1 + s.retries {
		var err error
		if out, err = updater(cloneSet(s.ks)); err != nil {
			return err
		}
	}
	out = cloneSet(out)
	out.Version = s.ks.Version + 1
	s.ks, s.exists = out, true
	s.updates.Add(1)
	return nil
}

// set returns a copy of the stored set.
func (s *memStore) set() store.KeySet {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cloneSet(s.ks)
}

// edit changes the stored set directly, as another process would.
func (s *memStore) edit(f func(*store.KeySet)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.ks)
	s.ks.Version++
}

func (s *memStore) setFail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = err
}

func cloneSet(ks store.KeySet) store.KeySet {
	norm := func(t time.Time) time.Time {
		if t.IsZero() {
			return time.Time{}
		}
		return t.UTC().Truncate(time.Microsecond)
	}
	out := ks
	out.Keys = nil
	for _, k := range ks.Keys {
		k.PrivateKey = slices.Clone(k.PrivateKey)
		k.PublicKey = slices.Clone(k.PublicKey)
		k.CreatedAt, k.ActivatesAt = norm(k.CreatedAt), norm(k.ActivatesAt)
		k.RetiredAt, k.ExpiresAt = norm(k.RetiredAt), norm(k.ExpiresAt)
		out.Keys = append(out.Keys, k)
	}
	out.NextRotation, out.UpdatedAt = norm(ks.NextRotation), norm(ks.UpdatedAt)
	return out
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.FixedZone("CET", 3600))}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// testSessionSecret is the session secret of testConfig.
var testSessionSecret = []byte("test-session-secret-0123456789-0123456789")

// testConfig is a valid Config on st and clock: ES256 (fast to generate),
// 24h rotation, 1h token TTL, keys sealed with the key derived from
// testSessionSecret.
func testConfig(t testing.TB, st Store, clock *fakeClock) Config {
	t.Helper()
	return Config{
		Store:         st,
		SessionSecret: testSessionSecret,
		Algorithm:     ES256,
		MaxTokenTTL:   time.Hour,
		Logger:        slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
		Now:           clock.Now,
	}
}

func mustNew(t testing.TB, cfg Config) *Manager {
	t.Helper()
	m, err := newLoaded(t, cfg)
	if err != nil {
		t.Fatalf("New() + Load() = %v", err)
	}
	return m
}

// newLoaded is New then Load, as the binary starts a Manager.
func newLoaded(t testing.TB, cfg Config) (*Manager, error) {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		return nil, err
	}
	if err := m.Load(t.Context()); err != nil {
		return nil, err
	}
	return m, nil
}

// kidsOf returns the kids of ks in each state.
func kidsOf(ks store.KeySet) map[store.KeyState][]string {
	out := map[store.KeyState][]string{}
	for _, k := range ks.Keys {
		out[k.State] = append(out[k.State], k.ID)
	}
	return out
}
