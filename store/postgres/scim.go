package postgres

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/keyward/keyward/store"
)

const scimColumns = `upstream, type, id, external_id, name, subject, active, members, attributes, version,
	created_at, updated_at`

func scimArgs(x store.SCIMResource) ([]any, error) {
	for _, k := range []struct{ name, v string }{{"upstream", x.Upstream}, {"type", string(x.Type)}, {"id", x.ID}, {"name", x.Name}} {
		if err := checkKey(k.name, k.v, true); err != nil {
			return nil, err
		}
	}
	for _, m := range x.Members {
		if err := checkKey("member", m, true); err != nil {
			return nil, err
		}
	}
	return []any{x.Upstream, string(x.Type), x.ID, x.ExternalID, x.Name, x.Subject, x.Active, x.Members,
		x.Attributes, x.Version, ts(x.CreatedAt), ts(x.UpdatedAt), strings.ToLower(x.Name)}, nil
}

func scanSCIM(row pgx.Row) (store.SCIMResource, error) {
	var x store.SCIMResource
	var typ string
	err := row.Scan(&x.Upstream, &typ, &x.ID, &x.ExternalID, &x.Name, &x.Subject, &x.Active, &x.Members,
		&x.Attributes, &x.Version, scanTime(&x.CreatedAt), scanTime(&x.UpdatedAt))
	x.Type = store.SCIMType(typ)
	return normSCIM(x), err
}

// normSCIM is what a resource reads back as: empty slices are nil.
func normSCIM(x store.SCIMResource) store.SCIMResource {
	x.CreatedAt = utc(x.CreatedAt)
	x.UpdatedAt = utc(x.UpdatedAt)
	if len(x.Members) == 0 {
		x.Members = nil
	}
	if len(x.Attributes) == 0 {
		x.Attributes = nil
	}
	return x
}

// CreateSCIMResource stores r with Version 1; ErrConflict when its key or
// its name (case-insensitively) is taken.
func (s *Store) CreateSCIMResource(ctx context.Context, r store.SCIMResource) error {
	r.Version = 1
	return insert(ctx, s, "create scim resource", r, scimArgs, `INSERT INTO scim_resources (`+scimColumns+`, name_key)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`)
}

// GetSCIMResource returns the resource, or ErrNotFound.
func (s *Store) GetSCIMResource(ctx context.Context, upstream string, typ store.SCIMType, id string) (store.SCIMResource, error) {
	return getOne(ctx, s, "get scim resource", scanSCIM, `SELECT `+scimColumns+` FROM scim_resources
		WHERE upstream = $1 AND type = $2 AND id = $3`, upstream, string(typ), id)
}

// UpdateSCIMResource applies updater to the resource and returns what it
// stored (Version + 1).
func (s *Store) UpdateSCIMResource(ctx context.Context, upstream string, typ store.SCIMType, id string, updater func(store.SCIMResource) (store.SCIMResource, error)) (store.SCIMResource, error) {
	type key struct {
		upstream string
		typ      store.SCIMType
		id       string
		subject  string
	}
	return writeResult(ctx, s, "update scim resource", func(ctx context.Context, tx pgx.Tx) (store.SCIMResource, error) {
		old, err := scanSCIM(tx.QueryRow(ctx, `SELECT `+scimColumns+` FROM scim_resources
			WHERE upstream = $1 AND type = $2 AND id = $3 FOR UPDATE`, upstream, string(typ), id))
		if err != nil {
			return store.SCIMResource{}, err
		}
		x, err := applyUpdater(old, updater, func(x store.SCIMResource) key { return key{x.Upstream, x.Type, x.ID, x.Subject} })
		if err != nil {
			return store.SCIMResource{}, err
		}
		x.Version = old.Version + 1
		args, err := scimArgs(x)
		if err != nil {
			return store.SCIMResource{}, err
		}
		_, err = tx.Exec(ctx, `UPDATE scim_resources SET external_id = $4, name = $5, subject = $6, active = $7,
			members = $8, attributes = $9, version = $10, created_at = $11, updated_at = $12, name_key = $13
			WHERE upstream = $1 AND type = $2 AND id = $3`, args...)
		return normSCIM(x), err
	})
}

// DeleteSCIMResource removes the resource, or returns ErrNotFound.
func (s *Store) DeleteSCIMResource(ctx context.Context, upstream string, typ store.SCIMType, id string) error {
	return s.deleteOne(ctx, "delete scim resource", `DELETE FROM scim_resources
		WHERE upstream = $1 AND type = $2 AND id = $3`, upstream, string(typ), id)
}

// ListSCIMResources returns the resources of (upstream, typ), ordered by
// CreatedAt then ID.
func (s *Store) ListSCIMResources(ctx context.Context, upstream string, typ store.SCIMType) ([]store.SCIMResource, error) {
	return getAll(ctx, s, "list scim resources", scanSCIM, `SELECT `+scimColumns+` FROM scim_resources
		WHERE upstream = $1 AND type = $2 ORDER BY created_at ASC NULLS FIRST, id`, upstream, string(typ))
}
