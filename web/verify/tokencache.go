package verify

import (
	"sync"
	"sync/atomic"
	"time"
)

const cacheShards = 16

// tokenCache maps SHA-256(token) to verified claims. It is sharded to keep
// lock contention low, and each shard evicts with the CLOCK algorithm: a hit
// sets a reference bit under a read lock, so the hot path never takes a write
// lock; an insert into a full shard sweeps the ring, clearing bits until it
// finds an entry that is unreferenced or expired.
type tokenCache struct {
	shards [cacheShards]cacheShard
}

type cacheShard struct {
	mu   sync.RWMutex
	m    map[[32]byte]*cacheEntry
	ring []*cacheEntry
	cap  int
	hand int
}

type cacheEntry struct { // key and claims never change after insertion
	key    [32]byte
	claims *Claims
	ref    atomic.Bool
}

func newTokenCache(entries int) *tokenCache {
	per := max((entries+cacheShards-1)/cacheShards, 1)
	c := &tokenCache{}
	for i := range c.shards {
		c.shards[i] = cacheShard{m: make(map[[32]byte]*cacheEntry, per), cap: per}
	}
	return c
}

func (c *tokenCache) shard(key *[32]byte) *cacheShard {
	return &c.shards[key[0]%cacheShards]
}

// get returns the claims for key unless absent or at or past their exp. The
// exp is compared with now exactly: leeway is never added on a hit.
func (c *tokenCache) get(key *[32]byte, now time.Time) (*Claims, bool) {
	s := c.shard(key)
	s.mu.RLock()
	e := s.m[*key]
	s.mu.RUnlock()
	if e == nil || !now.Before(e.claims.ExpiresAt) {
		return nil, false
	}
	if !e.ref.Load() {
		e.ref.Store(true)
	}
	return e.claims, true
}

func (c *tokenCache) put(key *[32]byte, claims *Claims, now time.Time) {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[*key] != nil { // the same token verified twice at once
		return
	}
	e := &cacheEntry{key: *key, claims: claims}
	if len(s.ring) < s.cap {
		s.ring = append(s.ring, e)
		s.m[*key] = e
		return
	}
	for {
		old := s.ring[s.hand]
		if !old.ref.Load() || !now.Before(old.claims.ExpiresAt) {
			delete(s.m, old.key)
			s.ring[s.hand] = e
			s.m[*key] = e
			s.hand = (s.hand + 1) % len(s.ring)
			return
		}
		old.ref.Store(false)
		s.hand = (s.hand + 1) % len(s.ring)
	}
}
