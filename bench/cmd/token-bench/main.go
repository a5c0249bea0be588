// Command token-bench measures the token endpoint of real `keyward serve`
// processes, the way docs/performance.md reports issues 14 and 15: token
// exchange and refresh grant, per signing algorithm and concurrency, each
// next to a bare net/http process in the same run, in interleaved rounds,
// medians printed as one Markdown table. Per point it reads the serving
// process's CPU time from /proc (the load generator is not included), the
// store's write transactions and commits from its /metrics (before and
// after the measured window), and at the end the bbolt file's size and the
// process's memory.
//
//	go run ./bench/cmd/token-bench                        # 3 rounds × 10 s per point, ~7 min
//	go run ./bench/cmd/token-bench -rounds 1 -duration 3s  # a quick look
//	go run ./bench/cmd/token-bench -bin before=/tmp/kw-old,after=/tmp/kw-new
//
// -bin compares prebuilt keyward binaries, interleaved point by point
// (default: ./cmd/keyward built into the work directory). A binary without
// the keyward_store_* metrics shows "—" for writes per operation.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/keyward/keyward/bench/harness"
)

type options struct {
	bins        []binary
	algs        []string
	scenarios   []string
	concurrency []int
	rounds      int
	duration    time.Duration
	warmup      time.Duration
	dir         string
	cmdline     string
}

type binary struct{ name, path string }

func main() {
	var o options
	bins := flag.String("bin", "", "name=path,… of keyward binaries to compare (default: build ./cmd/keyward as \"current\")")
	algs := flag.String("algs", "RS256,ES256", "signing algorithms (keys.algorithm), one broker each")
	scenarios := flag.String("scenarios", "exchange,refresh", "exchange, refresh")
	conc := flag.String("concurrency", "1,32", "concurrent clients per point")
	flag.IntVar(&o.rounds, "rounds", 3, "interleaved rounds; the table shows medians")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "measured window per point")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured warm-up before each point")
	flag.StringVar(&o.dir, "dir", "", "work directory (bbolt files, configs, logs); default a temporary one, removed at exit")
	flag.Parse()
	o.cmdline = strings.Join(append([]string{"go run ./bench/cmd/token-bench"}, os.Args[1:]...), " ")
	var err error
	if o.bins, err = parseBins(*bins); err == nil {
		if o.concurrency, err = parseInts(*conc); err == nil {
			o.algs = strings.Split(*algs, ",")
			o.scenarios, err = parseScenarios(*scenarios)
		}
	}
	if err == nil && (o.rounds < 1 || o.duration <= 0 || o.duration > 5*time.Minute || o.warmup < 0) {
		err = errors.New("-rounds must be ≥ 1, -duration in (0, 5m], -warmup ≥ 0")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "token-bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := inWorkDir(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "token-bench:", err)
		os.Exit(1)
	}
}

