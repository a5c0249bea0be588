package bolt

import (
	"bytes"
	"cmp"
	"context"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/keyward/keyward/store"
)

// SCIM buckets. They are created by the first write, so that a file
// written by an older keyward needs no layout change; reads treat a
// missing bucket as empty.
var (
	bucketSCIM      = []byte("scim_resources") // upstream\0type\0id → resource
	bucketSCIMNames = []byte("scim_names")     // upstream\0type\0lower(name) → id
	bucketSCIMSubj  = []byte("scim_subjects")  // upstream\0type\0subject → id
)

func scimKey(upstream string, typ store.SCIMType, id string) []byte {
	return []byte(upstream + sep + string(typ) + sep + id)
}

func scimNameKey(r store.SCIMResource) []byte {
	return scimKey(r.Upstream, r.Type, strings.ToLower(r.Name))
}

func normSCIM(r store.SCIMResource) store.SCIMResource {
	r.CreatedAt = utc(r.CreatedAt)
	r.UpdatedAt = utc(r.UpdatedAt)
	r.Members = slices.Clone(r.Members)
	r.Attributes = bytes.Clone(r.Attributes)
	if len(r.Members) == 0 {
		r.Members = nil
	}
	if len(r.Attributes) == 0 {
		r.Attributes = nil
	}
	return r
}

func checkSCIM(r store.SCIMResource) error {
	for _, k := range []struct{ name, v string }{{"upstream", r.Upstream}, {"type", string(r.Type)}, {"id", r.ID}, {"name", r.Name}} {
		if err := checkKey(k.name, k.v, true); err != nil {
			return err
		}
	}
	return nil
}

func scimBuckets(tx *bolt.Tx) (res, names, subjects *bolt.Bucket, err error) {
	if res, err = tx.CreateBucketIfNotExists(bucketSCIM); err != nil {
		return nil, nil, nil, err
	}
	if names, err = tx.CreateBucketIfNotExists(bucketSCIMNames); err != nil {
		return nil, nil, nil, err
	}
	subjects, err = tx.CreateBucketIfNotExists(bucketSCIMSubj)
	return res, names, subjects, err
}

func scimSubjectKey(r store.SCIMResource) []byte { return scimKey(r.Upstream, r.Type, r.Subject) }

// CreateSCIMResource stores r with Version 1; ErrConflict when its key or
// its name (case-insensitively) is taken.
func (s *Store) CreateSCIMResource(ctx context.Context, r store.SCIMResource) error {
	const op = "create scim resource"
	r = normSCIM(r)
	r.Version = 1
	if err := checkSCIM(r); err != nil {
		return wrapErr(op, err)
	}
	v, err := encode(r)
	if err != nil {
		return wrapErr(op, err)
	}
	return s.update(ctx, op, func(tx *bolt.Tx) error {
		res, names, subjects, err := scimBuckets(tx)
		if err != nil {
			return err
		}
		key := scimKey(r.Upstream, r.Type, r.ID)
		if res.Get(key) != nil || names.Get(scimNameKey(r)) != nil || (r.Subject != "" && subjects.Get(scimSubjectKey(r)) != nil) {
			return refuse(store.ErrConflict)
		}
		if err := res.Put(key, v); err != nil {
			return err
		}
		if r.Subject != "" {
			if err := subjects.Put(scimSubjectKey(r), []byte(r.ID)); err != nil {
				return err
			}
		}
		return names.Put(scimNameKey(r), []byte(r.ID))
	})
}

// GetSCIMResource returns the resource, or ErrNotFound.
func (s *Store) GetSCIMResource(ctx context.Context, upstream string, typ store.SCIMType, id string) (store.SCIMResource, error) {
	var r store.SCIMResource
	err := s.view(ctx, "get scim resource", func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSCIM)
		if b == nil {
			return store.ErrNotFound
		}
		v := b.Get(scimKey(upstream, typ, id))
		if v == nil {
			return store.ErrNotFound
		}
		return decode(v, &r)
	})
	return r, err
}

// UpdateSCIMResource applies updater to the resource and returns what it
// stored (Version + 1).
func (s *Store) UpdateSCIMResource(ctx context.Context, upstream string, typ store.SCIMType, id string, updater func(store.SCIMResource) (store.SCIMResource, error)) (store.SCIMResource, error) {
	var stored store.SCIMResource
	err := s.update(ctx, "update scim resource", func(tx *bolt.Tx) error {
		res, names, _, err := scimBuckets(tx)
		if err != nil {
			return err
		}
		key := scimKey(upstream, typ, id)
		var old store.SCIMResource
		v := res.Get(key)
		if v == nil {
			return refuse(store.ErrNotFound)
		}
		if err := decode(v, &old); err != nil {
			return err
		}
		r, err := updater(normSCIM(old))
		if err != nil {
			return refuse(updaterError{err})
		}
		r = normSCIM(r)
		if r.Upstream != old.Upstream || r.Type != old.Type || r.ID != old.ID || r.Subject != old.Subject {
			return refuse(errChangedKey)
		}
		if err := checkSCIM(r); err != nil {
			return refuse(err)
		}
		newName, oldName := scimNameKey(r), scimNameKey(old)
		if !bytes.Equal(newName, oldName) && names.Get(newName) != nil {
			return refuse(store.ErrConflict)
		}
		r.Version = old.Version + 1
		enc, err := encode(r)
		if err != nil {
			return refuse(err)
		}
		if !bytes.Equal(newName, oldName) {
			if err := names.Delete(oldName); err != nil {
				return err
			}
			if err := names.Put(newName, []byte(r.ID)); err != nil {
				return err
			}
		}
		stored = r
		return res.Put(key, enc)
	})
	if err != nil {
		return store.SCIMResource{}, err
	}
	return normSCIM(stored), nil
}

// DeleteSCIMResource removes the resource, or returns ErrNotFound.
func (s *Store) DeleteSCIMResource(ctx context.Context, upstream string, typ store.SCIMType, id string) error {
	return s.update(ctx, "delete scim resource", func(tx *bolt.Tx) error {
		res, names, subjects, err := scimBuckets(tx)
		if err != nil {
			return err
		}
		key := scimKey(upstream, typ, id)
		v := res.Get(key)
		if v == nil {
			return refuse(store.ErrNotFound)
		}
		var old store.SCIMResource
		if err := decode(v, &old); err != nil {
			return err
		}
		if err := names.Delete(scimNameKey(old)); err != nil {
			return err
		}
		if old.Subject != "" {
			if err := subjects.Delete(scimSubjectKey(old)); err != nil {
				return err
			}
		}
		return res.Delete(key)
	})
}

// ListSCIMResources returns the resources of (upstream, typ), ordered by
// CreatedAt then ID.
func (s *Store) ListSCIMResources(ctx context.Context, upstream string, typ store.SCIMType) ([]store.SCIMResource, error) {
	var list []store.SCIMResource
	err := s.view(ctx, "list scim resources", func(tx *bolt.Tx) error {
		list = nil
		b := tx.Bucket(bucketSCIM)
		if b == nil {
			return nil
		}
		prefix := scimKey(upstream, typ, "")
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var r store.SCIMResource
			if err := decode(v, &r); err != nil {
				return err
			}
			list = append(list, r)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(list, func(a, b store.SCIMResource) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return list, nil
}
