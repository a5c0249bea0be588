package bolt

import (
	"context"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/keyward/keyward/store"
)

// encodedBatch is a Batch with its new records validated, normalised and
// encoded before the write transaction, so that the transaction only reads,
// runs updaters and writes.
type encodedBatch struct {
	store.Batch
	sessions    [][]byte
	grants      [][]byte
	revocations []store.Revocation
}

func encodeBatch(b store.Batch) (encodedBatch, error) {
	e := encodedBatch{Batch: b}
	e.SessionCreates = make([]store.Session, len(b.SessionCreates))
	for i, sess := range b.SessionCreates {
		sess = normSession(sess)
		if err := checkSession(sess); err != nil {
			return encodedBatch{}, fmt.Errorf("session create %d: %w", i, err)
		}
		v, err := encode(sess)
		if err != nil {
			return encodedBatch{}, fmt.Errorf("session create %d: %w", i, err)
		}
		e.SessionCreates[i] = sess
		e.sessions = append(e.sessions, v)
	}
	e.GrantCreates = make([]store.Grant, len(b.GrantCreates))
	for i, g := range b.GrantCreates {
		g = normGrant(g)
		if err := checkGrant(g); err != nil {
			return encodedBatch{}, fmt.Errorf("grant create %d: %w", i, err)
		}
		v, err := encode(g)
		if err != nil {
			return encodedBatch{}, fmt.Errorf("grant create %d: %w", i, err)
		}
		e.GrantCreates[i] = g
		e.grants = append(e.grants, v)
	}
	for _, r := range b.Revocations {
		e.revocations = append(e.revocations, normRevocation(r))
	}
	return e, nil
}

// Apply stores b in one write transaction, shared with concurrent writes
// through the group committer (so concurrent Applies share one fsync), in
// the order store.Batch documents. A part that fails before the batch has
// written anything is refused without aborting the shared transaction; a
// later failure aborts it, and the committer re-runs the other writes of
// that transaction without this one. Either way nothing of b is stored.
func (s *Store) Apply(ctx context.Context, b store.Batch) (store.BatchResult, error) {
	const op = "apply"
	if err := ctx.Err(); err != nil {
		return store.BatchResult{}, fmt.Errorf("bolt: %s: %w", op, err)
	}
	if b.IsEmpty() {
		return store.BatchResult{}, nil
	}
	e, err := encodeBatch(b)
	if err != nil {
		return store.BatchResult{}, wrapErr(op, err)
	}
	var res store.BatchResult
	err = s.update(ctx, op, func(tx *bolt.Tx) error {
		res = store.BatchResult{} // fn may be re-run
		wrote := false
		err := e.apply(tx, &res, &wrote)
		if err == nil {
			return nil
		}
		if !wrote {
			return refuse(err)
		}
		return err // roll back what the batch wrote
	})
	if err != nil {
		return store.BatchResult{}, err
	}
	return res, nil
}

// apply runs the parts of e in order and sets *wrote once one has written.
// Its errors are never refusals: Apply decides whether they abort the
// transaction.
func (e *encodedBatch) apply(tx *bolt.Tx, res *store.BatchResult, wrote *bool) error {
	for i, u := range e.GrantUpdates {
		if err := updateGrant(tx, grantKey(u.Kind, u.Signature), u.Update, false); err != nil {
			return partErr("grant update", i, err)
		}
		*wrote = true
	}
	for i, id := range e.LoginAttemptDeletes {
		if err := deleteLoginAttemptByID(tx, id); err != nil {
			return partErr("login attempt delete", i, err)
		}
		*wrote = true
	}
	for i, k := range e.GrantDeletes {
		var old store.Grant
		err := get(tx, bucketGrants, grantKey(k.Kind, k.Signature), &old)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err == nil {
			err = deleteGrant(tx, old)
		}
		if err != nil {
			return partErr("grant delete", i, err)
		}
		*wrote = true
	}
	for i, u := range e.SubjectUpserts {
		sub, err := upsertSubject(tx, u.ID, u.Create, u.Update)
		if err != nil {
			return partErr("subject upsert", i, err)
		}
		*wrote = true
		res.Subjects = append(res.Subjects, sub)
	}
	for i, sess := range e.SessionCreates {
		if err := createSession(tx, sess, e.sessions[i]); err != nil {
			return partErr("session create", i, err)
		}
		*wrote = true
	}
	for i, g := range e.GrantCreates {
		if err := createGrant(tx, g, e.grants[i]); err != nil {
			return partErr("grant create", i, err)
		}
		*wrote = true
	}
	for i, r := range e.revocations {
		stored, err := appendRevocation(tx, r)
		if err != nil {
			return partErr("revocation", i, err)
		}
		*wrote = true
		res.Revocations = append(res.Revocations, stored)
	}
	return nil
}

// partErr names the part of the batch that failed (by position: keys such
// as grant signatures stay out of error messages). A refusal is unwrapped
// first, so that the caller decides whether the error aborts.
func partErr(part string, i int, err error) error {
	if r, ok := errors.AsType[refusal](err); ok {
		err = r.err
	}
	return fmt.Errorf("%s %d: %w", part, i, err)
}
