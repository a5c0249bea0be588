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
	edge                       *edgeResult
	signCost                   map[string]time.Duration
}

var labels = map[string]string{
	"bare":    "bare net/http, GET 200 empty",
	"keys":    "broker GET /keys",
	"refresh": "broker refresh grant",
	"signin":  "whole sign-in (4 legs)",
}

func label(scenario string) string {
	if alg, ok := strings.CutPrefix(scenario, "exchange-"); ok {
		return "token exchange, CI JWT → access token (" + alg + ")"
	}
	return labels[scenario]
}

func report(w io.Writer, o options, rows []row, info reportInfo) {
	m := info.machine
	sync := "fsync on (production)"
	if o.noSync {
		sync = "NoSync (no fsync; not production)"
	}
	fmt.Fprintf(w, "### keyward-bench, %s\n\n", info.started.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "- machine: %d CPUs (GOMAXPROCS %d), %s; Linux %s; %s\n", m.CPUs, m.GOMAXPROCS, m.CPUModel, m.Kernel, m.GoVersion)
	signing := o.alg
	if o.accessAlg != "" && o.accessAlg != o.alg {
		signing = o.alg + " (ID tokens), " + o.accessAlg + " (access tokens)"
	}
	fmt.Fprintf(w, "- store: bbolt on %s, %s; signing: %s; broker log: %s\n", m.DirFS, sync, signing, o.log)
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
		fmt.Fprintf(w, "| %s | %d | %d | %s | %s | %s | %s | %s | %s | %d |\n", label(r.scenario), r.res.Concurrency, r.res.Ops,
			thousands(r.res.Rate()), dur(r.res.Percentile(50)), dur(r.res.Percentile(99)), dur(r.res.CPUPerOp()), ratio, writes, r.res.Errors)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "¹ getrusage of the whole process over the measured window ÷ ops: the broker, the fake upstream and the load generator together.")
	fmt.Fprintln(w, "² the broker's store write calls ÷ ops; each is one bbolt write transaction, and one fsync unless concurrent writes share a group commit.")

	reportExchange(w, o, rows, info)
	reportEdge(w, o, info.edge)

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

// reportExchange compares each exchange row with the signing-only bound:
// GOMAXPROCS ÷ the cost of one keys.Manager.Sign.
func reportExchange(w io.Writer, o options, rows []row, info reportInfo) {
	if len(info.signCost) == 0 {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Token exchange against the signing-only bound (keys.Manager.Sign of a 17-claim token, measured in this process with testing.Benchmark; bound = GOMAXPROCS ÷ sign cost):")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| signing | sign cost | bound, 2 cores | c | exchanges/s | ÷ bound | CPU/op ¹ | CPU/op − sign cost |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|")
	procs := info.machine.GOMAXPROCS
	for _, r := range rows {
		alg, ok := strings.CutPrefix(r.scenario, "exchange-")
		if !ok {
			continue
		}
		cost := info.signCost[alg]
		bound := float64(procs) / cost.Seconds()
		if r.res.Concurrency == 1 {
			bound = 1 / cost.Seconds() // one client: one request at a time
		}
		fmt.Fprintf(w, "| %s | %s | %s | %d | %s | %.2f | %s | %s |\n", alg, dur(cost), thousands(bound), r.res.Concurrency,
			thousands(r.res.Rate()), r.res.Rate()/bound, dur(r.res.CPUPerOp()), dur(r.res.CPUPerOp()-cost))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "At c=1 the bound is one signature at a time (1 ÷ sign cost).")
}

var edgeLabels = map[string]string{
	"bare": "bare net/http process, GET 200 empty",
	"hit":  "keyward verify /oauth2/auth, cache hit",
	"miss": "keyward verify /oauth2/auth, cache off (-1)",
}

