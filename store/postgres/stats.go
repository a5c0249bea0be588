package postgres

import "sync/atomic"

// WriteStats counts what this store (this process's pool) asked of
// PostgreSQL since Open.
type WriteStats struct {
	// Writes is the number of store write calls: each is one transaction
	// (or one autocommitted statement) that commits or fails as a whole,
	// however many times it is retried.
	Writes uint64
	// Commits is the number of transactions and autocommitted writing
	// statements that committed; each is one WAL flush on a durable
	// server. Reads are not counted.
	Commits uint64
}

// Stats returns the store's write counters. cmd/keyward exports them as
// Prometheus counters; the benchmark reads them to count writes per
// operation.
func (s *Store) Stats() WriteStats {
	return WriteStats{Writes: s.stats.writes.Load(), Commits: s.stats.commits.Load()}
}

type writeStats struct {
	writes, commits atomic.Uint64
}
