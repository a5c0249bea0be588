package harness

import (
	"context"
	"slices"
	"sync"
	"syscall"
	"time"
)

// Op is one request (or one sign-in) of a worker. measured tells whether it
// started inside the measured window, for ops that record extra detail.
type Op func(ctx context.Context, measured bool) error

// Load describes one closed-loop run: Concurrency workers each call their op
// back to back for Warmup, then for Duration (measured).
type Load struct {
	Concurrency int
	Warmup      time.Duration
	Duration    time.Duration
	// NewOp returns worker i's op; it is called before the run starts.
	NewOp func(i int) Op
	// OnStart and OnStop, when set, run at the edges of the measured window
	// (for a CPU profile).
	OnStart, OnStop func()
	// Counter, when set, is read at both edges of the measured window
	// (e.g. the broker's store writes); Result.Counted is the difference.
	Counter func() int64
}

// Result is what a run measured. Ops that straddle a window edge are not
// counted.
type Result struct {
	Concurrency int
	Ops         int
	Errors      int
	FirstError  error
	Elapsed     time.Duration
	Latencies   []time.Duration // sorted
	// CPU is the whole process's user+system time in the window: the
	// servers and the load generator together.
	CPU time.Duration
	// Counted is Load.Counter's increase over the window.
	Counted int64
}

// Rate is ops per second.
func (r Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Ops) / r.Elapsed.Seconds()
}

// Percentile returns the p-th percentile latency (0 < p ≤ 100).
func (r Result) Percentile(p float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	i := int(float64(len(r.Latencies))*p/100+0.5) - 1
	return r.Latencies[min(max(i, 0), len(r.Latencies)-1)]
}

// CPUPerOp is process CPU time divided by completed ops.
func (r Result) CPUPerOp() time.Duration {
	if r.Ops == 0 {
		return 0
	}
	return r.CPU / time.Duration(r.Ops)
}

type workerResult struct {
	lat    []time.Duration
	first  error
	errsIn int // errors inside the window
}

// Run executes l.
func Run(ctx context.Context, l Load) Result {
	ops := make([]Op, l.Concurrency)
	for i := range ops {
		ops[i] = l.NewOp(i)
	}
	start := time.Now()
	mStart := start.Add(l.Warmup)
	mEnd := mStart.Add(l.Duration)
	results := make([]workerResult, l.Concurrency)
	var wg sync.WaitGroup
	for i := range ops {
		wg.Go(func() {
			res := &results[i]
			for {
				t0 := time.Now()
				if !t0.Before(mEnd) || ctx.Err() != nil {
					return
				}
				in := !t0.Before(mStart)
				err := ops[i](ctx, in)
				t1 := time.Now()
				in = in && !t1.After(mEnd)
				if err != nil {
					if res.first == nil {
						res.first = err
					}
					if in {
						res.errsIn++
					}
					continue
				}
				if in {
					res.lat = append(res.lat, t1.Sub(t0))
				}
			}
		})
	}
	// The window's CPU time and hooks, on their own goroutine's schedule.
	time.Sleep(time.Until(mStart))
	if l.OnStart != nil {
		l.OnStart()
	}
	var n0, n1 int64
	if l.Counter != nil {
		n0 = l.Counter()
	}
	cpu0 := processCPU()
	time.Sleep(time.Until(mEnd))
	cpu1 := processCPU()
	if l.Counter != nil {
		n1 = l.Counter()
	}
	if l.OnStop != nil {
		l.OnStop()
	}
	wg.Wait()

	r := Result{Concurrency: l.Concurrency, Elapsed: l.Duration, CPU: cpu1 - cpu0, Counted: n1 - n0}
	for _, w := range results {
		r.Latencies = append(r.Latencies, w.lat...)
		r.Errors += w.errsIn
		if r.FirstError == nil {
			r.FirstError = w.first
		}
	}
	r.Ops = len(r.Latencies)
	slices.Sort(r.Latencies)
	return r
}

// processCPU is this process's user+system CPU time (getrusage).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
