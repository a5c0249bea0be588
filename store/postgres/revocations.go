package postgres

import (
	"context"
	"errors"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/keyward/keyward/store"
)

// Feed entries and audit events take their Seq from a row of seq_counters,
// incremented in the appending transaction. The row lock makes appenders
// wait for each other (READ COMMITTED re-reads the row once the lock is
// granted), so Seqs are assigned without gaps and become visible in order;
// a rolled-back append gives its Seq back. Collecting entries never lowers
// the counter, so a Seq is never reused.

const (
	appendRevocationSQL = `WITH c AS (
			UPDATE seq_counters SET seq = seq + 1 WHERE name = 'revocations' RETURNING seq
		)
		INSERT INTO revocations (seq, kind, subject, session_id, not_before, expires_at, created_at, token_id)
		SELECT c.seq, $1, $2, $3, $4, $5, $6, $7 FROM c
		RETURNING seq`
	appendAuditSQL = `WITH c AS (
			UPDATE seq_counters SET seq = seq + 1 WHERE name = 'audit_events' RETURNING seq
		)
		INSERT INTO audit_events (seq, at, actor, action, target, reason, subject)
		SELECT c.seq, $1, $2, $3, $4, $5, $6 FROM c
		RETURNING seq`
)

func normRevocation(r store.Revocation) store.Revocation {
	r.NotBefore = utc(r.NotBefore)
	r.ExpiresAt = utc(r.ExpiresAt)
	r.CreatedAt = utc(r.CreatedAt)
	return r
}

func normAudit(e store.AuditEvent) store.AuditEvent {
	e.At = utc(e.At)
	return e
}

func appendRevocation(ctx context.Context, q querier, r store.Revocation) (store.Revocation, error) {
	r = normRevocation(r)
	err := q.QueryRow(ctx, appendRevocationSQL, revocationArgs(r)...).Scan(&r.Seq)
	return r, err
}

// revocationArgs are the parameters of appendRevocationSQL for r.
func revocationArgs(r store.Revocation) []any {
	return []any{string(r.Kind), r.Subject, r.SessionID, ts(r.NotBefore), ts(r.ExpiresAt), ts(r.CreatedAt), r.TokenID}
}

func appendAudit(ctx context.Context, q querier, e store.AuditEvent) (store.AuditEvent, error) {
	e = normAudit(e)
	err := q.QueryRow(ctx, appendAuditSQL, ts(e.At), e.Actor, e.Action, e.Target, e.Reason, e.Subject).Scan(&e.Seq)
	return e, err
}

