package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/keyward/keyward/bench/harness"
)

type reportInfo struct {
	machine                    harness.Machine
	load0, load1               string
	started                    time.Time
	wall                       time.Duration
	rss                        string
	signinConns, signinUpConns int64
	signinC                    int
}

var labels = map[string]string{
	"bare":    "bare net/http, GET 200 empty",
	"keys":    "broker GET /keys",
	"refresh": "broker refresh grant",
	"signin":  "whole sign-in (4 legs)",
}

func report(w io.Writer, o options, rows []row, info reportInfo) {
	m := info.machine
	sync := "fsync on (production)"
	if o.noSync {
		sync = "NoSync (no fsync; not production)"
	}
	fmt.Fprintf(w, "### keyward-bench, %s\n\n", info.started.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "- machine: %d CPUs (GOMAXPROCS %d), %s; Linux %s; %s\n", m.CPUs, m.GOMAXPROCS, m.CPUModel, m.Kernel, m.GoVersion)
	fmt.Fprintf(w, "- store: bbolt on %s, %s; signing: %s; broker log: %s\n", m.DirFS, sync, o.alg, o.log)
	fmt.Fprintf(w, "- load: %s per point after %s warm-up; closed loop, keep-alive Go clients in the same process; loopback, HTTP/1.1, no TLS\n", o.duration, o.warmup)
	fmt.Fprintf(w, "- load average before / after: %s / %s; run took %s; peak RSS (servers + generator): %s\n\n",
		info.load0, info.load1, info.wall.Round(time.Second), info.rss)

	bare := map[int]float64{}
	for _, r := range rows {
		if r.scenario == "bare" {
			bare[r.res.Concurrency] = r.res.Rate()
		}
	}
	fmt.Fprintln(w, "| scenario | c | ops | ops/s | p50 | p99 | CPU/op ¹ | ops/s ÷ bare | store writes/op ² | errors |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		ratio := "—"
		if b, ok := bare[r.res.Concurrency]; ok && b > 0 && r.scenario != "bare" {
			ratio = ratioString(r.res.Rate() / b)
		}
		writes := "—"
		if r.res.Ops > 0 && r.scenario != "bare" {
			writes = fmt.Sprintf("%.1f", float64(r.res.Counted)/float64(r.res.Ops))
		}
		fmt.Fprintf(w, "| %s | %d | %d | %s | %s | %s | %s | %s | %s | %d |\n", labels[r.scenario], r.res.Concurrency, r.res.Ops,
			thousands(r.res.Rate()), dur(r.res.Percentile(50)), dur(r.res.Percentile(99)), dur(r.res.CPUPerOp()), ratio, writes, r.res.Errors)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "¹ getrusage of the whole process over the measured window ÷ ops: the broker, the fake upstream and the load generator together.")
	fmt.Fprintln(w, "² the broker's store write calls ÷ ops; each is one bbolt write transaction, and one fsync unless concurrent writes share a group commit.")

	var legs []row
	for _, r := range rows {
		if r.steps != nil && len(r.steps.legs[0]) > 0 {
			legs = append(legs, r)
		}
	}
	if len(legs) == 0 {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Sign-in legs, p50 / p99:")
	fmt.Fprintln(w)
	fmt.Fprintf(w, "| c | %s |\n", strings.Join(legs[0].steps.names, " | "))
	fmt.Fprintf(w, "|---:|%s\n", strings.Repeat("---:|", len(legs[0].steps.names)))
	for _, r := range legs {
		cells := make([]string, len(r.steps.names))
		for i := range cells {
			cells[i] = dur(r.steps.percentile(i, 50)) + " / " + dur(r.steps.percentile(i, 99))
		}
		fmt.Fprintf(w, "| %d | %s |\n", r.res.Concurrency, strings.Join(cells, " | "))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "authorize: broker GET /authorize → 303 to the upstream; upstream: fake IdP auto-login → 303 to /callback;")
	fmt.Fprintln(w, "callback: broker GET /callback, including its server-side code exchange at the upstream → 303 with a code;")
	fmt.Fprintln(w, "token: POST /token (authorization_code + PKCE) by x/oauth2.")
	if info.signinConns > 0 || info.signinUpConns > 0 {
		fmt.Fprintf(w, "\nTCP connections accepted during the c=%d sign-in run (warm-up included): broker %d, upstream %d.\n",
			info.signinC, info.signinConns, info.signinUpConns)
	}
}

func ratioString(f float64) string {
	switch {
	case f >= 0.1:
		return fmt.Sprintf("%.2f", f)
	case f >= 0.001:
		return fmt.Sprintf("%.4f (1/%.0f)", f, 1/f)
	default:
		return fmt.Sprintf("1/%.0f", 1/f)
	}
}

func dur(d time.Duration) string {
	switch {
	case d == 0:
		return "—"
	case d < time.Millisecond:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	case d < 100*time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	}
}

func thousands(f float64) string {
	if f < 100 {
		return fmt.Sprintf("%.1f", f)
	}
	s := fmt.Sprintf("%.0f", f)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
