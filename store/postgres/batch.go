package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/keyward/keyward/store"
)

// batchArgs are the parameters of a Batch's inserts, validated before the
// transaction starts.
type batchArgs struct {
	sessions    [][]any
	grants      [][]any
	revocations [][]any
}

func prepareBatch(b store.Batch) (batchArgs, error) {
	var a batchArgs
	for i, u := range b.SubjectUpserts {
		if err := checkKey("id", u.ID, true); err != nil {
			return batchArgs{}, fmt.Errorf("subject upsert %d: %w", i, err)
		}
	}
	for i, sess := range b.SessionCreates {
		args, err := sessionArgs(sess)
		if err != nil {
			return batchArgs{}, fmt.Errorf("session create %d: %w", i, err)
		}
		a.sessions = append(a.sessions, args)
	}
	for i, g := range b.GrantCreates {
		args, err := grantArgs(g)
		if err != nil {
			return batchArgs{}, fmt.Errorf("grant create %d: %w", i, err)
		}
		a.grants = append(a.grants, args)
	}
	for _, r := range b.Revocations {
		a.revocations = append(a.revocations, revocationArgs(normRevocation(r)))
	}
	return a, nil
}

// pipeline queues the statements of a transaction whose results nothing
// waits for, and sends them, in order, with the next statement whose
// result is needed: writes cost no round trip of their own.
type pipeline struct {
	tx      pgx.Tx
	pending *pgx.Batch
}

func (p *pipeline) queue(sql string, args ...any) *pgx.QueuedQuery {
	return p.pending.Queue(sql, args...)
}

// flush sends what is queued and returns the first error of its
// statements (or of their callbacks).
func (p *pipeline) flush(ctx context.Context) error {
	if p.pending.Len() == 0 {
		return nil
	}
	b := p.pending
	p.pending = &pgx.Batch{}
	return p.tx.SendBatch(ctx, b).Close()
}

// Apply stores b in one READ COMMITTED transaction, in the order
// store.Batch documents. Each GrantUpdate locks its row (SELECT … FOR
// UPDATE) and runs its updater on what is committed once the lock is
// granted, so of two batches with the same precondition the second sees
// the first's result. Writes are pipelined: each SELECT carries the writes
// queued before it, each SubjectUpsert (which locks its row as
// UpsertSubject does) sends them first, and the rest goes in one last
// round trip; a refresh (one update, one create) is BEGIN, SELECT, the
// writes, COMMIT. Any failure rolls the whole transaction back. Like every
// write, it runs again after a serialization failure or deadlock (updaters
// are pure).
func (s *Store) Apply(ctx context.Context, b store.Batch) (store.BatchResult, error) {
	const op = "apply"
	if err := ctx.Err(); err != nil {
		return store.BatchResult{}, fmt.Errorf("postgres: %s: %w", op, err)
	}
	if b.IsEmpty() {
		return store.BatchResult{}, nil
	}
	args, err := prepareBatch(b)
	if err != nil {
		return store.BatchResult{}, invalid(op, err)
	}
	return writeResult(ctx, s, op, func(ctx context.Context, tx pgx.Tx) (store.BatchResult, error) {
		var res store.BatchResult
		p := &pipeline{tx: tx, pending: &pgx.Batch{}}
		for i, u := range b.GrantUpdates {
			var old store.Grant
			p.queue(selectGrantForUpdate, string(u.Kind), u.Signature).QueryRow(func(row pgx.Row) error {
				var err error
				old, err = scanGrant(row)
				return err
			})
			if err := p.flush(ctx); err != nil {
				return store.BatchResult{}, fmt.Errorf("grant update %d: %w", i, err)
			}
			gargs, err := updatedGrantArgs(old, u.Update)
			if err != nil {
				return store.BatchResult{}, fmt.Errorf("grant update %d: %w", i, err)
			}
			p.queue(updateGrantSQL, gargs...)
		}
		for i, id := range b.LoginAttemptDeletes {
			p.queue(`DELETE FROM login_attempts WHERE id = $1`, id).Exec(func(tag pgconn.CommandTag) error {
				if tag.RowsAffected() == 0 {
					return fmt.Errorf("login attempt delete %d: %w", i, pgx.ErrNoRows)
				}
				return nil
			})
		}
		for _, k := range b.GrantDeletes {
			p.queue(`DELETE FROM grants WHERE kind = $1 AND signature = $2`, string(k.Kind), k.Signature)
		}
		for i, u := range b.SubjectUpserts {
			if err := p.flush(ctx); err != nil {
				return store.BatchResult{}, err
			}
			sub, err := upsertSubject(ctx, tx, u.ID, u.Create, u.Update)
			if err != nil {
				return store.BatchResult{}, fmt.Errorf("subject upsert %d: %w", i, err)
			}
			res.Subjects = append(res.Subjects, sub)
		}
		for _, a := range args.sessions {
			p.queue(insertSession, a...)
		}
		for _, a := range args.grants {
			p.queue(insertGrant, a...)
		}
		for i, a := range args.revocations {
			r := normRevocation(b.Revocations[i])
			p.queue(appendRevocationSQL, a...).QueryRow(func(row pgx.Row) error {
				if err := row.Scan(&r.Seq); err != nil {
					return err
				}
				res.Revocations = append(res.Revocations, r)
				return nil
			})
		}
		if err := p.flush(ctx); err != nil {
			return store.BatchResult{}, err
		}
		return res, nil
	})
}
