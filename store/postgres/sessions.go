package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/keyward/keyward/store"
)

const sessionColumns = `id, subject, upstream_id, upstream_subject, identity, auth_time, created_at,
	last_seen_at, expires_at, upstream_refresh_token, upstream_checked_at`

// sessionArgs are the column values of x, in sessionColumns order, once x
// is valid.
func sessionArgs(x store.Session) ([]any, error) {
	if err := errors.Join(checkKey("id", x.ID, true), checkKey("subject", x.Subject, false)); err != nil {
		return nil, err
	}
	identity, err := json.Marshal(x.Identity)
	if err != nil {
		return nil, fmt.Errorf("encode identity: %w", err)
	}
	return []any{x.ID, x.Subject, x.UpstreamID, x.UpstreamSubject, identity, ts(x.AuthTime), ts(x.CreatedAt),
		ts(x.LastSeenAt), ts(x.ExpiresAt), x.UpstreamRefreshToken, ts(x.UpstreamCheckedAt)}, nil
}

// insertSession stores one session; its parameters are sessionArgs.
const insertSession = `INSERT INTO sessions (` + sessionColumns + `)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`

func scanSession(row pgx.Row) (store.Session, error) {
	var (
		x        store.Session
		identity []byte
	)
	err := row.Scan(&x.ID, &x.Subject, &x.UpstreamID, &x.UpstreamSubject, &identity, scanTime(&x.AuthTime),
		scanTime(&x.CreatedAt), scanTime(&x.LastSeenAt), scanTime(&x.ExpiresAt), &x.UpstreamRefreshToken,
		scanTime(&x.UpstreamCheckedAt))
	if err != nil {
		return store.Session{}, err
	}
	if err := json.Unmarshal(identity, &x.Identity); err != nil {
		return store.Session{}, fmt.Errorf("decode identity: %w", err)
	}
	return x, nil
}

// CreateSession stores sess, or returns ErrConflict when its ID is taken.
func (s *Store) CreateSession(ctx context.Context, sess store.Session) error {
	return insert(ctx, s, "create session", sess, sessionArgs, insertSession)
}

// GetSession returns the session with id, or ErrNotFound.
func (s *Store) GetSession(ctx context.Context, id string) (store.Session, error) {
	return getOne(ctx, s, "get session", scanSession, `SELECT `+sessionColumns+` FROM sessions WHERE id = $1`, id)
}

// UpdateSession applies updater to the session with id. The updater may
// change Subject but not ID.
func (s *Store) UpdateSession(ctx context.Context, id string, updater func(store.Session) (store.Session, error)) error {
	return s.write(ctx, "update session", func(ctx context.Context, tx pgx.Tx) error {
		old, err := scanSession(tx.QueryRow(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE id = $1 FOR UPDATE`, id))
		if err != nil {
			return err
		}
		x, err := applyUpdater(old, updater, func(x store.Session) string { return x.ID })
		if err != nil {
			return err
		}
		args, err := sessionArgs(x)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE sessions SET subject = $2, upstream_id = $3, upstream_subject = $4,
			identity = $5, auth_time = $6, created_at = $7, last_seen_at = $8, expires_at = $9,
			upstream_refresh_token = $10, upstream_checked_at = $11
			WHERE id = $1`, args...)
		return err
	})
}

// DeleteSession removes the session with id, or returns ErrNotFound.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	return s.deleteOne(ctx, "delete session", `DELETE FROM sessions WHERE id = $1`, id)
}

// ListSessions returns the sessions of subject (every session when subject is
// empty), ordered by CreatedAt (zero first) then ID.
func (s *Store) ListSessions(ctx context.Context, subject string) ([]store.Session, error) {
	return getAll(ctx, s, "list sessions", scanSession, `SELECT `+sessionColumns+` FROM sessions
		WHERE $1 = '' OR subject = $1
		ORDER BY created_at ASC NULLS FIRST, id`, subject)
}
