package bolt_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/keyward/keyward/store/bolt"
	"github.com/keyward/keyward/store/storetest"
)

// BenchmarkSearch runs storetest.BenchSearch over 100,000 people:
//
//	go test -run '^$' -bench Search -benchtime 200x ./store/bolt/
func BenchmarkSearch(b *testing.B) {
	s, err := bolt.Open(context.Background(), bolt.Options{Path: filepath.Join(b.TempDir(), "keyward.db"), NoSync: true})
	if err != nil {
		b.Fatalf("Open() = %v", err)
	}
	b.Cleanup(func() { _ = s.Close() })
	storetest.SeedSubjects(b, s, 100_000)
	storetest.BenchSearch(b, s, 100_000)
}