// Deprovision takes a subject's access away in one transaction: the subject
// (created with ID, CreatedAt = d.At when unknown; otherwise every other
// field kept) gets Disabled, NotBefore = UpdatedAt = d.At; its sessions and
// grants are deleted; the feed entry {RevokeSubject, Subject, NotBefore:
// d.At, ExpiresAt: d.FeedExpiresAt, CreatedAt: d.At} and d.Audit are
// appended under the next Seqs. d.Subject must be non-empty and d.At
// non-zero. The statements go to the server as one batch (one round trip).
func (s *Store) Deprovision(ctx context.Context, d store.Deprovisioning) (store.DeprovisionResult, error) {
	const op = "deprovision"
	at := utc(d.At)
	if err := checkKey("subject", d.Subject, true); err != nil {
		return store.DeprovisionResult{}, invalid(op, err)
	}
	if at.IsZero() {
		return store.DeprovisionResult{}, invalid(op, errors.New("at is zero"))
	}
	entry := normRevocation(store.Revocation{
		Kind:      store.RevokeSubject,
		Subject:   d.Subject,
		NotBefore: at,
		ExpiresAt: d.FeedExpiresAt,
		CreatedAt: at,
	})
	event := normAudit(d.Audit)
	var res store.DeprovisionResult
	err := s.write(ctx, op, func(ctx context.Context, tx pgx.Tx) error {
		res = store.DeprovisionResult{Revocation: entry}
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO subjects (`+subjectColumns+`)
			VALUES ($1, '', '', '', '', true, $2, $2, $2, NULL, $2, $3, $4)
			ON CONFLICT (id) DO UPDATE SET disabled = true, not_before = $2, updated_at = $2,
				disabled_at = $2, disabled_by = $3, disabled_reason = $4`,
			d.Subject, ts(at), event.Actor, event.Reason)
		b.Queue(`DELETE FROM sessions WHERE subject = $1`, d.Subject).Exec(func(tag pgconn.CommandTag) error {
			res.Sessions = int(tag.RowsAffected())
			return nil
		})
		b.Queue(deleteSubjectGrantsSQL, d.Subject).Query(func(rows pgx.Rows) error {
			var err error
			res.Grants, res.SessionClients, err = sessionClientsOf(rows)
			return err
		})
		b.Queue(appendRevocationSQL, revocationArgs(entry)...).QueryRow(func(row pgx.Row) error {
			return row.Scan(&res.Revocation.Seq)
		})
		b.Queue(appendAuditSQL, ts(event.At), event.Actor, event.Action, event.Target, event.Reason, event.Subject)
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return store.DeprovisionResult{}, err
	}
	return res, nil
}

// AppendRevocation stores r under the next Seq (its own Seq is ignored) and
// returns it as stored.
func (s *Store) AppendRevocation(ctx context.Context, r store.Revocation) (store.Revocation, error) {
	return result(ctx, s, "append revocation", modeStatement, func(ctx context.Context, q querier) (store.Revocation, error) {
		return appendRevocation(ctx, q, r)
	})
}

func scanRevocation(row pgx.Row) (store.Revocation, error) {
	var r store.Revocation
	err := row.Scan(&r.Seq, &r.Kind, &r.Subject, &r.SessionID, scanTime(&r.NotBefore), scanTime(&r.ExpiresAt),
		scanTime(&r.CreatedAt), &r.TokenID)
	return r, err
}

// ListRevocations returns the entries with Seq > after, ascending, at most
// limit of them (every one when limit <= 0), and the highest Seq ever
// assigned. It reads the counter first and lists entries up to it only:
// every entry up to the counter is committed by then (appends commit in
// Seq order), so the list has no holes but collected ones.
func (s *Store) ListRevocations(ctx context.Context, after int64, limit int) ([]store.Revocation, int64, error) {
	var (
		list    []store.Revocation
		highest int64
	)
	err := s.read(ctx, "list revocations", func(ctx context.Context, q querier) error {
		list = nil
		if err := q.QueryRow(ctx, `SELECT seq FROM seq_counters WHERE name = 'revocations'`).Scan(&highest); err != nil {
			return err
		}
		if after >= highest {
			return nil
		}
		rows, err := q.Query(ctx, `SELECT seq, kind, subject, session_id, not_before, expires_at, created_at, token_id
			FROM revocations WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3`, after, highest, limitParam(limit))
		if err != nil {
			return err
		}
		list, err = collect(rows, scanRevocation)
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	return list, highest, nil
}

// AppendAudit stores e under the next audit Seq (its own Seq is ignored) and
// returns it as stored.
func (s *Store) AppendAudit(ctx context.Context, e store.AuditEvent) (store.AuditEvent, error) {
	return result(ctx, s, "append audit event", modeStatement, func(ctx context.Context, q querier) (store.AuditEvent, error) {
		return appendAudit(ctx, q, e)
	})
}

// ListAudit returns the newest limit events (every event when limit <= 0),
// oldest first. Audit events are never collected.
func (s *Store) ListAudit(ctx context.Context, limit int) ([]store.AuditEvent, error) {
	list, err := getAll(ctx, s, "list audit events", scanAudit, `SELECT seq, at, actor, action, target, reason, subject
		FROM audit_events ORDER BY seq DESC LIMIT $1`, limitParam(limit))
	if err != nil {
		return nil, err
	}
	slices.Reverse(list)
	return list, nil
}

func scanAudit(row pgx.Row) (store.AuditEvent, error) {
	var e store.AuditEvent
	err := row.Scan(&e.Seq, scanTime(&e.At), &e.Actor, &e.Action, &e.Target, &e.Reason, &e.Subject)
	return e, err
}

// limitParam is the parameter of a LIMIT: NULL (no limit) when limit <= 0.
func limitParam(limit int) *int {
	if limit <= 0 {
		return nil
	}
	return &limit
}
