package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/keyward/keyward/store"
)

const grantColumns = `kind, signature, request_id, client_id, subject, session_id, active, access_signature,
	rotated_at, grace_used_at, requested_at, expires_at, data, access_token_id, access_expires_at`

// insertGrant stores one grant; its parameters are grantArgs.
const insertGrant = `INSERT INTO grants (` + grantColumns + `)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`

// grantArgs are the column values of g, in grantColumns order, once g is
// valid.
func grantArgs(g store.Grant) ([]any, error) {
	err := errors.Join(
		checkKey("kind", string(g.Kind), true),
		checkKey("signature", g.Signature, true),
		checkKey("request id", g.RequestID, false),
		checkKey("subject", g.Subject, false),
		checkKey("session id", g.SessionID, false),
	)
	if err != nil {
		return nil, err
	}
	return []any{string(g.Kind), g.Signature, g.RequestID, g.ClientID, g.Subject, g.SessionID, g.Active,
		g.AccessSignature, ts(g.RotatedAt), ts(g.GraceUsedAt), ts(g.RequestedAt), ts(g.ExpiresAt), g.Data,
		g.AccessTokenID, ts(g.AccessExpiresAt)}, nil
}

// grantKey is what identifies a grant: its kind and signature.
func grantKey(g store.Grant) [2]string { return [2]string{string(g.Kind), g.Signature} }

func scanGrant(row pgx.Row) (store.Grant, error) {
	var g store.Grant
	err := row.Scan(&g.Kind, &g.Signature, &g.RequestID, &g.ClientID, &g.Subject, &g.SessionID, &g.Active,
		&g.AccessSignature, scanTime(&g.RotatedAt), scanTime(&g.GraceUsedAt), scanTime(&g.RequestedAt),
		scanTime(&g.ExpiresAt), &g.Data, &g.AccessTokenID, scanTime(&g.AccessExpiresAt))
	return g, err
}

// CreateGrant stores g, or returns ErrConflict when (Kind, Signature) is
// taken.
func (s *Store) CreateGrant(ctx context.Context, g store.Grant) error {
	return insert(ctx, s, "create grant", g, grantArgs, insertGrant)
}

// GetGrant returns the grant (kind, signature), or ErrNotFound.
func (s *Store) GetGrant(ctx context.Context, kind store.GrantKind, signature string) (store.Grant, error) {
	return getOne(ctx, s, "get grant", scanGrant,
		`SELECT `+grantColumns+` FROM grants WHERE kind = $1 AND signature = $2`, string(kind), signature)
}

// selectGrantForUpdate reads and locks the grant (kind, signature).
const selectGrantForUpdate = `SELECT ` + grantColumns + ` FROM grants WHERE kind = $1 AND signature = $2 FOR UPDATE`

// updateGrantSQL writes a grant; its parameters are grantArgs.
const updateGrantSQL = `UPDATE grants SET request_id = $3, client_id = $4, subject = $5, session_id = $6,
	active = $7, access_signature = $8, rotated_at = $9, grace_used_at = $10, requested_at = $11,
	expires_at = $12, data = $13, access_token_id = $14, access_expires_at = $15
	WHERE kind = $1 AND signature = $2`

// updatedGrantArgs applies updater to old and returns the parameters of
// updateGrantSQL for the result.
func updatedGrantArgs(old store.Grant, updater func(store.Grant) (store.Grant, error)) ([]any, error) {
	g, err := applyUpdater(old, updater, grantKey)
	if err != nil {
		return nil, err
	}
	return grantArgs(g)
}

// updateGrant applies updater to old (locked by the caller) and writes the
// result.
func updateGrant(ctx context.Context, tx pgx.Tx, old store.Grant, updater func(store.Grant) (store.Grant, error)) error {
	args, err := updatedGrantArgs(old, updater)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, updateGrantSQL, args...)
	return err
}

// UpdateGrant applies updater to the grant (kind, signature). The updater may
// change RequestID, Subject and SessionID but not Kind or Signature.
func (s *Store) UpdateGrant(ctx context.Context, kind store.GrantKind, signature string, updater func(store.Grant) (store.Grant, error)) error {
	return s.write(ctx, "update grant", func(ctx context.Context, tx pgx.Tx) error {
		old, err := scanGrant(tx.QueryRow(ctx, selectGrantForUpdate, string(kind), signature))
		if err != nil {
			return err
		}
		return updateGrant(ctx, tx, old, updater)
	})
}

// DeleteGrant removes the grant (kind, signature), or returns ErrNotFound.
func (s *Store) DeleteGrant(ctx context.Context, kind store.GrantKind, signature string) error {
	return s.deleteOne(ctx, "delete grant", `DELETE FROM grants WHERE kind = $1 AND signature = $2`, string(kind), signature)
}

// kindNames is the text[] parameter of a kind filter; empty matches every kind.
func kindNames(kinds []store.GrantKind) []string {
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = string(k)
	}
	return names
}

