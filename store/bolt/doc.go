// Package bolt is Keyward's embedded default store: an implementation of
// store.Store on a single bbolt file.
//
// It owns the file layout: one bucket per record type (login attempts,
// sessions, subjects, grants, the key set, revocation-feed entries and audit
// events, the last two keyed by their big-endian Seq), index buckets (login
// attempts by State; grants by RequestID, Subject and SessionID; sessions by
// Subject) kept consistent inside the same transaction as the record, and a
// meta bucket holding the layout version and the highest Seq assigned to
// feed entries and to audit events. Records are stored as JSON.
//
// Concurrent writes share one transaction and one fsync (group commit, see
// Options.BatchDelay); updaters may therefore run more than once, as the
// store contract allows. Apply gives a whole store.Batch to the committer
// as one write, so a token request costs one share of one fsync: a batch
// that fails before writing anything is refused without disturbing the
// others in its transaction; one that fails after writing aborts that
// transaction, and the committer re-runs the others without it. Reads use
// DB.View and never block writers.
//
// bbolt allows one process per file: a second Open of the same path waits
// Options.Timeout for the file lock, then fails. Only cmd imports this
// package; everything else depends on the store.Store contract or on smaller
// interfaces. It imports only the standard library, store, config (Options
// is keyward.yaml's store section for type bolt) and bbolt.
package bolt
