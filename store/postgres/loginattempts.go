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

// loginAttemptArgs are the column values of a, in loginAttemptColumns
// order, once a is valid.
func loginAttemptArgs(a store.LoginAttempt) ([]any, error) {
	if err := errors.Join(checkKey("id", a.ID, true), checkKey("state", a.State, false)); err != nil {
		return nil, err
	}
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
	return insert(ctx, s, "create login attempt", a, loginAttemptArgs, `INSERT INTO login_attempts (`+loginAttemptColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`)
}

// GetLoginAttempt returns the attempt with id, or ErrNotFound.
func (s *Store) GetLoginAttempt(ctx context.Context, id string) (store.LoginAttempt, error) {
	return getOne(ctx, s, "get login attempt", scanLoginAttempt,
		`SELECT `+loginAttemptColumns+` FROM login_attempts WHERE id = $1`, id)
}

// GetLoginAttemptByState returns the attempt whose State is state, or
// ErrNotFound. An empty state is never found.
func (s *Store) GetLoginAttemptByState(ctx context.Context, state string) (store.LoginAttempt, error) {
	return getOne(ctx, s, "get login attempt by state", scanLoginAttempt,
		`SELECT `+loginAttemptColumns+` FROM login_attempts WHERE state = $1 AND state <> ''`, state)
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
		a, err := applyUpdater(old, updater, func(a store.LoginAttempt) string { return a.ID })
		if err != nil {
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
	return s.deleteOne(ctx, "delete login attempt", `DELETE FROM login_attempts WHERE id = $1`, id)
}
