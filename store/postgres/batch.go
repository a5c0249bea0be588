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

// Apply stores b in one READ COMMITTED transaction, in the order
// store.Batch documents: each GrantUpdate locks its row (SELECT … FOR
// UPDATE) and runs its updater on what is committed once the lock is
// granted, so of two batches with the same precondition the second sees
// the first's result; the deletes go to the server as one batch of
// statements, each SubjectUpsert locks its row as UpsertSubject does, and
// the creates and feed entries go as a last batch. Any failure rolls the
// whole transaction back. Like every write, it runs again after a
// serialization failure or deadlock (updaters are pure).
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
		for i, u := range b.GrantUpdates {
			old, err := scanGrant(tx.QueryRow(ctx, `SELECT `+grantColumns+` FROM grants
				WHERE kind = $1 AND signature = $2 FOR UPDATE`, string(u.Kind), u.Signature))
			if err == nil {
				err = updateGrant(ctx, tx, old, u.Update)
			}
			if err != nil {
				return store.BatchResult{}, fmt.Errorf("grant update %d: %w", i, err)
			}
		}

		deletes := &pgx.Batch{}
		for i, id := range b.LoginAttemptDeletes {
			deletes.Queue(`DELETE FROM login_attempts WHERE id = $1`, id).Exec(func(tag pgconn.CommandTag) error {
				if tag.RowsAffected() == 0 {
					return fmt.Errorf("login attempt delete %d: %w", i, pgx.ErrNoRows)
				}
				return nil
			})
		}
		for _, k := range b.GrantDeletes {
			deletes.Queue(`DELETE FROM grants WHERE kind = $1 AND signature = $2`, string(k.Kind), k.Signature)
		}
		if err := sendBatch(ctx, tx, deletes); err != nil {
			return store.BatchResult{}, err
		}

		for i, u := range b.SubjectUpserts {
			sub, err := upsertSubject(ctx, tx, u.ID, u.Create, u.Update)
			if err != nil {
				return store.BatchResult{}, fmt.Errorf("subject upsert %d: %w", i, err)
			}
			res.Subjects = append(res.Subjects, sub)
		}

		creates := &pgx.Batch{}
		for _, a := range args.sessions {
			creates.Queue(insertSession, a...)
		}
		for _, a := range args.grants {
			creates.Queue(insertGrant, a...)
		}
		for i, a := range args.revocations {
			r := normRevocation(b.Revocations[i])
			creates.Queue(appendRevocationSQL, a...).QueryRow(func(row pgx.Row) error {
				if err := row.Scan(&r.Seq); err != nil {
					return err
				}
				res.Revocations = append(res.Revocations, r)
				return nil
			})
		}
		if err := sendBatch(ctx, tx, creates); err != nil {
			return store.BatchResult{}, err
		}
		return res, nil
	})
}

// sendBatch runs the queued statements of b in one round trip; an empty b
// sends nothing.
func sendBatch(ctx context.Context, tx pgx.Tx, b *pgx.Batch) error {
	if b.Len() == 0 {
		return nil
	}
	return tx.SendBatch(ctx, b).Close()
}
