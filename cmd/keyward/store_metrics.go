package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyward/keyward/store"
	"github.com/keyward/keyward/store/bolt"
	"github.com/keyward/keyward/store/postgres"
)

// registerStoreMetrics exports the store's write counters on reg:
//
//   - keyward_store_write_transactions_total{backend}: store write calls,
//     each a unit of work that commits or fails as a whole (what "store
//     writes per operation" counts in docs/performance.md);
//   - keyward_store_commits_total{backend}: transactions committed (bbolt:
//     under group commit several writes share one; garbage collection's are
//     included; PostgreSQL: one WAL flush each on a durable server);
//   - keyward_store_synced_commits_total{backend="bolt"}: bbolt commits
//     flushed with fdatasync (zero when the store runs without fsync).
//
// A store of another type (tests' fakes) exports nothing.
func registerStoreMetrics(reg prometheus.Registerer, st store.Store) {
	var backend string
	var writes, commits, synced func() uint64
	switch s := st.(type) {
	case *bolt.Store:
		backend = "bolt"
		writes = func() uint64 { return s.Stats().Writes }
		commits = func() uint64 { return s.Stats().Commits }
		synced = func() uint64 { return s.Stats().SyncedCommits }
	case *postgres.Store:
		backend = "postgres"
		writes = func() uint64 { return s.Stats().Writes }
		commits = func() uint64 { return s.Stats().Commits }
	default:
		return
	}
	counter := func(name, help string, f func() uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        name,
			Help:        help,
			ConstLabels: prometheus.Labels{"backend": backend},
		}, func() float64 { return float64(f()) })
	}
	reg.MustRegister(
		counter("keyward_store_write_transactions_total",
			"Store write calls: units of work that each commit or fail as a whole.", writes),
		counter("keyward_store_commits_total",
			"Store transactions committed (bbolt: concurrent writes share one under group commit; garbage collection included).", commits),
	)
	if synced != nil {
		reg.MustRegister(counter("keyward_store_synced_commits_total",
			"bbolt commits flushed to disk with fdatasync (0 when fsync is off).", synced))
	}
}
