package shed

import (
	"sync"
	"testing"
)

func TestLimiterRefusesBeyondCapacity(t *testing.T) {
	l := New(2)
	for i := range 2 {
		if !l.TryAcquire() {
			t.Fatalf("TryAcquire %d with free slots = false, want true", i)
		}
	}
	if l.TryAcquire() {
		t.Fatal("TryAcquire with every slot taken = true, want false")
	}
	if got := l.Refused(); got != 1 {
		t.Errorf("Refused() = %d, want 1", got)
	}
	if got := l.InFlight(); got != 2 {
		t.Errorf("InFlight() = %d, want 2", got)
	}
	l.Release()
	if !l.TryAcquire() {
		t.Error("TryAcquire after a Release = false, want true")
	}
}

func TestNilLimiterAdmitsEverything(t *testing.T) {
	l := New(0)
	if l != nil {
		t.Fatalf("New(0) = %v, want nil", l)
	}
	for range 100 {
		if !l.TryAcquire() {
			t.Fatal("nil TryAcquire = false, want true")
		}
		l.Release()
	}
	if l.Capacity() != 0 || l.InFlight() != 0 || l.Refused() != 0 {
		t.Error("nil Limiter reports slots")
	}
}

func TestLimiterConcurrentNeverExceedsCapacity(t *testing.T) {
	const n = 4
	l := New(n)
	var mu sync.Mutex
	inside, peak := 0, 0
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				if !l.TryAcquire() {
					continue
				}
				mu.Lock()
				inside++
				peak = max(peak, inside)
				mu.Unlock()
				mu.Lock()
				inside--
				mu.Unlock()
				l.Release()
			}
		}()
	}
	wg.Wait()
	if peak > n {
		t.Errorf("peak concurrency = %d, want ≤ %d", peak, n)
	}
	if l.InFlight() != 0 {
		t.Errorf("InFlight() after all released = %d, want 0", l.InFlight())
	}
}

func TestPerCPUFloor(t *testing.T) {
	if got := PerCPU(1, 1<<20); got != 1<<20 {
		t.Errorf("PerCPU(1, 1<<20) = %d, want the floor", got)
	}
}
