package bolt

import (
	"cmp"
	"context"
	"errors"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/keyward/keyward/store"
)

func normSession(s store.Session) store.Session {
	s.AuthTime = utc(s.AuthTime)
	s.CreatedAt = utc(s.CreatedAt)
	s.LastSeenAt = utc(s.LastSeenAt)
	s.ExpiresAt = utc(s.ExpiresAt)
	s.UpstreamCheckedAt = utc(s.UpstreamCheckedAt)
	return s
}

func checkSession(s store.Session) error {
	return errors.Join(checkKey("id", s.ID, true), checkKey("subject", s.Subject, false))
}

// CreateSession stores sess, or returns ErrConflict when its ID is taken.
func (s *Store) CreateSession(ctx context.Context, sess store.Session) error {
	const op = "create session"
	sess = normSession(sess)
	if err := checkSession(sess); err != nil {
		return wrapErr(op, err)
	}
	v, err := encode(sess)
	if err != nil {
		return wrapErr(op, err)
	}
	return s.update(ctx, op, func(tx *bolt.Tx) error {
		return createSession(tx, sess, v)
	})
}

// createSession stores sess, encoded as v, with its index entry; an
// existing ID is refused with ErrConflict before anything is written.
func createSession(tx *bolt.Tx, sess store.Session, v []byte) error {
	id := []byte(sess.ID)
	if tx.Bucket(bucketSessions).Get(id) != nil {
		return refuse(store.ErrConflict)
	}
	if err := tx.Bucket(bucketSessions).Put(id, v); err != nil {
		return err
	}
	return setIndex(tx, bucketSessionBySubj, true, "", sess.Subject, id)
}

// GetSession returns the session with id, or ErrNotFound.
func (s *Store) GetSession(ctx context.Context, id string) (store.Session, error) {
	var sess store.Session
	err := s.view(ctx, "get session", func(tx *bolt.Tx) error {
		return get(tx, bucketSessions, []byte(id), &sess)
	})
	return sess, err
}

// UpdateSession applies updater to the session with id. The updater may
// change Subject but not ID.
func (s *Store) UpdateSession(ctx context.Context, id string, updater func(store.Session) (store.Session, error)) error {
	return s.update(ctx, "update session", func(tx *bolt.Tx) error {
		var old store.Session
		if err := get(tx, bucketSessions, []byte(id), &old); err != nil {
			return refuse(err)
		}
		sess, err := updater(old)
		if err != nil {
			return refuse(updaterError{err})
		}
		sess = normSession(sess)
		if sess.ID != old.ID {
			return refuse(errChangedKey)
		}
		if err := checkSession(sess); err != nil {
			return refuse(err)
		}
		v, err := encode(sess)
		if err != nil {
			return refuse(err)
		}
		if err := tx.Bucket(bucketSessions).Put([]byte(id), v); err != nil {
			return err
		}
		return setIndex(tx, bucketSessionBySubj, false, old.Subject, sess.Subject, []byte(id))
	})
}

// DeleteSession removes the session with id, or returns ErrNotFound.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	return s.update(ctx, "delete session", func(tx *bolt.Tx) error {
		var old store.Session
		if err := get(tx, bucketSessions, []byte(id), &old); err != nil {
			return refuse(err)
		}
		return deleteSession(tx, old)
	})
}

func deleteSession(tx *bolt.Tx, sess store.Session) error {
	if err := tx.Bucket(bucketSessions).Delete([]byte(sess.ID)); err != nil {
		return err
	}
	return tx.Bucket(bucketSessionBySubj).Delete(indexKey(sess.Subject, []byte(sess.ID)))
}

// ListSessions returns the sessions of subject (every session when subject is
// empty), ordered by CreatedAt then ID.
func (s *Store) ListSessions(ctx context.Context, subject string) ([]store.Session, error) {
	var list []store.Session
	err := s.view(ctx, "list sessions", func(tx *bolt.Tx) error {
		list = nil
		if subject == "" {
			return tx.Bucket(bucketSessions).ForEach(func(_, v []byte) error {
				var sess store.Session
				if err := decode(v, &sess); err != nil {
					return err
				}
				list = append(list, sess)
				return nil
			})
		}
		for _, id := range scanIndex(tx, bucketSessionBySubj, subject, "") {
			var sess store.Session
			if err := get(tx, bucketSessions, id, &sess); err != nil {
				return err
			}
			list = append(list, sess)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(list, func(a, b store.Session) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return list, nil
}
