package postgres_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyward/keyward/store"
	"github.com/keyward/keyward/store/postgres"
	"github.com/keyward/keyward/store/postgres/pgtest"
)

// The benchmarks mirror store/bolt's (same names, records and
// parallelism), so that the two backends can be compared:
//
//	go test -run '^$' -bench . -benchtime 2s ./store/postgres/ ./store/bolt/
//
// They run on the server at KEYWARD_TEST_POSTGRES_DSN when it is set, else
// on a cluster of their own with durable commits (fsync, full page writes,
// synchronous commit), in a temporary folder on the same disk as bolt's
// t.TempDir(): every commit waits for its WAL flush, as bolt's fsync does.

// benchConfigs are the commit configurations compared by each benchmark.
var benchConfigs = []struct {
	name   string
	params string // run-time parameters added to the DSN
}{
	{"sync_commit", ""},
	// Commits return before their WAL is flushed (a crash may lose the
	// last few hundred ms of commits, never corrupt the database).
	{"async_commit", "synchronous_commit=off"},
}

// benchParallelism: goroutines per GOMAXPROCS in the parallel benchmarks,
// standing in for concurrent requests.
const benchParallelism = 16

// benchServer returns the admin DSN of the server the benchmarks use.
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

// benchStores runs bench once per configuration, each on a fresh store.
func benchStores(b *testing.B, bench func(b *testing.B, s *postgres.Store)) {
	newDatabase := benchServer(b)
	for _, c := range benchConfigs {
		b.Run(c.name, func(b *testing.B) {
			dsn := withParams(newDatabase(b), c.params)
			s, err := postgres.Open(context.Background(), postgres.Options{DSN: dsn, Migrate: true})
			if err != nil {
				b.Fatalf("Open() = %v", err)
			}
			b.Cleanup(func() { _ = s.Close() })
			bench(b, s)
		})
	}
}

// benchGrant is a refresh token with about 1 KiB of serialized request, the
// size of a fosite request with an ID token session.
func benchGrant(i int64) store.Grant {
	now := time.Now()
	data := make([]byte, 1024)
	for j := range data {
		data[j] = byte('a' + j%26)
	}
	return store.Grant{
		Kind:        store.GrantRefreshToken,
		Signature:   fmt.Sprintf("signature-%020d", i),
		RequestID:   fmt.Sprintf("request-%020d", i),
		ClientID:    "client-1",
		Subject:     fmt.Sprintf("subject-%d", i%100),
		SessionID:   fmt.Sprintf("session-%d", i%1000),
		Active:      true,
		RequestedAt: now,
		ExpiresAt:   now.Add(time.Hour),
		Data:        data,
	}
}

func BenchmarkCreateGrant(b *testing.B) {
	benchStores(b, func(b *testing.B, s *postgres.Store) {
		ctx := b.Context()
		var i int64
		for b.Loop() {
			i++
			if err := s.CreateGrant(ctx, benchGrant(i)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkCreateGrantParallel(b *testing.B) {
	benchStores(b, func(b *testing.B, s *postgres.Store) {
		ctx := b.Context()
		var next atomic.Int64
		b.SetParallelism(benchParallelism)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := s.CreateGrant(ctx, benchGrant(next.Add(1))); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// seedGrants stores n grants and returns an updater that flips Active.
func seedGrants(b *testing.B, s *postgres.Store, n int64) func(store.Grant) (store.Grant, error) {
	b.Helper()
	for i := range n {
		if err := s.CreateGrant(b.Context(), benchGrant(i)); err != nil {
			b.Fatal(err)
		}
	}
	return func(g store.Grant) (store.Grant, error) {
		g.Active = !g.Active
		g.RotatedAt = time.Now()
		return g, nil
	}
}

func BenchmarkUpdateGrant(b *testing.B) {
	benchStores(b, func(b *testing.B, s *postgres.Store) {
		const n = 1000
		update := seedGrants(b, s, n)
		ctx := b.Context()
		var i int64
		for b.Loop() {
			i++
			if err := s.UpdateGrant(ctx, store.GrantRefreshToken, benchGrant(i%n).Signature, update); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkUpdateGrantParallel(b *testing.B) {
	benchStores(b, func(b *testing.B, s *postgres.Store) {
		const n = 1000
		update := seedGrants(b, s, n)
		ctx := b.Context()
		var next atomic.Int64
		b.SetParallelism(benchParallelism)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				sig := benchGrant(next.Add(1) % n).Signature
				if err := s.UpdateGrant(ctx, store.GrantRefreshToken, sig, update); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

func BenchmarkGetGrant(b *testing.B) {
	benchStores(b, func(b *testing.B, s *postgres.Store) {
		const n = 1000
		seedGrants(b, s, n)
		ctx := b.Context()
		var next atomic.Int64
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.GetGrant(ctx, store.GrantRefreshToken, benchGrant(next.Add(1)%n).Signature); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