// DeleteGrantsByRequest removes every grant of requestID whose kind is in
// kinds (every kind when empty) and reports how many it removed.
func (s *Store) DeleteGrantsByRequest(ctx context.Context, requestID string, kinds ...store.GrantKind) (int, error) {
	return s.execCount(ctx, "delete grants by request",
		`DELETE FROM grants WHERE request_id = $1 AND (cardinality($2::text[]) = 0 OR kind = ANY($2))`,
		requestID, kindNames(kinds))
}

// DeleteGrantsBySubject removes every grant of subject and reports how many
// it removed. An empty subject matches nothing (not the grants without
// one).
func (s *Store) DeleteGrantsBySubject(ctx context.Context, subject string) (int, error) {
	return s.execCount(ctx, "delete grants by subject", `DELETE FROM grants WHERE subject = $1 AND subject <> ''`, subject)
}

// EndSession removes the session sessionID and every grant of it, and
// appends feed when its Kind is set, and reports how many grants it removed,
// their distinct client ids and the appended entry: one statement, or with
// a feed entry one transaction. An empty sessionID matches nothing (not the
// grants issued outside a session).
func (s *Store) EndSession(ctx context.Context, sessionID string, feed store.Revocation) (store.GrantDeletion, error) {
	m := modeStatement
	if feed.Kind != "" && sessionID != "" {
		m = modeTx
	}
	return result(ctx, s, "delete grants by session", m, func(ctx context.Context, q querier) (store.GrantDeletion, error) {
		var res store.GrantDeletion
		// The session row and its grants go in one statement; the feed
		// entry in the same transaction.
		err := q.QueryRow(ctx, `WITH session AS (
				DELETE FROM sessions WHERE id = $1 AND $1 <> ''),
			removed AS (
				DELETE FROM grants WHERE session_id = $1 AND session_id <> '' RETURNING client_id)
			SELECT count(*), array_agg(DISTINCT client_id ORDER BY client_id) FILTER (WHERE client_id <> '')
			FROM removed`, sessionID).Scan(&res.Grants, &res.ClientIDs)
		if err != nil || m != modeTx {
			return res, err
		}
		res.Revocation, err = appendRevocation(ctx, q, feed)
		return res, err
	})
}

// deleteSubjectGrantsSQL deletes the grants of subject $1 and returns, per
// (session_id, client_id), how many it removed.
const deleteSubjectGrantsSQL = `WITH removed AS (
		DELETE FROM grants WHERE subject = $1 AND subject <> '' RETURNING session_id, client_id)
	SELECT session_id, client_id, count(*) FROM removed
	GROUP BY session_id, client_id ORDER BY session_id, client_id`

// sessionClientsOf reads the rows of deleteSubjectGrantsSQL: how many grants
// were removed, and the client ids per non-empty session id (nil when none).
func sessionClientsOf(rows pgx.Rows) (int, map[string][]string, error) {
	n := 0
	var out map[string][]string
	for rows.Next() {
		var sid, client string
		var count int
		if err := rows.Scan(&sid, &client, &count); err != nil {
			return 0, nil, err
		}
		n += count
		if sid == "" || client == "" {
			continue
		}
		if out == nil {
			out = make(map[string][]string)
		}
		out[sid] = append(out[sid], client) // sorted by the query
	}
	return n, out, rows.Err()
}

// UpdateGrantsByRequest applies updater to every grant of requestID whose
// kind is in kinds (every kind when empty), all or none, and reports how many
// it updated. The grants are locked in (kind, signature) order.
func (s *Store) UpdateGrantsByRequest(ctx context.Context, requestID string, kinds []store.GrantKind, updater func(store.Grant) (store.Grant, error)) (int, error) {
	return writeResult(ctx, s, "update grants by request", func(ctx context.Context, tx pgx.Tx) (int, error) {
		// Under READ COMMITTED a statement's snapshot predates its lock
		// waits: a grant of the request inserted by a transaction that
		// held one of these rows' locks, and committed while this one
		// waited, is not in the result (a phantom). So select again,
		// with a fresh snapshot, until a round finds no grant the last
		// one had not: the rows of earlier rounds are locked by then and
		// stay, so an equal count is the same set.
		var olds []store.Grant
		for {
			rows, err := tx.Query(ctx, `SELECT `+grantColumns+` FROM grants
				WHERE request_id = $1 AND (cardinality($2::text[]) = 0 OR kind = ANY($2))
				ORDER BY kind, signature FOR UPDATE`, requestID, kindNames(kinds))
			if err != nil {
				return 0, err
			}
			got, err := collect(rows, scanGrant)
			if err != nil {
				return 0, err
			}
			if len(got) == len(olds) {
				break
			}
			olds = got
		}
		for _, old := range olds {
			if err := updateGrant(ctx, tx, old, updater); err != nil {
				return 0, err
			}
		}
		return len(olds), nil
	})
}