func parseBins(s string) ([]binary, error) {
	if s == "" {
		return nil, nil
	}
	var bs []binary
	for _, item := range strings.Split(s, ",") {
		name, path, ok := strings.Cut(item, "=")
		if !ok || name == "" || path == "" {
			return nil, fmt.Errorf("-bin: %q is not name=path", item)
		}
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("-bin %s: %w", name, err)
		}
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, err
		}
		bs = append(bs, binary{name, abs})
	}
	return bs, nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 256 {
			return nil, fmt.Errorf("-concurrency: %q is not a number in 1–256", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func parseScenarios(s string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f != "exchange" && f != "refresh" {
			return nil, fmt.Errorf("-scenarios: unknown %q (exchange, refresh)", f)
		}
		out = append(out, f)
	}
	return out, nil
}

func inWorkDir(ctx context.Context, o options, out io.Writer) error {
	if o.dir == "" {
		d, err := os.MkdirTemp("", "token-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		o.dir = d
	}
	return run(ctx, o, out)
}

// broker is one `keyward serve` process: one binary, one algorithm.
type broker struct {
	bin, alg   string
	url        string
	metricsURL string
	dbPath     string
	proc       *harness.Proc
	subject    string   // the CI token exchanged
	chains     []string // each refresh worker's current refresh token
}

func (b *broker) label() string {
	if b.bin == "" {
		return b.alg
	}
	return b.bin + " " + b.alg
}

// point is one measured configuration; b is nil for the bare process.
type point struct {
	b        *broker
	scenario string // "bare", "exchange", "refresh"
	c        int
}

func (p point) key() string {
	if p.b == nil {
		return fmt.Sprintf("bare/%d", p.c)
	}
	return fmt.Sprintf("%s/%s/%s/%d", p.b.bin, p.b.alg, p.scenario, p.c)
}

// sample is one point's measurement in one round.
type sample struct {
	ops, errors int
	firstErr    error
	rate        float64
	p50, p99    time.Duration
	cpuPerOp    time.Duration // the server process's, from /proc
	writesPerOp float64       // NaN: the binary has no store metrics
	commitsOp   float64
}

func run(ctx context.Context, o options, out io.Writer) error {
	load0, started := harness.LoadAvg(), time.Now()
	fmt.Fprintln(os.Stderr, "building…")
	bare, err := harness.Build(ctx, o.dir, "github.com/keyward/keyward/bench/cmd/bare")
	if err != nil {
		return err
	}
	if len(o.bins) == 0 {
		kw, err := harness.Build(ctx, o.dir, "github.com/keyward/keyward/cmd/keyward")
		if err != nil {
			return err
		}
		o.bins = []binary{{"", kw}}
	}

	var brokers []*broker
	var callbacks []string
	for _, bin := range o.bins {
		for _, alg := range o.algs {
			addr, err1 := harness.FreeAddr()
			maddr, err2 := harness.FreeAddr()
			if err := errors.Join(err1, err2); err != nil {
				return err
			}
			brokers = append(brokers, &broker{bin: bin.name, alg: alg, url: "http://" + addr, metricsURL: "http://" + maddr + "/metrics"})
			callbacks = append(callbacks, "http://"+addr+"/callback")
		}
	}
	idps, err := harness.StartIdps(callbacks)
	if err != nil {
		return err
	}
	defer idps.Close()

	bareAddr, err := harness.FreeAddr()
	if err != nil {
		return err
	}
	bareProc, err := harness.StartProc(ctx, "bare", bare, []string{"-listen", bareAddr}, "http://"+bareAddr, "/", filepath.Join(o.dir, "bare.log"))
	if err != nil {
		return err
	}
	defer bareProc.Stop()

	secret := filepath.Join(o.dir, "session-secret")
	if err := os.WriteFile(secret, []byte("bench-session-secret-0123456789-0123456789\n"), 0o600); err != nil {
		return err
	}
	maxC := slices.Max(o.concurrency)
	i := 0
	for _, bin := range o.bins {
		for range o.algs {
			b := brokers[i]
			i++
			name := strings.Trim(strings.ReplaceAll(b.bin+"-"+b.alg, " ", "-"), "-")
			b.dbPath = filepath.Join(o.dir, name+".db")
			cfg := filepath.Join(o.dir, name+".yaml")
			conf := idps.ServeConfig(strings.TrimPrefix(b.url, "http://"), strings.TrimSuffix(strings.TrimPrefix(b.metricsURL, "http://"), "/metrics"), b.dbPath, secret, b.alg)
			if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "starting keyward serve %s…\n", b.label())
			if b.proc, err = harness.StartProc(ctx, "keyward "+b.label(), bin.path, []string{"serve", "-c", cfg}, b.url, "/healthz", filepath.Join(o.dir, name+".log")); err != nil {
				return err
			}
			defer b.proc.Stop()
			if err := prepare(ctx, b, idps, o, maxC); err != nil {
				return fmt.Errorf("%s: %w", b.label(), err)
			}
		}
	}

	// The points of one round, before/after binaries adjacent.
	var points []point
	for _, c := range o.concurrency {
		points = append(points, point{scenario: "bare", c: c})
	}
	for _, sc := range o.scenarios {
		for _, c := range o.concurrency {
			for _, alg := range o.algs {
				for _, b := range brokers {
					if b.alg == alg {
						points = append(points, point{b: b, scenario: sc, c: c})
					}
				}
			}
		}
	}
	samples := map[string][]sample{}
	for r := range o.rounds {
		for _, p := range points {
			if err := ctx.Err(); err != nil {
				return err
			}
			target := "bare"
			if p.b != nil {
				target = p.b.label() + " " + p.scenario
			}
			fmt.Fprintf(os.Stderr, "round %d/%d: %s c=%d…\n", r+1, o.rounds, target, p.c)
			s, err := measure(ctx, p, bareProc, "http://"+bareAddr, o)
			if err != nil {
				return err
			}
			samples[p.key()] = append(samples[p.key()], s)
		}
	}

	files := make([]fileRow, len(brokers))
	for i, b := range brokers {
		files[i].b = b
		if info, err := os.Stat(b.dbPath); err == nil {
			files[i].size = info.Size()
		}
		files[i].rss, files[i].peak = b.proc.Memory()
		files[i].anon, files[i].fileBacked = rssParts(b.proc.PID())
	}
	report(out, o, points, samples, files, reportInfo{
		machine: harness.Describe(o.dir), load0: load0, load1: harness.LoadAvg(),
		started: started, took: time.Since(started),
	})
	return nil
}

// prepare warms b up: one exchange (it fetches the CI issuer's keys), and
// one sign-in per refresh worker, each starting that worker's chain.
func prepare(ctx context.Context, b *broker, idps *harness.Idps, o options, maxC int) error {
	tr := harness.NewTransport(4)
	defer tr.CloseIdleConnections()
	b.subject = idps.MintCIToken(2 * time.Hour)
	if slices.Contains(o.scenarios, "exchange") {
		if err := harness.NewExchanger(b.url, tr, b.subject).Exchange(ctx); err != nil {
			return fmt.Errorf("first exchange: %w", err)
		}
	}
	if slices.Contains(o.scenarios, "refresh") {
		sc := harness.NewSignInClient(b.url, tr)
		for i := range maxC {
			tok, err := sc.SignIn(ctx, nil)
			if err != nil {
				return fmt.Errorf("sign in for refresh chain %d: %w", i, err)
			}
			b.chains = append(b.chains, tok.RefreshToken)
		}
	}
	return nil
}

// measure runs one point: closed-loop Go clients for the warm-up and the
// window, the server's CPU ticks and store counters read at the window's
// edges.
func measure(ctx context.Context, p point, bareProc *harness.Proc, bareURL string, o options) (sample, error) {
	tr := harness.NewTransport(p.c)
	defer tr.CloseIdleConnections()
	scrape := &http.Client{Timeout: 5 * time.Second}
	proc := bareProc
	if p.b != nil {
		proc = p.b.proc
	}
	var cpu0, cpu1 int64
	var m0, m1 harness.StoreCounters
	var merr error
	edge := func(cpu *int64, m *harness.StoreCounters) func() {
		return func() {
			*cpu = proc.CPUTicks()
			if p.b != nil {
				var err error
				*m, err = harness.ScrapeStoreCounters(ctx, scrape, p.b.metricsURL)
				merr = errors.Join(merr, err)
			}
		}
	}
	var refreshers []*harness.Refresher
	l := harness.Load{
		Concurrency: p.c, Warmup: o.warmup, Duration: o.duration,
		OnStart: edge(&cpu0, &m0), OnStop: edge(&cpu1, &m1),
		NewOp: func(i int) harness.Op {
			client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
			switch p.scenario {
			case "exchange":
				x := harness.NewExchanger(p.b.url, tr, p.b.subject)
				return func(ctx context.Context, _ bool) error { return x.Exchange(ctx) }
			case "refresh":
				r := harness.NewRefresher(p.b.url, tr, p.b.chains[i])
				refreshers = append(refreshers, r)
				signIn := harness.NewSignInClient(p.b.url, tr)
				return func(ctx context.Context, _ bool) error {
					err := r.Refresh(ctx)
					if err != nil && ctx.Err() == nil {
						// A broken chain would fail every later op: start a
						// new one (this op still counts as an error).
						if tok, serr := signIn.SignIn(ctx, nil); serr == nil {
							r.Reset(tok.RefreshToken)
						}
					}
					return err
				}
			default:
				return func(ctx context.Context, _ bool) error { return harness.Get(ctx, client, bareURL+"/") }
			}
		},
	}
	res := harness.Run(ctx, l)
	for i, r := range refreshers { // the chains go on in the next round
		p.b.chains[i] = r.Token()
	}
	if merr != nil {
		return sample{}, merr
	}
	s := sample{
		ops: res.Ops, errors: res.Errors, firstErr: res.FirstError, rate: res.Rate(),
		p50: res.Percentile(50), p99: res.Percentile(99),
		writesPerOp: nan(), commitsOp: nan(),
	}
	if res.Ops > 0 {
		s.cpuPerOp = harness.CPUFromTicks(cpu1-cpu0) / time.Duration(res.Ops)
		if m0.Found && m1.Found {
			s.writesPerOp = (m1.WriteTxs - m0.WriteTxs) / float64(res.Ops)
			s.commitsOp = (m1.Commits - m0.Commits) / float64(res.Ops)
		}
	}
	return s, nil
}

// rssParts reads RssAnon and RssFile of process pid from /proc, in bytes.
func rssParts(pid int) (anon, file int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		for key, dst := range map[string]*int64{"RssAnon:": &anon, "RssFile:": &file} {
			if v, ok := strings.CutPrefix(line, key); ok {
				var kb int64
				if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb); err == nil {
					*dst = kb << 10
				}
			}
		}
	}
	return anon, file
}
