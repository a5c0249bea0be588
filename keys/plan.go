package keys

import (
	"bytes"
	"cmp"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/keyward/keyward/store"
)

// This file holds the schedule itself: plan, a pure function of the stored
// set, the time and the keys generated for it (rotate.go runs it inside
// the store transaction).

// dueAt is when next key k of ks becomes current: its ActivatesAt (sets
// written before keys had one per algorithm: the set's NextRotation).
func dueAt(k store.SigningKey, ks store.KeySet) time.Time {
	return cmp.Or(k.ActivatesAt, ks.NextRotation)
}

// earliestNext is the set's NextRotation: the earliest ActivatesAt of a
// next key.
func earliestNext(ks store.KeySet) time.Time {
	var at time.Time
	for _, k := range ks.Keys {
		if k.State == store.KeyNext && (at.IsZero() || dueAt(k, ks).Before(at)) {
			at = dueAt(k, ks)
		}
	}
	return at
}

// chain is one algorithm's current and next key.
type chain struct{ cur, next *store.SigningKey }

// plan applies one schedule step to ks at now, taking new keys of each
// algorithm from pool in order and re-sealed private keys from prep. It is
// a pure function of its arguments, so it is safe as a retried updater. It
// returns needKeys when pool is too short, and errStaleSeal when a private
// key is not the one prep was made for.
//
// Each configured algorithm (m.algs) has its own chain, next → current →
// retired, and its own schedule (its next key's ActivatesAt):
//   - a set with no current key at all (first start, or every key replaced)
//     gets a current and a next key of every algorithm, the current ones
//     signing at once: no verifier can hold an older JWKS of this set;
//   - an algorithm the set has no key of while another already signs (an
//     upgrade, or a new keys.accessTokenAlgorithm) gets a next key due one
//     JWKS max-age later (m.maxAge); until then the other algorithm's
//     current key signs for it (Manager.SignAs);
//   - a due next key becomes current, the algorithm's current key retires,
//     and a new next key is due one RotationPeriod later;
//   - an algorithm no longer configured loses its next key (it never
//     signed) and, once every configured algorithm has a current key, its
//     current key retires.
func (m *Manager) plan(ks store.KeySet, now time.Time, pool map[string][]store.SigningKey, prep map[string]reseal, rotate bool) (store.KeySet, outcome, error) {
	var o outcome
	chains := map[string]*chain{}
	var retired []store.SigningKey
	for _, k := range ks.Keys {
		switch k.State {
		case store.KeyCurrent, store.KeyNext:
			if len(k.PrivateKey) > 0 {
				r, ok := prep[k.ID]
				switch {
				case !ok || !bytes.Equal(r.from, k.PrivateKey):
					return ks, o, errStaleSeal
				case r.unreadable:
					// Retired like a rotated-out key; its public key stays
					// published for the tokens it may have signed.
					k.State, k.RetiredAt, k.ExpiresAt = store.KeyRetired, now, now.Add(m.maxTTL+m.leeway)
					k.PrivateKey, k.Encrypted = nil, false
					retired = append(retired, k)
					o.replaced++
					continue
				case r.to != nil:
					k.PrivateKey, k.Encrypted = r.to, true
					o.sealed++
				}
			}
			c := chains[k.Algorithm]
			if c == nil {
				c = &chain{}
				chains[k.Algorithm] = c
			}
			slot := &c.cur
			if k.State == store.KeyNext {
				slot = &c.next
			}
			if *slot != nil {
				return ks, o, fmt.Errorf("key set has two %s %s keys", k.Algorithm, k.State)
			}
			*slot = &k
		case store.KeyRetired:
			if !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt) {
				o.pruned++
				continue
			}
			retired = append(retired, k)
		default:
			return ks, o, fmt.Errorf("key %s: unknown state %q", k.ID, k.State)
		}
	}
	signing := false
	for _, c := range chains {
		signing = signing || c.cur != nil
	}
	need := needKeys{}
	taken := map[string]int{}
	generated := 0
	take := func(alg string) *store.SigningKey {
		if taken[alg] >= len(pool[alg]) {
			need[alg]++
			return &store.SigningKey{Algorithm: alg}
		}
		k := pool[alg][taken[alg]]
		taken[alg]++
		k.CreatedAt = now
		generated++
		return &k
	}
	retire := func(k store.SigningKey) {
		k.State, k.RetiredAt, k.ExpiresAt = store.KeyRetired, now, now.Add(m.maxTTL+m.leeway)
		k.PrivateKey, k.Encrypted = nil, false // a retired key never signs again
		retired = append(retired, k)
	}
	promote := func(c *chain) {
		c.cur, c.next = c.next, nil
		c.cur.State, c.cur.ActivatesAt = store.KeyCurrent, now
	}
	var out []store.SigningKey
	for _, alg := range m.algs {
		c := chains[alg]
		if c == nil {
			c = &chain{}
		}
		var r rotation
		stepped := true
		switch {
		case !signing && c.next != nil && c.cur == nil: // damaged set: the next key signs at once
			promote(c)
			o.created = true
		case !signing && c.cur == nil:
			c.cur = take(alg)
			c.cur.State, c.cur.ActivatesAt = store.KeyCurrent, now
			o.created = true
		case rotate && c.next != nil && !now.Before(dueAt(*c.next, ks)):
			if c.cur != nil {
				retire(*c.cur)
				r.retired = c.cur.ID
			}
			promote(c)
			o.rotated = true
		default:
			stepped = false
		}
		if c.next == nil {
			c.next = take(alg)
			c.next.State, c.next.ActivatesAt = store.KeyNext, now.Add(m.period)
			if c.cur == nil {
				// The algorithm's first key in a set that already signs.
				c.next.ActivatesAt = now.Add(m.maxAge)
				o.added = append(o.added, *c.next)
			}
		}
		if stepped {
			r.current, r.next = *c.cur, *c.next
			o.rotations = append(o.rotations, r)
		}
		out = append(out, *c.next)
		if c.cur != nil {
			out = append(out, *c.cur)
		}
	}
	if len(need) > 0 {
		return ks, o, need
	}
	// Algorithms no longer configured: their current key signs in place of a
	// configured algorithm's until that one has its own.
	covered := true
	for _, alg := range m.algs {
		covered = covered && slices.ContainsFunc(out, func(k store.SigningKey) bool {
			return k.State == store.KeyCurrent && k.Algorithm == alg
		})
	}
	for _, alg := range slices.Sorted(maps.Keys(chains)) {
		c := chains[alg]
		if slices.Contains(m.algs, alg) {
			continue
		}
		if c.next != nil {
			o.dropped = append(o.dropped, c.next.ID)
		}
		switch {
		case c.cur == nil:
		case covered:
			retire(*c.cur)
			o.unneeded = append(o.unneeded, c.cur.ID)
		default:
			out = append(out, *c.cur)
		}
	}
	next := store.KeySet{Keys: out, NextRotation: ks.NextRotation}
	nextRotation := earliestNext(next)
	o.changed = o.created || o.rotated || o.pruned > 0 || o.sealed > 0 || o.replaced > 0 || generated > 0 ||
		len(o.dropped) > 0 || len(o.unneeded) > 0 || !nextRotation.Equal(ks.NextRotation)
	if !o.changed {
		return ks, o, nil
	}
	// Stored order: per configured algorithm next then current, current keys
	// of algorithms no longer configured, retired keys newest first.
	slices.SortStableFunc(retired, func(a, b store.SigningKey) int { return b.RetiredAt.Compare(a.RetiredAt) })
	return store.KeySet{
		Keys:         append(out, retired...),
		NextRotation: nextRotation,
		Version:      ks.Version,
		UpdatedAt:    now,
	}, o, nil
}
