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

func checkSession(s store.Session) error {
	return errors.Join(checkKey("id", s.ID, true), checkKey("subject", s.Subject, false))
}

// sessionArgs are the column values of x, in sessionColumns order.
func sessionArgs(x store.Session) ([]any, error) {
	identity, err := json.Marshal(x.Identity)
	if err != nil {
		return nil, fmt.Errorf("encode identity: %w", err)
	}
	return []any{x.ID, x.Subject, x.UpstreamID, x.UpstreamSubject, identity, ts(x.AuthTime), ts(x.CreatedAt),
		ts(x.LastSeenAt), ts(x.ExpiresAt), x.UpstreamRefreshToken, ts(x.UpstreamCheckedAt)}, nil
}

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
	const op = "create session"
	if err := checkSession(sess); err != nil {
		return invalid(op, err)
	}
	args, err := sessionArgs(sess)
	if err != nil {
		return invalid(op, err)
	}
	return s.statement(ctx, op, func(ctx context.Context, q querier) error {
		_, err := q.Exec(ctx, `INSERT INTO sessions (`+sessionColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`, args...)
		return err
	})
}

// GetSession returns the session with id, or ErrNotFound.
func (s *Store) GetSession(ctx context.Context, id string) (store.Session, error) {
	var x store.Session
	err := s.read(ctx, "get session", func(ctx context.Context, q querier) error {
		var err error
		x, err = scanSession(q.QueryRow(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE id = $1`, id))
		return err
	})
	return x, err
}

// UpdateSession applies updater to the session with id. The updater may
// change Subject but not ID.
func (s *Store) UpdateSession(ctx context.Context, id string, updater func(store.Session) (store.Session, error)) error {
	return s.write(ctx, "update session", func(ctx context.Context, tx pgx.Tx) error {
		old, err := scanSession(tx.QueryRow(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE id = $1 FOR UPDATE`, id))
		if err != nil {
			return err
		}
		x, err := updater(old)
		if err != nil {
			return updaterError{err}
		}
		if x.ID != old.ID {
			return errChangedKey
		}
		if err := checkSession(x); err != nil {
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
	return s.statement(ctx, "delete session", func(ctx context.Context, q querier) error {
		return deleteOne(ctx, q, `DELETE FROM sessions WHERE id = $1`, id)
	})
}

// ListSessions returns the sessions of subject (every session when subject is
// empty), ordered by CreatedAt (zero first) then ID.
func (s *Store) ListSessions(ctx context.Context, subject string) ([]store.Session, error) {
	var list []store.Session
	err := s.read(ctx, "list sessions", func(ctx context.Context, q querier) error {
		list = nil
		rows, err := q.Query(ctx, `SELECT `+sessionColumns+` FROM sessions
			WHERE $1 = '' OR subject = $1
			ORDER BY created_at ASC NULLS FIRST, id`, subject)
		if err != nil {
			return err
		}
		list, err = collect(rows, scanSession)
		return err
	})
	if err != nil {
		return nil, err
	}
	return list, nil
}

// collect scans every row with scan.
func collect[T any](rows pgx.Rows, scan func(pgx.Row) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
