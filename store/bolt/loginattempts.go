package bolt

import (
	"context"
	"errors"

	bolt "go.etcd.io/bbolt"

	"github.com/keyward/keyward/store"
)

func normLoginAttempt(a store.LoginAttempt) store.LoginAttempt {
	a.CreatedAt = utc(a.CreatedAt)
	a.ExpiresAt = utc(a.ExpiresAt)
	return a
}

func checkLoginAttempt(a store.LoginAttempt) error {
	return errors.Join(checkKey("id", a.ID, true), checkKey("state", a.State, false))
}

// CreateLoginAttempt stores a. It returns ErrConflict when the ID or the
// non-empty State is taken.
func (s *Store) CreateLoginAttempt(ctx context.Context, a store.LoginAttempt) error {
	const op = "create login attempt"
	a = normLoginAttempt(a)
	if err := checkLoginAttempt(a); err != nil {
		return wrapErr(op, err)
	}
	v, err := encode(a)
	if err != nil {
		return wrapErr(op, err)
	}
	id := []byte(a.ID)
	return s.update(ctx, op, func(tx *bolt.Tx) error {
		if tx.Bucket(bucketLoginAttempts).Get(id) != nil {
			return refuse(store.ErrConflict)
		}
		if a.State != "" && tx.Bucket(bucketAttemptByState).Get([]byte(a.State)) != nil {
			return refuse(store.ErrConflict)
		}
		return putLoginAttempt(tx, id, v, "", a.State)
	})
}

// putLoginAttempt writes the record and moves its State index entry.
func putLoginAttempt(tx *bolt.Tx, id, v []byte, oldState, newState string) error {
	if err := tx.Bucket(bucketLoginAttempts).Put(id, v); err != nil {
		return err
	}
	if oldState == newState {
		return nil
	}
	states := tx.Bucket(bucketAttemptByState)
	if oldState != "" {
		if err := states.Delete([]byte(oldState)); err != nil {
			return err
		}
	}
	if newState != "" {
		return states.Put([]byte(newState), id)
	}
	return nil
}

// GetLoginAttempt returns the attempt with id, or ErrNotFound.
func (s *Store) GetLoginAttempt(ctx context.Context, id string) (store.LoginAttempt, error) {
	var a store.LoginAttempt
	err := s.view(ctx, "get login attempt", func(tx *bolt.Tx) error {
		return get(tx, bucketLoginAttempts, []byte(id), &a)
	})
	return a, err
}

// GetLoginAttemptByState returns the attempt whose State is state, or
// ErrNotFound. An empty state is never found.
func (s *Store) GetLoginAttemptByState(ctx context.Context, state string) (store.LoginAttempt, error) {
	var a store.LoginAttempt
	err := s.view(ctx, "get login attempt by state", func(tx *bolt.Tx) error {
		if state == "" {
			return store.ErrNotFound
		}
		id := tx.Bucket(bucketAttemptByState).Get([]byte(state))
		if id == nil {
			return store.ErrNotFound
		}
		return get(tx, bucketLoginAttempts, id, &a)
	})
	return a, err
}

// UpdateLoginAttempt applies updater to the attempt with id. The updater may
// change State (ErrConflict when another attempt holds it) but not ID.
func (s *Store) UpdateLoginAttempt(ctx context.Context, id string, updater func(store.LoginAttempt) (store.LoginAttempt, error)) error {
	return s.update(ctx, "update login attempt", func(tx *bolt.Tx) error {
		var old store.LoginAttempt
		if err := get(tx, bucketLoginAttempts, []byte(id), &old); err != nil {
			return refuse(err)
		}
		a, err := updater(old)
		if err != nil {
			return refuse(updaterError{err})
		}
		a = normLoginAttempt(a)
		if a.ID != old.ID {
			return refuse(errChangedKey)
		}
		if err := checkLoginAttempt(a); err != nil {
			return refuse(err)
		}
		if a.State != old.State && a.State != "" && tx.Bucket(bucketAttemptByState).Get([]byte(a.State)) != nil {
			return refuse(store.ErrConflict)
		}
		v, err := encode(a)
		if err != nil {
			return refuse(err)
		}
		return putLoginAttempt(tx, []byte(id), v, old.State, a.State)
	})
}

// DeleteLoginAttempt removes the attempt with id, or returns ErrNotFound.
func (s *Store) DeleteLoginAttempt(ctx context.Context, id string) error {
	return s.update(ctx, "delete login attempt", func(tx *bolt.Tx) error {
		return deleteLoginAttemptByID(tx, id)
	})
}

// deleteLoginAttemptByID removes the attempt with id; a missing one is
// refused with ErrNotFound before anything is written.
func deleteLoginAttemptByID(tx *bolt.Tx, id string) error {
	var old store.LoginAttempt
	if err := get(tx, bucketLoginAttempts, []byte(id), &old); err != nil {
		return refuse(err)
	}
	return deleteLoginAttempt(tx, old)
}

func deleteLoginAttempt(tx *bolt.Tx, a store.LoginAttempt) error {
	if err := tx.Bucket(bucketLoginAttempts).Delete([]byte(a.ID)); err != nil {
		return err
	}
	if a.State == "" {
		return nil
	}
	return tx.Bucket(bucketAttemptByState).Delete([]byte(a.State))
}
