package bolt

import (
	"context"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/keyward/keyward/store"
)

func normKeySet(ks store.KeySet) store.KeySet {
	ks.NextRotation = utc(ks.NextRotation)
	ks.UpdatedAt = utc(ks.UpdatedAt)
	ks.Keys = slices.Clone(ks.Keys)
	for i := range ks.Keys {
		k := &ks.Keys[i]
		k.CreatedAt = utc(k.CreatedAt)
		k.ActivatesAt = utc(k.ActivatesAt)
		k.RetiredAt = utc(k.RetiredAt)
		k.ExpiresAt = utc(k.ExpiresAt)
	}
	return ks
}

// GetKeySet returns the key set, or ErrNotFound before the first
// UpdateKeySet.
func (s *Store) GetKeySet(ctx context.Context) (store.KeySet, error) {
	var ks store.KeySet
	err := s.view(ctx, "get key set", func(tx *bolt.Tx) error {
		return get(tx, bucketKeySet, keyKeySet, &ks)
	})
	return ks, err
}

// UpdateKeySet applies updater to the stored key set (the zero KeySet when
// none is stored) and stores the result with Version = old Version + 1,
// whatever the updater set.
func (s *Store) UpdateKeySet(ctx context.Context, updater func(store.KeySet) (store.KeySet, error)) error {
	return s.update(ctx, "update key set", func(tx *bolt.Tx) error {
		var old store.KeySet
		if v := tx.Bucket(bucketKeySet).Get(keyKeySet); v != nil {
			if err := decode(v, &old); err != nil {
				return refuse(err)
			}
		}
		ks, err := updater(old)
		if err != nil {
			return refuse(updaterError{err})
		}
		ks.Version = old.Version + 1
		v, err := encode(normKeySet(ks))
		if err != nil {
			return refuse(err)
		}
		return tx.Bucket(bucketKeySet).Put(keyKeySet, v)
	})
}
