package verify

import (
	"crypto/sha256"
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestTokenCacheHitSkipsVerification(t *testing.T) {
	e := newEnv(t)
	v := newVerifier(t, e.ks, e.clock, nil)
	token := mint(t, e.rsa, nil, e.claims)
	first, err := v.Verify(t.Context(), token)
	if err != nil {
		t.Fatalf("Verify() = %v", err)
	}
	for range 3 {
		got, err := v.Verify(t.Context(), token)
		if err != nil || got != first {
			t.Fatalf("Verify() again = %p, %v; want the cached %p", got, err, first)
		}
	}
	if got := v.sigChecks.Load(); got != 1 {
		t.Errorf("signature checks = %d, want 1", got)
	}
}

func TestTokenCacheNeverServesAfterExp(t *testing.T) {
	e := newEnv(t)
	v := newVerifier(t, e.ks, e.clock, func(c *Config) { c.Leeway = 10 * time.Second })
	exp := e.clock.Now().Add(time.Minute)
	token := mint(t, e.rsa, nil, with(e.claims, "exp", exp.Unix()))
	steps := []struct {
		advance       time.Duration
		wantOK        bool
		wantSigChecks int64
	}{
		{0, true, 1},
		{59 * time.Second, true, 1}, // cached
		{time.Second, true, 2},      // at exp: not served from cache; valid by leeway
		{9 * time.Second, true, 3},  // still not cached
		{time.Second, false, 4},     // beyond leeway: expired
	}
	for i, s := range steps {
		e.clock.Advance(s.advance)
		_, err := v.Verify(t.Context(), token)
		if (err == nil) != s.wantOK {
			t.Errorf("step %d: Verify() = %v, want ok=%v", i, err, s.wantOK)
		}
		if got := v.sigChecks.Load(); got != s.wantSigChecks {
			t.Errorf("step %d: signature checks = %d, want %d", i, got, s.wantSigChecks)
		}
	}
}

func TestTokenCacheDisabled(t *testing.T) {
	e := newEnv(t)
	v := newVerifier(t, e.ks, e.clock, func(c *Config) { c.Cache.MaxEntries = -1 })
	token := mint(t, e.ed, nil, e.claims)
	for range 2 {
		if _, err := v.Verify(t.Context(), token); err != nil {
			t.Fatalf("Verify() = %v", err)
		}
	}
	if got := v.sigChecks.Load(); got != 2 {
		t.Errorf("signature checks = %d, want 2", got)
	}
}

func TestTokenCacheBounded(t *testing.T) {
	now := newClock().Now()
	c := newTokenCache(64)
	live := &Claims{ExpiresAt: now.Add(time.Hour)}
	keyOf := func(i int) [32]byte { return sha256.Sum256(fmt.Appendf(nil, "token-%d", i)) }

	hot := keyOf(-1)
	c.put(&hot, live, now)
	for i := range 10000 {
		k := keyOf(i)
		c.put(&k, live, now)
		if _, ok := c.get(&hot, now); !ok { // referenced on every sweep: CLOCK keeps it
			t.Fatalf("hot entry evicted after %d inserts", i)
		}
	}
	var n int
	for i := range c.shards {
		n += len(c.shards[i].m)
		if len(c.shards[i].m) != len(c.shards[i].ring) {
			t.Errorf("shard %d: map has %d entries, ring %d", i, len(c.shards[i].m), len(c.shards[i].ring))
		}
	}
	if n > 64 {
		t.Errorf("cache holds %d entries, want at most 64", n)
	}
}

func TestTokenCacheEvictsExpiredFirst(t *testing.T) {
	now := newClock().Now()
	c := newTokenCache(1) // one entry per shard
	// Both keys start with 1: the same shard.
	k1, k2 := [32]byte{1}, [32]byte{1, 1}
	c.put(&k1, &Claims{ExpiresAt: now.Add(time.Second)}, now)
	c.get(&k1, now) // referenced, but about to expire
	later := now.Add(2 * time.Second)
	c.put(&k2, &Claims{ExpiresAt: later.Add(time.Hour)}, later)
	if _, ok := c.get(&k2, later); !ok {
		t.Error("get(k2) missed, want the new entry in place of the expired one")
	}
}

func TestTokenCacheConcurrent(t *testing.T) {
	now := newClock().Now()
	c := newTokenCache(128)
	claims := &Claims{ExpiresAt: now.Add(time.Hour)}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				k := sha256.Sum256(fmt.Appendf(nil, "%d-%d", g, i%300))
				if _, ok := c.get(&k, now); !ok {
					c.put(&k, claims, now)
				}
			}
		})
	}
	wg.Wait()
}
