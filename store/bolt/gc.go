package bolt

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/keyward/keyward/store"
)

// gcChunk is how many records one garbage-collection transaction removes, so
// that a large collection does not hold the write lock for long.
const gcChunk = 500

// collectable is a record type that GarbageCollect removes on expiry.
type collectable struct {
	bucket []byte
	// remove deletes the record encoded in v, with its index entries.
	remove func(tx *bolt.Tx, v []byte) error
}

var collectables = []collectable{
	{bucketLoginAttempts, func(tx *bolt.Tx, v []byte) error {
		var a store.LoginAttempt
		if err := decode(v, &a); err != nil {
			return err
		}
		return deleteLoginAttempt(tx, a)
	}},
	{bucketSessions, func(tx *bolt.Tx, v []byte) error {
		var sess store.Session
		if err := decode(v, &sess); err != nil {
			return err
		}
		return deleteSession(tx, sess)
	}},
	{bucketGrants, func(tx *bolt.Tx, v []byte) error {
		var g store.Grant
		if err := decode(v, &g); err != nil {
			return err
		}
		return deleteGrant(tx, g)
	}},
	// The Seq counter in the meta bucket is left alone: ListRevocations
	// still reports the highest Seq ever assigned.
	{bucketRevocations, func(tx *bolt.Tx, v []byte) error {
		var r store.Revocation
		if err := decode(v, &r); err != nil {
			return err
		}
		return tx.Bucket(bucketRevocations).Delete(seqKey(r.Seq))
	}},
}

// expired reports whether the record encoded in v has a non-zero ExpiresAt
// not after now. Every collectable record has that field.
func expired(v []byte, now time.Time) (bool, error) {
	var r struct{ ExpiresAt time.Time }
	if err := json.Unmarshal(v, &r); err != nil {
		return false, fmt.Errorf("decode: %w", err)
	}
	return !r.ExpiresAt.IsZero() && !r.ExpiresAt.After(now), nil
}

// GarbageCollect removes login attempts, sessions, grants and revocation-feed
// entries whose ExpiresAt is non-zero and not after now, with their index
// entries. It finds them in a read transaction, then removes them in write
// transactions of at most gcChunk records, checking expiry again. Subjects,
// the key set and audit events are never collected. On error it reports
// what it removed so far.
func (s *Store) GarbageCollect(ctx context.Context, now time.Time) (store.GCResult, error) {
	var res store.GCResult
	counts := []*int{&res.LoginAttempts, &res.Sessions, &res.Grants, &res.Revocations}
	for i, c := range collectables {
		n, err := s.collect(ctx, c, now)
		*counts[i] += n
		if err != nil {
			return res, fmt.Errorf("bolt: garbage collect: %w", err)
		}
	}
	if !res.IsEmpty() {
		s.logger.DebugContext(ctx, "garbage collected",
			"login_attempts", res.LoginAttempts, "sessions", res.Sessions, "grants", res.Grants,
			"revocations", res.Revocations)
	}
	return res, nil
}

func (s *Store) collect(ctx context.Context, c collectable, now time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var keys [][]byte
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(c.bucket).ForEach(func(k, v []byte) error {
			ok, err := expired(v, now)
			if ok {
				keys = append(keys, bytes.Clone(k))
			}
			return err
		})
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for chunk := range slices.Chunk(keys, gcChunk) {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		removed := 0
		err := s.db.Update(func(tx *bolt.Tx) error {
			removed = 0
			b := tx.Bucket(c.bucket)
			for _, k := range chunk {
				v := b.Get(k)
				if v == nil {
					continue // deleted meanwhile
				}
				if ok, err := expired(v, now); err != nil || !ok {
					if err != nil {
						return err
					}
					continue // extended meanwhile
				}
				if err := c.remove(tx, v); err != nil {
					return err
				}
				removed++
			}
			return nil
		})
		if err != nil {
			return n, err
		}
		n += removed
	}
	return n, nil
}
