package storetest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyward/keyward/store"
)

// benchParallelism: goroutines per GOMAXPROCS in the parallel benchmarks,
// standing in for concurrent requests.
const benchParallelism = 16

// benchSeeded is how many grants the update and read benchmarks cycle
// through.
const benchSeeded = 1000

// Bench runs the store benchmarks, the same for every backend so that
// their figures compare: CreateGrant, UpdateGrant (each serial and, with
// 16 goroutines per GOMAXPROCS, Parallel), GetGrant (parallel) and
// ApplyRefresh (serial and Parallel: the unit of work of a refresh, one
// GrantUpdate and one GrantCreate in one Apply) and, to compare with it,
// RefreshSeparateWrites (the same two writes as UpdateGrant then
// CreateGrant, two transactions), each a sub-benchmark of b. open must return a new, empty store for one
// sub-benchmark run and register its Close with b.Cleanup. Bench asserts
// nothing about speed; a store error fails the benchmark.
func Bench(b *testing.B, open func(b *testing.B) store.Store) {
	benchmarks := []struct {
		name string
		run  func(b *testing.B, s store.Store)
	}{
		{"CreateGrant", benchCreateGrant},
		{"CreateGrantParallel", benchCreateGrantParallel},
		{"UpdateGrant", benchUpdateGrant},
		{"UpdateGrantParallel", benchUpdateGrantParallel},
		{"GetGrant", benchGetGrant},
		{"ApplyRefresh", benchApplyRefresh},
		{"ApplyRefreshParallel", benchApplyRefreshParallel},
		{"RefreshSeparateWrites", benchRefreshSeparate},
		{"RefreshSeparateWritesParallel", benchRefreshSeparateParallel},
	}
	for _, bm := range benchmarks {
		b.Run(bm.name, func(b *testing.B) {
			bm.run(b, open(b))
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

// seedGrants stores benchSeeded grants and returns an updater that flips
// Active. It stores them from benchParallelism goroutines, so that
// backends which share commits among concurrent writes seed quickly;
// seeding is not timed.
func seedGrants(b *testing.B, s store.Store) func(store.Grant) (store.Grant, error) {
	b.Helper()
	ctx := b.Context()
	var (
		wg   sync.WaitGroup
		next atomic.Int64
	)
	for range benchParallelism {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < benchSeeded; i = next.Add(1) - 1 {
				if err := s.CreateGrant(ctx, benchGrant(i)); err != nil {
					b.Errorf("seed grant %d: %v", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	return func(g store.Grant) (store.Grant, error) {
		g.Active = !g.Active
		g.RotatedAt = time.Now()
		return g, nil
	}
}

// benchParallel times op run from parallelism goroutines per GOMAXPROCS,
// each call with the next number from 1.
func benchParallel(b *testing.B, parallelism int, op func(ctx context.Context, i int64) error) {
	ctx := b.Context()
	var next atomic.Int64
	b.SetParallelism(parallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := op(ctx, next.Add(1)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func benchCreateGrant(b *testing.B, s store.Store) {
	ctx := b.Context()
	var i int64
	for b.Loop() {
		i++
		if err := s.CreateGrant(ctx, benchGrant(i)); err != nil {
			b.Fatal(err)
		}
	}
}

func benchCreateGrantParallel(b *testing.B, s store.Store) {
	benchParallel(b, benchParallelism, func(ctx context.Context, i int64) error {
		return s.CreateGrant(ctx, benchGrant(i))
	})
}

func benchUpdateGrant(b *testing.B, s store.Store) {
	update := seedGrants(b, s)
	ctx := b.Context()
	var i int64
	for b.Loop() {
		i++
		if err := s.UpdateGrant(ctx, store.GrantRefreshToken, benchGrant(i%benchSeeded).Signature, update); err != nil {
			b.Fatal(err)
		}
	}
}

func benchUpdateGrantParallel(b *testing.B, s store.Store) {
	update := seedGrants(b, s)
	benchParallel(b, benchParallelism, func(ctx context.Context, i int64) error {
		return s.UpdateGrant(ctx, store.GrantRefreshToken, benchGrant(i%benchSeeded).Signature, update)
	})
}

// benchGetGrant reads with GOMAXPROCS goroutines (RunParallel's default).
func benchGetGrant(b *testing.B, s store.Store) {
	seedGrants(b, s)
	benchParallel(b, 1, func(ctx context.Context, i int64) error {
		_, err := s.GetGrant(ctx, store.GrantRefreshToken, benchGrant(i%benchSeeded).Signature)
		return err
	})
}

// refreshBatch is the unit of work of a refresh: rotate seeded grant
// i % benchSeeded and store a new one, numbered past the seeded ones.
func refreshBatch(i int64, update func(store.Grant) (store.Grant, error)) store.Batch {
	return store.Batch{
		GrantUpdates: []store.GrantUpdate{{Kind: store.GrantRefreshToken, Signature: benchGrant(i % benchSeeded).Signature, Update: update}},
		GrantCreates: []store.Grant{benchGrant(benchSeeded + i)},
	}
}

func benchApplyRefresh(b *testing.B, s store.Store) {
	update := seedGrants(b, s)
	ctx := b.Context()
	var i int64
	for b.Loop() {
		i++
		if _, err := s.Apply(ctx, refreshBatch(i, update)); err != nil {
			b.Fatal(err)
		}
	}
}

func benchApplyRefreshParallel(b *testing.B, s store.Store) {
	update := seedGrants(b, s)
	benchParallel(b, benchParallelism, func(ctx context.Context, i int64) error {
		_, err := s.Apply(ctx, refreshBatch(i, update))
		return err
	})
}

// refreshSeparately makes the writes of refreshBatch one transaction each.
func refreshSeparately(ctx context.Context, s store.Store, i int64, update func(store.Grant) (store.Grant, error)) error {
	if err := s.UpdateGrant(ctx, store.GrantRefreshToken, benchGrant(i%benchSeeded).Signature, update); err != nil {
		return err
	}
	return s.CreateGrant(ctx, benchGrant(benchSeeded+i))
}

func benchRefreshSeparate(b *testing.B, s store.Store) {
	update := seedGrants(b, s)
	ctx := b.Context()
	var i int64
	for b.Loop() {
		i++
		if err := refreshSeparately(ctx, s, i, update); err != nil {
			b.Fatal(err)
		}
	}
}

func benchRefreshSeparateParallel(b *testing.B, s store.Store) {
	update := seedGrants(b, s)
	benchParallel(b, benchParallelism, func(ctx context.Context, i int64) error {
		return refreshSeparately(ctx, s, i, update)
	})
}
