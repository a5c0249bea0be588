package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/keyward/keyward/store"
)

// The key set is the one row of key_set, created by the first migration
// with version 0: "no key set stored yet".

// scanKeySet reads the key_set row; version 0 gives the zero KeySet.
func scanKeySet(row pgx.Row) (store.KeySet, error) {
	var (
		ks   store.KeySet
		keys []byte
	)
	if err := row.Scan(&ks.Version, &keys, scanTime(&ks.NextRotation), scanTime(&ks.UpdatedAt)); err != nil {
		return store.KeySet{}, err
	}
	if ks.Version == 0 {
		return store.KeySet{}, nil
	}
	if err := json.Unmarshal(keys, &ks.Keys); err != nil {
		return store.KeySet{}, fmt.Errorf("decode keys: %w", err)
	}
	return ks, nil
}

func normKeys(keys []store.SigningKey) []store.SigningKey {
	keys = slices.Clone(keys)
	for i := range keys {
		k := &keys[i]
		k.CreatedAt = utc(k.CreatedAt)
		k.ActivatesAt = utc(k.ActivatesAt)
		k.RetiredAt = utc(k.RetiredAt)
		k.ExpiresAt = utc(k.ExpiresAt)
	}
	return keys
}

// GetKeySet returns the key set, or ErrNotFound before the first
// UpdateKeySet.
func (s *Store) GetKeySet(ctx context.Context) (store.KeySet, error) {
	storedKeySet := func(row pgx.Row) (store.KeySet, error) {
		ks, err := scanKeySet(row)
		if err == nil && ks.Version == 0 {
			return store.KeySet{}, pgx.ErrNoRows
		}
		return ks, err
	}
	return getOne(ctx, s, "get key set", storedKeySet, `SELECT version, keys, next_rotation, updated_at FROM key_set WHERE id = 1`)
}

// UpdateKeySet applies updater to the stored key set (the zero KeySet when
// none is stored) and stores the result with Version = old Version + 1,
// whatever the updater set.
func (s *Store) UpdateKeySet(ctx context.Context, updater func(store.KeySet) (store.KeySet, error)) error {
	return s.write(ctx, "update key set", func(ctx context.Context, tx pgx.Tx) error {
		old, err := scanKeySet(tx.QueryRow(ctx,
			`SELECT version, keys, next_rotation, updated_at FROM key_set WHERE id = 1 FOR UPDATE`))
		if err != nil {
			return err
		}
		ks, err := updater(old)
		if err != nil {
			return updaterError{err}
		}
		keys, err := json.Marshal(normKeys(ks.Keys))
		if err != nil {
			return fmt.Errorf("encode keys: %w", err)
		}
		_, err = tx.Exec(ctx, `UPDATE key_set SET version = $1, keys = $2, next_rotation = $3, updated_at = $4
			WHERE id = 1`, old.Version+1, keys, ts(ks.NextRotation), ts(ks.UpdatedAt))
		return err
	})
}
