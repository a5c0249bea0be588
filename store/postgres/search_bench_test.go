package postgres_test

import (
	"context"
	"testing"

	"github.com/keyward/keyward/store/postgres"
	"github.com/keyward/keyward/store/storetest"
)

// BenchmarkSearch runs storetest.BenchSearch over 100,000 people, on the
// server benchServer picks (see BenchmarkStore):
//
//	go test -run '^$' -bench Search -benchtime 200x ./store/postgres/
func BenchmarkSearch(b *testing.B) {
	dsn := benchServer(b)(b)
	s, err := postgres.Open(context.Background(), postgres.Options{DSN: dsn, Migrate: true})
	if err != nil {
		b.Fatalf("Open() = %v", err)
	}
	b.Cleanup(func() { _ = s.Close() })
	storetest.SeedSubjects(b, s, 100_000)
	if err := tryExec(dsn, "ANALYZE subjects, audit_events"); err != nil {
		b.Fatalf("ANALYZE: %v", err)
	}
	storetest.BenchSearch(b, s, 100_000)
}
