package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/keyward/keyward/store"
)

const subjectColumns = `id, upstream_id, upstream_subject, email, name, disabled, not_before, created_at,
	updated_at, last_login_at, disabled_at, disabled_by, disabled_reason`

func subjectArgs(x store.Subject) []any {
	return []any{x.ID, x.UpstreamID, x.UpstreamSubject, x.Email, x.Name, x.Disabled, ts(x.NotBefore),
		ts(x.CreatedAt), ts(x.UpdatedAt), ts(x.LastLoginAt), ts(x.DisabledAt), x.DisabledBy, x.DisabledReason}
}

func scanSubject(row pgx.Row) (store.Subject, error) {
	var x store.Subject
	err := row.Scan(&x.ID, &x.UpstreamID, &x.UpstreamSubject, &x.Email, &x.Name, &x.Disabled,
		scanTime(&x.NotBefore), scanTime(&x.CreatedAt), scanTime(&x.UpdatedAt), scanTime(&x.LastLoginAt),
		scanTime(&x.DisabledAt), &x.DisabledBy, &x.DisabledReason)
	return x, err
}

// normSubject is what a subject reads back as.
func normSubject(x store.Subject) store.Subject {
	x.NotBefore = utc(x.NotBefore)
	x.CreatedAt = utc(x.CreatedAt)
	x.UpdatedAt = utc(x.UpdatedAt)
	x.LastLoginAt = utc(x.LastLoginAt)
	x.DisabledAt = utc(x.DisabledAt)
	return x
}

const insertSubject = `INSERT INTO subjects (` + subjectColumns + `)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`

// CreateSubject stores sub, or returns ErrConflict when its ID is taken.
func (s *Store) CreateSubject(ctx context.Context, sub store.Subject) error {
	const op = "create subject"
	if err := checkKey("id", sub.ID, true); err != nil {
		return invalid(op, err)
	}
	return s.exec(ctx, op, insertSubject, subjectArgs(sub)...)
}

// GetSubject returns the subject with id, or ErrNotFound.
func (s *Store) GetSubject(ctx context.Context, id string) (store.Subject, error) {
	return getOne(ctx, s, "get subject", scanSubject, `SELECT `+subjectColumns+` FROM subjects WHERE id = $1`, id)
}

// UpdateSubject applies updater to the subject with id. The updater may not
// change ID.
func (s *Store) UpdateSubject(ctx context.Context, id string, updater func(store.Subject) (store.Subject, error)) error {
	return s.write(ctx, "update subject", func(ctx context.Context, tx pgx.Tx) error {
		_, err := updateSubject(ctx, tx, id, updater)
		return err
	})
}

// updateSubject locks the subject id, applies updater and writes the
// result, which it returns as stored.
func updateSubject(ctx context.Context, tx pgx.Tx, id string, updater func(store.Subject) (store.Subject, error)) (store.Subject, error) {
	old, err := scanSubject(tx.QueryRow(ctx, `SELECT `+subjectColumns+` FROM subjects WHERE id = $1 FOR UPDATE`, id))
	if err != nil {
		return store.Subject{}, err
	}
	x, err := applyUpdater(old, updater, func(x store.Subject) string { return x.ID })
	if err != nil {
		return store.Subject{}, err
	}
	_, err = tx.Exec(ctx, `UPDATE subjects SET upstream_id = $2, upstream_subject = $3, email = $4, name = $5,
		disabled = $6, not_before = $7, created_at = $8, updated_at = $9, last_login_at = $10,
		disabled_at = $11, disabled_by = $12, disabled_reason = $13
		WHERE id = $1`, subjectArgs(x)...)
	return normSubject(x), err
}

// UpsertSubject creates the subject from create() when id does not exist,
// otherwise applies updater; it returns what it stored. create must return a
// subject whose ID is id. When another transaction creates the subject
// first, the updater is applied to its result instead.
func (s *Store) UpsertSubject(ctx context.Context, id string, create func() store.Subject, updater func(store.Subject) (store.Subject, error)) (store.Subject, error) {
	const op = "upsert subject"
	if err := checkKey("id", id, true); err != nil {
		return store.Subject{}, invalid(op, err)
	}
	return writeResult(ctx, s, op, func(ctx context.Context, tx pgx.Tx) (store.Subject, error) {
		return upsertSubject(ctx, tx, id, create, updater)
	})
}

// upsertSubject is UpsertSubject inside tx: it locks the subject id and
// applies updater, or creates it from create(), and returns what it stored.
func upsertSubject(ctx context.Context, tx pgx.Tx, id string, create func() store.Subject, updater func(store.Subject) (store.Subject, error)) (store.Subject, error) {
	stored, err := updateSubject(ctx, tx, id, updater)
	if !errors.Is(err, pgx.ErrNoRows) {
		return stored, err
	}
	x := normSubject(create())
	if x.ID != id {
		return store.Subject{}, errChangedKey
	}
	tag, err := tx.Exec(ctx, insertSubject+` ON CONFLICT (id) DO NOTHING`, subjectArgs(x)...)
	if err != nil {
		return store.Subject{}, err
	}
	if tag.RowsAffected() == 1 {
		return x, nil
	}
	// Created meanwhile by another transaction, now committed (the insert
	// waited for it): this statement sees it.
	return updateSubject(ctx, tx, id, updater)
}

// ListSubjects returns every subject, ordered by ID.
func (s *Store) ListSubjects(ctx context.Context) ([]store.Subject, error) {
	return getAll(ctx, s, "list subjects", scanSubject, `SELECT `+subjectColumns+` FROM subjects ORDER BY id`)
}
