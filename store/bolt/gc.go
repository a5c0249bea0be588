package bolt

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/keyward/keyward/store"
)

// gcChunk is how many records one garbage-collection write transaction
// removes at most, so that a large collection never holds the write lock for
// long: the token requests waiting behind it wait for one short transaction,
// not for the whole collection.
const gcChunk = 500

// gcScan is how many records one garbage-collection read transaction looks
// at, at most. A read transaction pins the pages it can see: bbolt cannot
// reuse pages freed after it began until it ends, so a long scan over a
// large file under write load would make the file grow.
const gcScan = 20000

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
// entries. It works in bounded steps, bucket by bucket in key order: a read
// transaction looks at up to gcScan records and notes up to gcChunk expired
// ones, then a write transaction of its own removes them, checking expiry
// again (a record extended or deleted meanwhile is left alone), and the
// next read resumes after the last key looked at. One call thus removes
// everything that was expired when it reached it, in as many short
// transactions as that takes. Subjects, the key set and audit events are
// never collected. On error it reports what it removed so far.
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

// collect removes the expired records of one bucket, step by step.
func (s *Store) collect(ctx context.Context, c collectable, now time.Time) (int, error) {
	n := 0
	var after []byte // the last key looked at; nil before the first step
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		keys, last, done, err := s.scanExpired(c.bucket, after, now)
		if err != nil {
			return n, err
		}
		if len(keys) > 0 {
			if err := ctx.Err(); err != nil {
				return n, err
			}
			removed, err := s.removeExpired(c, keys, now)
			n += removed
			if err != nil {
				return n, err
			}
		}
		if done {
			return n, nil
		}
		after = last
	}
}

// scanExpired looks at the records of bucket after the key after (from the
// first when nil), up to gcScan of them, and returns the keys of at most
// gcChunk expired ones, the last key looked at, and whether it reached the
// end of the bucket (s.gcScan and s.gcChunk: gcScan and gcChunk but in
// tests).
func (s *Store) scanExpired(bucket, after []byte, now time.Time) (keys [][]byte, last []byte, done bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		cur := tx.Bucket(bucket).Cursor()
		k, v := cur.First()
		if after != nil {
			k, v = cur.Seek(after)
			if k != nil && bytes.Equal(k, after) {
				k, v = cur.Next()
			}
		}
		for scanned := 0; k != nil; k, v = cur.Next() {
			if scanned == s.gcScan || len(keys) == s.gcChunk {
				return nil
			}
			scanned++
			last = bytes.Clone(k)
			ok, err := expired(v, now)
			if err != nil {
				return err
			}
			if ok {
				keys = append(keys, last)
			}
		}
		done = true
		return nil
	})
	return keys, last, done, err
}

// removeExpired removes, in one write transaction, the records at keys that
// are still there and still expired at now, and returns how many it removed.
func (s *Store) removeExpired(c collectable, keys [][]byte, now time.Time) (int, error) {
	removed := 0
	err := s.updateAlone(func(tx *bolt.Tx) error {
		removed = 0
		b := tx.Bucket(c.bucket)
		for _, k := range keys {
			v := b.Get(k)
			if v == nil {
				continue // deleted meanwhile
			}
			ok, err := expired(v, now)
			if err != nil {
				return err
			}
			if !ok {
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
		return 0, err
	}
	return removed, nil
}
