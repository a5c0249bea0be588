package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/keyward/keyward/bench/harness"
)

// edgeTarget is one server process of the edge-verification section.
type edgeTarget struct {
	name  string // bare, hit, miss
	label string
	path  string // request path
	proc  *harness.Proc
}

// edgeRow is one measured point against a process.
type edgeRow struct {
	target, method string // method: "go" (harness.Run) or "wrk"
	c              int
	ops            int64
	rate           float64
	p50, p99       time.Duration
	cpuPerOp       time.Duration
	errors         int64
	errNote        string
}

// edgeResult is the whole section.
type edgeResult struct {
	rows      []edgeRow
	rss, peak map[string]int64 // by target, after all loads
	parseCost time.Duration    // golang-jwt parse+verify of the same token, in-process
	tokenLen  int
	wrk       bool
	wrkD      time.Duration
}

// runEdge builds `keyward verify` and bench/cmd/bare, starts them as their
// own processes (a verifier with the verified-token cache, one without, and
// the bare handler), and loads each with the Go generator and, with -wrk,
// with wrk. The verifiers fetch the keys from env's broker.
func runEdge(ctx context.Context, o options, env *harness.Env) (*edgeResult, error) {
	binDir := filepath.Join(o.dir, "bin")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return nil, err
	}
	fmt.Fprintln(os.Stderr, "building keyward and bench/cmd/bare …")
	keyward, err := harness.Build(ctx, binDir, "github.com/keyward/keyward/cmd/keyward")
	if err != nil {
		return nil, err
	}
	bare, err := harness.Build(ctx, binDir, "github.com/keyward/keyward/bench/cmd/bare")
	if err != nil {
		return nil, err
	}
	// A real RS256 access token for ClientID from a real sign-in.
	tr := harness.NewTransport(2)
	tok, err := harness.NewSignInClient(env.BrokerURL, tr).SignIn(ctx, nil)
	tr.CloseIdleConnections()
	if err != nil {
		return nil, fmt.Errorf("sign in for the bearer token: %w", err)
	}
	token := tok.AccessToken
	hdr := harness.VerifyHeaders(token)

	targets := []*edgeTarget{
		{name: "bare", label: "bare net/http process, 200 empty", path: "/"},
		{name: "hit", label: "keyward verify /oauth2/auth, cache hit", path: "/oauth2/auth"},
		{name: "miss", label: "keyward verify /oauth2/auth, no cache (-1)", path: "/oauth2/auth"},
	}
	defer func() {
		for _, t := range targets {
			if t.proc != nil {
				t.proc.Stop()
			}
		}
	}()
	for _, t := range targets {
		addr, err := harness.FreeAddr()
		if err != nil {
			return nil, err
		}
		url := "http://" + addr
		logPath := filepath.Join(o.dir, t.name+".log")
		if t.name == "bare" {
			t.proc, err = harness.StartProc(ctx, t.name, bare, []string{"-listen", addr}, url, "/", logPath)
		} else {
			entries := 0
			if t.name == "miss" {
				entries = -1
			}
			cfg := filepath.Join(o.dir, "verify-"+t.name+".yaml")
			if err := os.WriteFile(cfg, []byte(harness.VerifyConfig(env.BrokerURL, addr, entries)), 0o600); err != nil {
				return nil, err
			}
			t.proc, err = harness.StartProc(ctx, t.name, keyward, []string{"verify", "-c", cfg}, url, "/healthz", logPath)
		}
		if err != nil {
			return nil, err
		}
		if t.name != "bare" { // wait for the key set
			if err := waitOK(ctx, url+t.path, hdr); err != nil {
				return nil, fmt.Errorf("%s: %w", t.name, err)
			}
		}
	}

	res := &edgeResult{rss: map[string]int64{}, peak: map[string]int64{}, tokenLen: len(token), wrk: o.wrk, wrkD: o.wrkDuration}
	fmt.Fprintln(os.Stderr, "measuring golang-jwt parse+verify of the token …")
	if res.parseCost, err = harness.JWTParseCost(ctx, env.BrokerURL+"/keys", env.BrokerURL, harness.ClientID, token); err != nil {
		return nil, err
	}
	for _, c := range o.conc {
		for _, t := range targets {
			fmt.Fprintf(os.Stderr, "running %s (process) c=%d …\n", t.name, c)
			tr := harness.NewTransport(c)
			client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
			r := harness.Run(ctx, harness.Load{
				Concurrency: c, Warmup: o.warmup, Duration: o.duration, Counter: t.proc.CPUTicks,
				NewOp: func(int) harness.Op {
					h := hdr.Clone()
					if t.name == "bare" {
						h = nil
					}
					return func(ctx context.Context, _ bool) error { return harness.GetHeader(ctx, client, t.proc.URL+t.path, h) }
				},
			})
			tr.CloseIdleConnections()
			row := edgeRow{target: t.name, method: "go", c: c, ops: int64(r.Ops), rate: r.Rate(),
				p50: r.Percentile(50), p99: r.Percentile(99), errors: int64(r.Errors)}
			if r.Ops > 0 {
				row.cpuPerOp = harness.CPUFromTicks(r.Counted) / time.Duration(r.Ops)
			}
			if r.FirstError != nil {
				row.errNote = r.FirstError.Error()
				fmt.Fprintf(os.Stderr, "  %s c=%d: %d errors; first: %v\n", t.name, c, r.Errors, r.FirstError)
			}
			res.rows = append(res.rows, row)
		}
	}
	if o.wrk {
		if _, err := exec.LookPath("wrk"); err != nil {
			return nil, fmt.Errorf("-wrk: %w (apt-get install -y wrk)", err)
		}
		for _, tc := range []struct{ threads, conns int }{{1, 1}, {2, 32}} {
			for _, t := range targets {
				fmt.Fprintf(os.Stderr, "running wrk -t%d -c%d -d%s against %s …\n", tc.threads, tc.conns, o.wrkDuration, t.name)
				h := hdr
				if t.name == "bare" {
					h = nil
				}
				w, err := harness.RunWrk(ctx, t.proc, tc.threads, tc.conns, o.wrkDuration, t.proc.URL+t.path, h)
				if err != nil {
					return nil, err
				}
				res.rows = append(res.rows, edgeRow{target: t.name, method: "wrk", c: tc.conns, ops: w.Requests, rate: w.Rate,
					p50: w.P50, p99: w.P99, cpuPerOp: w.CPUPerOp(), errors: w.Non2xx, errNote: w.SocketErrs})
			}
		}
	}
	for _, t := range targets {
		res.rss[t.name], res.peak[t.name] = t.proc.Memory()
	}
	return res, nil
}

// waitOK retries a check until it answers 200 (the verifier loads its keys
// in the background), for at most 10 s.
func waitOK(ctx context.Context, url string, hdr http.Header) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := harness.GetHeader(ctx, client, url, hdr.Clone())
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}
