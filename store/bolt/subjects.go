package bolt

import (
	"context"

	bolt "go.etcd.io/bbolt"

	"github.com/keyward/keyward/store"
)

func normSubject(s store.Subject) store.Subject {
	s.NotBefore = utc(s.NotBefore)
	s.CreatedAt = utc(s.CreatedAt)
	s.UpdatedAt = utc(s.UpdatedAt)
	s.LastLoginAt = utc(s.LastLoginAt)
	s.DisabledAt = utc(s.DisabledAt)
	return s
}

// CreateSubject stores sub, or returns ErrConflict when its ID is taken.
func (s *Store) CreateSubject(ctx context.Context, sub store.Subject) error {
	const op = "create subject"
	sub = normSubject(sub)
	if err := checkKey("id", sub.ID, true); err != nil {
		return wrapErr(op, err)
	}
	v, err := encode(sub)
	if err != nil {
		return wrapErr(op, err)
	}
	return s.update(ctx, op, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSubjects)
		if b.Get([]byte(sub.ID)) != nil {
			return refuse(store.ErrConflict)
		}
		return putSubject(tx, nil, sub, v)
	})
}

// GetSubject returns the subject with id, or ErrNotFound.
func (s *Store) GetSubject(ctx context.Context, id string) (store.Subject, error) {
	var sub store.Subject
	err := s.view(ctx, "get subject", func(tx *bolt.Tx) error {
		return get(tx, bucketSubjects, []byte(id), &sub)
	})
	return sub, err
}

// UpdateSubject applies updater to the subject with id. The updater may not
// change ID.
func (s *Store) UpdateSubject(ctx context.Context, id string, updater func(store.Subject) (store.Subject, error)) error {
	return s.update(ctx, "update subject", func(tx *bolt.Tx) error {
		_, err := updateSubject(tx, id, updater)
		return err
	})
}

func updateSubject(tx *bolt.Tx, id string, updater func(store.Subject) (store.Subject, error)) (store.Subject, error) {
	var old store.Subject
	if err := get(tx, bucketSubjects, []byte(id), &old); err != nil {
		return store.Subject{}, refuse(err)
	}
	sub, err := updater(old)
	if err != nil {
		return store.Subject{}, refuse(updaterError{err})
	}
	sub = normSubject(sub)
	if sub.ID != old.ID {
		return store.Subject{}, refuse(errChangedKey)
	}
	v, err := encode(sub)
	if err != nil {
		return store.Subject{}, refuse(err)
	}
	return sub, putSubject(tx, &old, sub, v)
}

// UpsertSubject creates the subject from create() when id does not exist,
// otherwise applies updater; it returns what it stored. create must return a
// subject whose ID is id.
func (s *Store) UpsertSubject(ctx context.Context, id string, create func() store.Subject, updater func(store.Subject) (store.Subject, error)) (store.Subject, error) {
	var stored store.Subject
	err := s.update(ctx, "upsert subject", func(tx *bolt.Tx) error {
		var err error
		stored, err = upsertSubject(tx, id, create, updater)
		return err
	})
	if err != nil {
		return store.Subject{}, err
	}
	// Subject has no slice or map, so stored shares nothing with the caller.
	return stored, nil
}

// upsertSubject creates the subject id from create() or applies updater to
// it, and returns what it stored. Its errors are refusals: it writes only
// once nothing can fail but the write itself.
func upsertSubject(tx *bolt.Tx, id string, create func() store.Subject, updater func(store.Subject) (store.Subject, error)) (store.Subject, error) {
	if err := checkKey("id", id, true); err != nil {
		return store.Subject{}, refuse(err)
	}
	b := tx.Bucket(bucketSubjects)
	if b.Get([]byte(id)) != nil {
		return updateSubject(tx, id, updater)
	}
	sub := normSubject(create())
	if sub.ID != id {
		return store.Subject{}, refuse(errChangedKey)
	}
	v, err := encode(sub)
	if err != nil {
		return store.Subject{}, refuse(err)
	}
	return sub, putSubject(tx, nil, sub, v)
}

// ListSubjects returns every subject, ordered by ID.
func (s *Store) ListSubjects(ctx context.Context) ([]store.Subject, error) {
	var list []store.Subject
	err := s.view(ctx, "list subjects", func(tx *bolt.Tx) error {
		list = nil
		return tx.Bucket(bucketSubjects).ForEach(func(_, v []byte) error {
			var sub store.Subject
			if err := decode(v, &sub); err != nil {
				return err
			}
			list = append(list, sub)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return list, nil
}
