package bolt_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyward/keyward/store"
	"github.com/keyward/keyward/store/bolt"
)

// Run with, for example:
//
//	go test -run '^$' -bench . -benchtime 2s ./store/bolt/
//
// Every benchmark fsyncs (NoSync is off): the figures are what production
// sees on the disk under t.TempDir().

// benchConfigs are the write configurations compared by each benchmark.
var benchConfigs = []struct {
	name string
	opts bolt.Options
}{
	{"group", bolt.Options{}},
	{"batch=1ms", bolt.Options{BatchDelay: time.Millisecond}},
	{"unbatched", bolt.Options{BatchDelay: -1}},
}

// benchParallelism: goroutines per GOMAXPROCS in the parallel benchmarks,
// standing in for concurrent requests.
const benchParallelism = 16

func benchStore(b *testing.B, opts bolt.Options) *bolt.Store {
	b.Helper()
	opts.Path = filepath.Join(b.TempDir(), "keyward.db")
	s, err := bolt.Open(context.Background(), opts)
	if err != nil {
		b.Fatalf("Open() = %v", err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
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
	for _, c := range benchConfigs {
		b.Run(c.name, func(b *testing.B) {
			s := benchStore(b, c.opts)
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
}

func BenchmarkCreateGrantParallel(b *testing.B) {
	for _, c := range benchConfigs {
		b.Run(c.name, func(b *testing.B) {
			s := benchStore(b, c.opts)
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
}

// seedGrants stores n grants and returns an updater that flips Active.
func seedGrants(b *testing.B, s *bolt.Store, n int64) func(store.Grant) (store.Grant, error) {
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
	for _, c := range benchConfigs {
		b.Run(c.name, func(b *testing.B) {
			s := benchStore(b, c.opts)
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
}

func BenchmarkUpdateGrantParallel(b *testing.B) {
	for _, c := range benchConfigs {
		b.Run(c.name, func(b *testing.B) {
			s := benchStore(b, c.opts)
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
}

func BenchmarkGetGrant(b *testing.B) {
	s := benchStore(b, bolt.Options{})
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
}
