package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/keyward/keyward/store"
)

const loginAttemptColumns = `id, client_id, authorize_form, upstream_id, state, nonce, pkce_verifier,
	browser_binding, created_at, expires_at`

func checkLoginAttempt(a store.LoginAttempt) error {
	return errors.Join(checkKey("id", a.ID, true), checkKey("state", a.State, false))
}

// loginAttemptArgs are the column values of a, in loginAttemptColumns order.
func loginAttemptArgs(a store.LoginAttempt) ([]any, error) {
	form, err := json.Marshal(a.AuthorizeForm)
	if err != nil {
		return nil, fmt.Errorf("encode authorize form: %w", err)
	}
	return []any{a.ID, a.ClientID, form, a.UpstreamID, a.State, a.Nonce, a.PKCEVerifier,
		a.BrowserBinding, ts(a.CreatedAt), ts(a.ExpiresAt)}, nil
}

func scanLoginAttempt(row pgx.Row) (store.LoginAttempt, error) {
	var (
		a    store.LoginAttempt
		form []byte
	)
	err := row.Scan(&a.ID, &a.ClientID, &form, &a.UpstreamID, &a.State, &a.Nonce, &a.PKCEVerifier,
		&a.BrowserBinding, scanTime(&a.CreatedAt), scanTime(&a.ExpiresAt))
	if err != nil {
		return store.LoginAttempt{}, err
	}
	if err := json.Unmarshal(form, &a.AuthorizeForm); err != nil {
		return store.LoginAttempt{}, fmt.Errorf("decode authorize form: %w", err)
	}
	return a, nil
}

// CreateLoginAttempt stores a. It returns ErrConflict when the ID or the
// non-empty State is taken.
func (s *Store) CreateLoginAttempt(ctx context.Context, a store.LoginAttempt) error {
	const op = "create login attempt"
	if err := checkLoginAttempt(a); err != nil {
		return invalid(op, err)
	}
	args, err := loginAttemptArgs(a)
	if err != nil {
		return invalid(op, err)
	}
	return s.statement(ctx, op, func(ctx context.Context, q querier) error {
		_, err := q.Exec(ctx, `INSERT INTO login_attempts (`+loginAttemptColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, args...)
		return err
	})
}

// GetLoginAttempt returns the attempt with id, or ErrNotFound.
func (s *Store) GetLoginAttempt(ctx context.Context, id string) (store.LoginAttempt, error) {
	var a store.LoginAttempt
	err := s.read(ctx, "get login attempt", func(ctx context.Context, q querier) error {
		var err error
		a, err = scanLoginAttempt(q.QueryRow(ctx, `SELECT `+loginAttemptColumns+` FROM login_attempts WHERE id = $1`, id))
		return err
	})
	return a, err
}

// GetLoginAttemptByState returns the attempt whose State is state, or
// ErrNotFound. An empty state is never found.
func (s *Store) GetLoginAttemptByState(ctx context.Context, state string) (store.LoginAttempt, error) {
	var a store.LoginAttempt
	err := s.read(ctx, "get login attempt by state", func(ctx context.Context, q querier) error {
		var err error
		a, err = scanLoginAttempt(q.QueryRow(ctx,
			`SELECT `+loginAttemptColumns+` FROM login_attempts WHERE state = $1 AND state <> ''`, state))
		return err
	})
	return a, err
}

// UpdateLoginAttempt applies updater to the attempt with id. The updater may
// change State (ErrConflict when another attempt holds it) but not ID.
func (s *Store) UpdateLoginAttempt(ctx context.Context, id string, updater func(store.LoginAttempt) (store.LoginAttempt, error)) error {
	return s.write(ctx, "update login attempt", func(ctx context.Context, tx pgx.Tx) error {
		old, err := scanLoginAttempt(tx.QueryRow(ctx,
			`SELECT `+loginAttemptColumns+` FROM login_attempts WHERE id = $1 FOR UPDATE`, id))
		if err != nil {
			return err
		}
		a, err := updater(old)
		if err != nil {
			return updaterError{err}
		}
		if a.ID != old.ID {
			return errChangedKey
		}
		if err := checkLoginAttempt(a); err != nil {
			return err
		}
		args, err := loginAttemptArgs(a)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE login_attempts SET client_id = $2, authorize_form = $3, upstream_id = $4,
			state = $5, nonce = $6, pkce_verifier = $7, browser_binding = $8, created_at = $9, expires_at = $10
			WHERE id = $1`, args...)
		return err
	})
}

// DeleteLoginAttempt removes the attempt with id, or returns ErrNotFound.
func (s *Store) DeleteLoginAttempt(ctx context.Context, id string) error {
	return s.statement(ctx, "delete login attempt", func(ctx context.Context, q querier) error {
		return deleteOne(ctx, q, `DELETE FROM login_attempts WHERE id = $1`, id)
	})
}

// deleteOne runs a DELETE of one record by key; pgx.ErrNoRows when there
// was none.
func deleteOne(ctx context.Context, q querier, sql string, args ...any) error {
	tag, err := q.Exec(ctx, sql, args...)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return pgx.ErrNoRows
	}
	return nil
}
