package store

import "context"

// Batch is one unit of work: writes to several records applied in ONE
// transaction (one fsync with bbolt, one COMMIT with PostgreSQL), all or
// nothing. The broker gathers a token request's writes (and a sign-in
// callback's) into one Batch instead of a transaction per record.
//
// Apply runs the parts in this order inside the transaction, so a later
// part sees the earlier parts' effects:
//
//  1. GrantUpdates: each updater runs on the stored grant. A missing grant
//     aborts the batch with ErrNotFound. An updater's error aborts the
//     batch and is returned unchanged: this is how preconditions are
//     written ("this refresh token is still the family's current one",
//     "this code is unused"), checked at commit, not when read.
//  2. LoginAttemptDeletes: a missing attempt aborts with ErrNotFound (a
//     callback replayed concurrently loses).
//  3. GrantDeletes: missing grants are ignored.
//  4. SubjectUpserts: as Store.UpsertSubject; an updater's error aborts.
//  5. SessionCreates, then GrantCreates: an existing key aborts with
//     ErrConflict.
//  6. Revocations: appended to the feed in order, Seq assigned as
//     AppendRevocation does.
//
// Updaters follow the Store contract: pure, may run more than once, never
// call the store. An empty Batch writes nothing and returns a zero result
// without opening a write transaction. Errors that abort the batch come back
// wrapped so that errors.Is finds ErrNotFound, ErrConflict, ErrUnavailable or
// the updater's own error.
type Batch struct {
	GrantUpdates        []GrantUpdate
	LoginAttemptDeletes []string
	GrantDeletes        []GrantKey
	SubjectUpserts      []SubjectUpsert
	SessionCreates      []Session
	GrantCreates        []Grant
	Revocations         []Revocation
}

// IsEmpty reports whether the batch writes nothing.
func (b *Batch) IsEmpty() bool {
	return len(b.GrantUpdates) == 0 && len(b.LoginAttemptDeletes) == 0 && len(b.GrantDeletes) == 0 &&
		len(b.SubjectUpserts) == 0 && len(b.SessionCreates) == 0 && len(b.GrantCreates) == 0 && len(b.Revocations) == 0
}

// GrantKey names one grant.
type GrantKey struct {
	Kind      GrantKind
	Signature string
}

// GrantUpdate is a read-modify-write of one grant inside a Batch.
type GrantUpdate struct {
	Kind      GrantKind
	Signature string
	Update    func(Grant) (Grant, error)
}

// SubjectUpsert is Store.UpsertSubject inside a Batch.
type SubjectUpsert struct {
	ID     string
	Create func() Subject
	Update func(Subject) (Subject, error)
}

// BatchResult is what Apply stored.
type BatchResult struct {
	// Subjects are the stored results of SubjectUpserts, in order.
	Subjects []Subject
	// Revocations are the appended feed entries with their Seq, in order.
	Revocations []Revocation
}

// Batcher is implemented by every backend (it is part of Store).
type Batcher interface {
	// Apply stores b atomically; see Batch.
	Apply(ctx context.Context, b Batch) (BatchResult, error)
}
