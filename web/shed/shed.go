package shed

import (
	"runtime"
	"sync/atomic"
)

// Limiter admits at most Capacity units of work at once and refuses the
// rest without waiting. A nil *Limiter admits everything. It is safe for
// concurrent use.
type Limiter struct {
	slots   chan struct{}
	refused atomic.Uint64
}

// New returns a Limiter with n slots; n ≤ 0 returns nil (no limit).
func New(n int) *Limiter {
	if n <= 0 {
		return nil
	}
	return &Limiter{slots: make(chan struct{}, n)}
}

// TryAcquire takes a slot and reports true, or reports false at once when
// all are taken (and counts a refusal). Each true must be matched by one
// Release.
func (l *Limiter) TryAcquire() bool {
	if l == nil {
		return true
	}
	select {
	case l.slots <- struct{}{}:
		return true
	default:
		l.refused.Add(1)
		return false
	}
}

// Release returns a slot taken by TryAcquire.
func (l *Limiter) Release() {
	if l == nil {
		return
	}
	<-l.slots
}

// InFlight is how many slots are taken now.
func (l *Limiter) InFlight() int {
	if l == nil {
		return 0
	}
	return len(l.slots)
}

// Capacity is the number of slots (0 for a nil Limiter: unlimited).
func (l *Limiter) Capacity() int {
	if l == nil {
		return 0
	}
	return cap(l.slots)
}

// Refused counts the TryAcquire calls that found no slot.
func (l *Limiter) Refused() uint64 {
	if l == nil {
		return 0
	}
	return l.refused.Load()
}

// PerCPU is perCPU slots per usable CPU (GOMAXPROCS), at least floor: the
// default size of a limit whose work is CPU-bound, so that it grows with
// the machine but a small machine keeps room for bursts.
func PerCPU(perCPU, floor int) int {
	return max(perCPU*runtime.GOMAXPROCS(0), floor)
}
