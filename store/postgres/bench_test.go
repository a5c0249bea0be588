package postgres_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/keyward/keyward/store"
	"github.com/keyward/keyward/store/postgres"
	"github.com/keyward/keyward/store/postgres/pgtest"
	"github.com/keyward/keyward/store/storetest"
)

// BenchmarkStore runs storetest.Bench, as store/bolt does, once per commit
// configuration, so that the two backends can be compared:
//
//	go test -run '^$' -bench . -benchtime 2s ./store/postgres/ ./store/bolt/
//
// It runs on the server at KEYWARD_TEST_POSTGRES_DSN when it is set, else
// on a cluster of its own with durable commits (fsync, full page writes,
// synchronous commit), in a temporary folder on the same disk as bolt's
// t.TempDir(): every commit waits for its WAL flush, as bolt's fsync does.
// Each sub-benchmark run gets a database of its own.
func BenchmarkStore(b *testing.B) {
	configs := []struct {
		name   string
		params string // run-time parameters added to the DSN
	}{
		{"sync_commit", ""},
		// Commits return before their WAL is flushed (a crash may lose the
		// last few hundred ms of commits, never corrupt the database).
		{"async_commit", "synchronous_commit=off"},
	}
	newDatabase := benchServer(b)
	for _, c := range configs {
		b.Run(c.name, func(b *testing.B) {
			storetest.Bench(b, func(b *testing.B) store.Store {
				dsn := withParams(newDatabase(b), c.params)
				s, err := postgres.Open(context.Background(), postgres.Options{DSN: dsn, Migrate: true})
				if err != nil {
					b.Fatalf("Open() = %v", err)
				}
				b.Cleanup(func() { _ = s.Close() })
				return s
			})
		})
	}
}

// benchServer returns a function that creates a database on the server the
// benchmarks use and returns its DSN.
func benchServer(b *testing.B) func(b *testing.B) string {
	b.Helper()
	if os.Getenv(pgtest.EnvDSN) != "" {
		return func(b *testing.B) string { return pgtest.DSN(b) }
	}
	c := pgtest.StartCluster(b, "fsync=on", "full_page_writes=on", "synchronous_commit=on")
	return func(b *testing.B) string { return c.CreateDatabase(b) }
}

// withParams adds run-time parameters (key=value) to a URL or keyword/value
// DSN.
func withParams(dsn, params string) string {
	switch {
	case params == "":
		return dsn
	case !strings.Contains(dsn, "://"):
		return dsn + " " + params
	case strings.Contains(dsn, "?"):
		return dsn + "&" + params
	}
	return dsn + "?" + params
}
