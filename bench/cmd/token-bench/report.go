package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/keyward/keyward/bench/harness"
)

type fileRow struct {
	b                *broker
	size             int64
	rss, peak        int64
	anon, fileBacked int64 // RssAnon, RssFile
}

type reportInfo struct {
	machine      harness.Machine
	load0, load1 string
	started      time.Time
	took         time.Duration
}

func nan() float64 { return math.NaN() }

// median of xs (NaNs ignored; NaN when none is left).
func median(xs []float64) float64 {
	var v []float64
	for _, x := range xs {
		if !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return math.NaN()
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func col(ss []sample, f func(sample) float64) float64 {
	xs := make([]float64, len(ss))
	for i, s := range ss {
		xs[i] = f(s)
	}
	return median(xs)
}

func report(w io.Writer, o options, points []point, samples map[string][]sample, files []fileRow, info reportInfo) {
	m := info.machine
	fmt.Fprintf(w, "### token-bench, %s\n\n", info.started.UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(w, "- command: `%s`\n", o.cmdline)
	fmt.Fprintf(w, "- machine: %d CPUs (GOMAXPROCS %d), %s; Linux %s; %s; bbolt on %s, fsync on\n", m.CPUs, m.GOMAXPROCS, m.CPUModel, m.Kernel, m.GoVersion, m.DirFS)
	fmt.Fprintf(w, "- load: %d interleaved rounds × %s per point after %s warm-up; closed-loop keep-alive Go clients in the bench process; each `keyward serve` and the bare handler are processes of their own\n", o.rounds, o.duration, o.warmup)
	fmt.Fprintf(w, "- load average before / after: %s / %s; run took %s\n\n", info.load0, info.load1, info.took.Round(time.Second))

	bareRate := map[int]float64{}
	for _, p := range points {
		if p.b == nil {
			bareRate[p.c] = col(samples[p.key()], func(s sample) float64 { return s.rate })
		}
	}
	fmt.Fprintln(w, "| server | operation | c | ops/s (median) | ops/s per round | p50 | p99 | server CPU/op ¹ | ÷ bare ops/s | store writes/op ² | commits/op ² | errors |")
	fmt.Fprintln(w, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
	var firstErrs []string
	for _, p := range points {
		ss := samples[p.key()]
		server, op := "bare net/http process", "GET 200 empty"
		if p.b != nil {
			server, op = "keyward serve "+p.b.label(), map[string]string{"exchange": "token exchange", "refresh": "refresh grant"}[p.scenario]
		}
		rate := col(ss, func(s sample) float64 { return s.rate })
		var rounds []string
		errs := 0
		for _, s := range ss {
			rounds = append(rounds, thousands(s.rate))
			errs += s.errors
			if s.firstErr != nil && len(firstErrs) < 5 {
				firstErrs = append(firstErrs, fmt.Sprintf("%s %s c=%d: %v", server, op, p.c, s.firstErr))
			}
		}
		ratio := "—"
		if p.b != nil && bareRate[p.c] > 0 {
			ratio = fmt.Sprintf("%.3f", rate/bareRate[p.c])
		}
		fmt.Fprintf(w, "| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %d |\n",
			server, op, p.c, thousands(rate), strings.Join(rounds, " / "),
			dur(time.Duration(col(ss, func(s sample) float64 { return float64(s.p50) }))),
			dur(time.Duration(col(ss, func(s sample) float64 { return float64(s.p99) }))),
			dur(time.Duration(col(ss, func(s sample) float64 { return float64(s.cpuPerOp) }))),
			ratio, perOp(p, col(ss, func(s sample) float64 { return s.writesPerOp })),
			perOp(p, col(ss, func(s sample) float64 { return s.commitsOp })), errs)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "¹ the serving process's utime+stime from /proc/PID/stat (10 ms ticks) over the window ÷ operations; the load generator and the fake identity providers are not included.")
	fmt.Fprintln(w, "² from the process's /metrics before and after the window (keyward_store_write_transactions_total: store write calls, each one unit of work; keyward_store_commits_total: bbolt transactions committed, shared by concurrent writes under group commit, garbage collection included) ÷ operations; — when the binary exports neither.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| server | bbolt file after the run | RSS at the end (anonymous + file-backed) | peak RSS |")
	fmt.Fprintln(w, "|---|--:|--:|--:|")
	for _, f := range files {
		fmt.Fprintf(w, "| keyward serve %s | %s | %s (%s + %s) | %s |\n", f.b.label(), mb(f.size), mb(f.rss), mb(f.anon), mb(f.fileBacked), mb(f.peak))
	}
	if len(firstErrs) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "First errors:")
		for _, e := range firstErrs {
			fmt.Fprintf(w, "- %.300s\n", e)
		}
	}
}

func perOp(p point, x float64) string {
	if p.b == nil {
		return "—"
	}
	if math.IsNaN(x) {
		return "—"
	}
	return fmt.Sprintf("%.2f", x)
}

func dur(d time.Duration) string {
	switch {
	case d <= 0:
		return "—"
	case d < time.Millisecond:
		return fmt.Sprintf("%d µs", d.Microseconds())
	case d < 100*time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	}
}

func thousands(f float64) string {
	if math.IsNaN(f) {
		return "—"
	}
	if f < 100 {
		return fmt.Sprintf("%.1f", f)
	}
	s := fmt.Sprintf("%.0f", f)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func mb(b int64) string {
	if b <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f MB", float64(b)/1e6)
}
