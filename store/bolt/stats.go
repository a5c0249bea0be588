package bolt

import (
	"context"
	"fmt"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
)

// WriteStats counts what the store asked of bbolt since Open.
type WriteStats struct {
	// Writes is the number of store write calls: each is one unit of work
	// that commits or fails as a whole. Under group commit several share a
	// transaction. Garbage collection's transactions are not writes.
	Writes uint64
	// Commits is the number of bbolt write transactions committed,
	// garbage collection's included.
	Commits uint64
	// SyncedCommits is the number of those commits flushed to disk (each
	// commit fdatasyncs the file twice: the pages, then the meta page); it
	// equals Commits unless the store was opened with NoSync.
	SyncedCommits uint64
}

// Stats returns the store's write counters. cmd/keyward exports them as
// Prometheus counters; the benchmark reads them to count writes per
// operation.
func (s *Store) Stats() WriteStats {
	c := s.stats.commits.Load()
	st := WriteStats{Writes: s.stats.writes.Load(), Commits: c}
	if s.stats.synced {
		st.SyncedCommits = c
	}
	return st
}

// writeStats holds the counters behind Stats.
type writeStats struct {
	synced  bool // opened without NoSync
	writes  atomic.Uint64
	commits atomic.Uint64

	// cur is the last write transaction seen by track. It is read and
	// written only inside write transactions, which bbolt runs one at a
	// time under its writer lock.
	cur *bolt.Tx
}

// counted wraps a write path (the committer, DB.Batch or DB.Update) so that
// each call counts as a store write and each transaction it commits counts
// once, however many calls share it.
func (w *writeStats) counted(write func(func(*bolt.Tx) error) error) func(func(*bolt.Tx) error) error {
	return func(fn func(*bolt.Tx) error) error {
		w.writes.Add(1)
		return write(w.track(fn))
	}
}

// track makes the first function run in a transaction register a commit
// handler on it: bbolt runs the handler once, after the commit succeeded,
// and never for a transaction rolled back (a batch retried without a
// failing function is a new transaction).
func (w *writeStats) track(fn func(*bolt.Tx) error) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		if tx != w.cur {
			w.cur = tx
			tx.OnCommit(func() { w.commits.Add(1) })
		}
		return fn(tx)
	}
}

// SpaceInUse reports the bytes of the file's pages that hold data: the
// file's high-water mark minus the pages on the freelist. bbolt grows the
// file in steps (16 MiB by default) and never shrinks it, so the file's
// size says little about what is stored; this does.
func (s *Store) SpaceInUse(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var size int64
	if err := s.db.View(func(tx *bolt.Tx) error {
		size = tx.Size()
		return nil
	}); err != nil {
		return 0, fmt.Errorf("read size: %w", err)
	}
	st := s.db.Stats()
	free := int64(st.FreePageN+st.PendingPageN) * int64(s.db.Info().PageSize)
	return size - free, nil
}
