package bolt_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/keyward/keyward/store"
	"github.com/keyward/keyward/store/bolt"
	"github.com/keyward/keyward/store/storetest"
)

// BenchmarkStore runs storetest.Bench once per write configuration, for
// example:
//
//	go test -run '^$' -bench . -benchtime 2s ./store/bolt/
//	go test -run '^$' -bench 'Store/group/UpdateGrant' ./store/bolt/
//
// Every benchmark fsyncs (NoSync is off): the figures are what production
// sees on the disk under t.TempDir().
func BenchmarkStore(b *testing.B) {
	configs := []struct {
		name string
		opts bolt.Options
	}{
		{"group", bolt.Options{}},
		{"batch=1ms", bolt.Options{BatchDelay: time.Millisecond}},
		{"unbatched", bolt.Options{BatchDelay: -1}},
	}
	for _, c := range configs {
		b.Run(c.name, func(b *testing.B) {
			storetest.Bench(b, func(b *testing.B) store.Store {
				opts := c.opts
				opts.Path = filepath.Join(b.TempDir(), "keyward.db")
				s, err := bolt.Open(context.Background(), opts)
				if err != nil {
					b.Fatalf("Open() = %v", err)
				}
				b.Cleanup(func() { _ = s.Close() })
				return s
			})
		})
	}
}