// reportEdge prints the edge-verification section and checks issue 3's
// targets.
func reportEdge(w io.Writer, o options, e *edgeResult) {
	if e == nil {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "#### Edge verification: `keyward verify` and a bare handler, each its own process")
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Token: a real RS256 access token from a broker sign-in (%d bytes); rule: host + path prefix + audience + scope anyOf. "+
		"golang-jwt/v5 ParseWithClaims of this token, in-process, one core: **%s**.\n\n", e.tokenLen, dur(e.parseCost))
	fmt.Fprintln(w, "| server | load | c | requests | req/s | p50 | p99 | server CPU/req ³ | ÷ bare (same load, c) | non-200 |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	bare := map[string]float64{}
	for _, r := range e.rows {
		if r.target == "bare" {
			bare[fmt.Sprint(r.method, r.c)] = r.rate
		}
	}
	for _, r := range e.rows {
		ratio := "—"
		if b := bare[fmt.Sprint(r.method, r.c)]; b > 0 && r.target != "bare" {
			ratio = fmt.Sprintf("%.2f", r.rate/b)
		}
		load := "Go clients"
		if r.method == "wrk" {
			load = fmt.Sprintf("wrk -t%d", min(r.c, 2))
		}
		fmt.Fprintf(w, "| %s | %s | %d | %d | %s | %s | %s | %s | %s | %d |\n", edgeLabels[r.target], load, r.c, r.ops,
			thousands(r.rate), dur(r.p50), dur(r.p99), dur(r.cpuPerOp), ratio, r.errors)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "³ utime+stime of the server process (/proc/PID/stat, 10 ms ticks) over the window ÷ requests; the load generator is not included.")
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Resident memory after the loads (VmRSS / peak VmHWM): bare %s / %s; verifier with cache %s / %s; without cache %s / %s.\n",
		mb(e.rss["bare"]), mb(e.peak["bare"]), mb(e.rss["hit"]), mb(e.peak["hit"]), mb(e.rss["miss"]), mb(e.peak["miss"]))

	// Issue 3's targets.
	find := func(target, method string, c int) *edgeRow {
		for i := range e.rows {
			if r := &e.rows[i]; r.target == target && r.method == method && r.c == c {
				return r
			}
		}
		return nil
	}
	verdict := func(ok bool) string {
		if ok {
			return "**pass**"
		}
		return "**FAIL**"
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Targets (issue 3):")
	fmt.Fprintln(w)
	for _, method := range []string{"go", "wrk"} {
		for _, c := range []int{1, 32} {
			h, b := find("hit", method, c), find("bare", method, c)
			if h == nil || b == nil || b.rate == 0 {
				continue
			}
			fmt.Fprintf(w, "- cache hit ≥ 50%% of bare req/s (%s, c=%d): %.0f%% → %s\n", method, c, 100*h.rate/b.rate, verdict(h.rate >= 0.5*b.rate))
		}
	}
	for _, method := range []string{"go", "wrk"} {
		for _, c := range []int{1, 32} {
			m := find("miss", method, c)
			if m == nil || e.parseCost == 0 {
				continue
			}
			extra := ""
			if b := find("bare", method, c); b != nil {
				extra = fmt.Sprintf("; above bare's CPU/req: %s = %.2f×", dur(m.cpuPerOp-b.cpuPerOp), float64(m.cpuPerOp-b.cpuPerOp)/float64(e.parseCost))
			}
			fmt.Fprintf(w, "- no cache: server CPU/req ≤ 1.5 × parse+verify %s (%s, c=%d): %s = %.2f× → %s%s\n", dur(e.parseCost), method, c,
				dur(m.cpuPerOp), float64(m.cpuPerOp)/float64(e.parseCost), verdict(float64(m.cpuPerOp) <= 1.5*float64(e.parseCost)), extra)
		}
	}
	if h := find("hit", "wrk", 32); h != nil {
		fmt.Fprintf(w, "- ≥ 5 × oauth2-proxy's 8,138 req/s (wrk -t2 -c32 on the anchor machine) = 40,690: cache hit %s req/s, no cache %s req/s (wrk -t2 -c32, this machine) → %s / %s\n",
			thousands(h.rate), thousands(find("miss", "wrk", 32).rate), verdict(h.rate >= 40690), verdict(find("miss", "wrk", 32).rate >= 40690))
	} else {
		fmt.Fprintln(w, "- ≥ 5 × oauth2-proxy (wrk): not measured; run with -wrk")
	}
	fmt.Fprintf(w, "- verifier RSS < 40 MB under load: peak %s (cache) / %s (no cache) → %s\n", mb(e.peak["hit"]), mb(e.peak["miss"]),
		verdict(e.peak["hit"] < 40<<20 && e.peak["miss"] < 40<<20))
}

func mb(b int64) string {
	return fmt.Sprintf("%.1f MB", float64(b)/(1<<20))
}
