// Command keyward-bench measures Keyward's broker core on loopback next to a
// bare net/http handler in the same process and run, and prints Markdown.
//
//	go run ./bench/cmd/keyward-bench [-duration 3s] [-concurrency 1,32] [-scenarios bare,keys,refresh,signin,verify,exchange] [-wrk]
//
// With -stores it compares the refresh grant and token exchange on bbolt,
// PostgreSQL, and two brokers on one PostgreSQL database instead:
//
//	go run ./bench/cmd/keyward-bench -stores bolt,postgres,postgres2 -pg-dsn postgres://…/postgres
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keyward/keyward/bench/harness"
)

type options struct {
	duration, warmup time.Duration
	conc, signinConc []int
	scenarios        []string
	noSync           bool
	alg              string
	accessAlg        string // keys.accessTokenAlgorithm; "": alg
	dir              string
	log              string
	cpuprofile       string
	profScenario     string
	exchangeAlgs     []string
	wrk              bool
	wrkDuration      time.Duration
	stores           []string // -stores: compare stores instead of the scenarios
	pgDSN            string
	pgMaxConns       int32
}

var allScenarios = []string{"bare", "keys", "refresh", "signin", "verify", "exchange"}

func main() {
	var o options
	var conc, signinConc, scenarios, exchangeAlgs string
	flag.DurationVar(&o.duration, "duration", 3*time.Second, "measured time per scenario and concurrency (at most 60s)")
	flag.DurationVar(&o.warmup, "warmup", 500*time.Millisecond, "unmeasured warm-up before each measured window")
	flag.StringVar(&conc, "concurrency", "1,32", "concurrent clients for bare, keys and refresh (comma-separated, each 1..256)")
	flag.StringVar(&signinConc, "signin-concurrency", "1,8", "concurrent clients for whole sign-ins")
	flag.StringVar(&scenarios, "scenarios", strings.Join(allScenarios, ","), "scenarios to run: "+strings.Join(allScenarios, ","))
	flag.BoolVar(&o.noSync, "nosync", false, "open bbolt with NoSync (not production: shows what fsync costs)")
	flag.StringVar(&o.alg, "alg", "RS256", "Keyward's signing algorithm: RS256, ES256 or EdDSA")
	flag.StringVar(&o.accessAlg, "access-alg", "", "keys.accessTokenAlgorithm (default: -alg)")
	flag.StringVar(&o.dir, "dir", "", "directory for the bbolt file (default: a new temporary directory, removed at exit)")
	flag.StringVar(&o.log, "log", "file", "broker log: file (JSON at info in -dir, as production writes it) or discard")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of -profile-scenario's measured window at its highest concurrency")
	flag.StringVar(&o.profScenario, "profile-scenario", "refresh", "scenario that -cpuprofile covers (exchange: exchange-RS256, exchange-ES256 …)")
	flag.StringVar(&exchangeAlgs, "exchange-algs", "RS256,ES256", "the broker's signing algorithms for the exchange scenario (a broker per algorithm)")
	flag.BoolVar(&o.wrk, "wrk", false, "verify scenario: also load the verifier and bare processes with wrk (-t1 -c1 and -t2 -c32)")
	flag.DurationVar(&o.wrkDuration, "wrk-duration", 10*time.Second, "duration of each wrk run (whole seconds)")
	var stores string
	var pgMaxConns int
	flag.StringVar(&stores, "stores", "", "compare the refresh grant and token exchange on these store setups instead of running -scenarios: "+strings.Join(allStores, ",")+" (postgres2: two brokers on one database, requests round-robin)")
	flag.StringVar(&o.pgDSN, "pg-dsn", os.Getenv("KEYWARD_BENCH_POSTGRES_DSN"), "postgres:// URL of a role that may create databases, for -stores postgres and postgres2 (default: $KEYWARD_BENCH_POSTGRES_DSN)")
	flag.IntVar(&pgMaxConns, "pg-maxconns", 0, "each broker's PostgreSQL pool size (0: max(4, CPUs))")
	flag.Parse()
	o.pgMaxConns = int32(min(max(pgMaxConns, 0), 1000))

	var err error
	if o.conc, err = parseInts(conc); err == nil {
		o.signinConc, err = parseInts(signinConc)
	}
	if err == nil {
		o.scenarios, err = parseScenarios(scenarios)
	}
	if err == nil {
		for a := range strings.SplitSeq(exchangeAlgs, ",") {
			if a = strings.TrimSpace(a); a != "RS256" && a != "ES256" && a != "EdDSA" {
				err = fmt.Errorf("-exchange-algs: %q is not RS256, ES256 or EdDSA", a)
			}
			o.exchangeAlgs = append(o.exchangeAlgs, a)
		}
	}
	if err == nil && (o.wrkDuration < time.Second || o.wrkDuration > time.Minute) {
		err = errors.New("-wrk-duration must be in [1s, 60s]")
	}
	if err == nil && stores != "" {
		o.stores, err = parseStores(stores)
	}
	if err == nil && (o.duration <= 0 || o.duration > time.Minute || o.warmup < 0 || o.warmup > 10*time.Second) {
		err = errors.New("-duration must be in (0, 60s] and -warmup in [0, 10s]")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "keyward-bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	runner := run
	if o.stores != nil {
		runner = runStores
	}
	if err := inWorkDir(ctx, o, os.Stdout, runner); err != nil {
		fmt.Fprintln(os.Stderr, "keyward-bench:", err)
		os.Exit(1)
	}
}

func parseInts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 256 {
			return nil, fmt.Errorf("concurrency %q: want integers in 1..256", s)
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func parseScenarios(s string) ([]string, error) {
	return parseChoices(s, allScenarios, func(f string) error {
		return fmt.Errorf("scenario %q: want one of %s", f, strings.Join(allScenarios, ","))
	})
}

// parseChoices splits the comma-separated list s, each item trimmed, and
// returns bad(item) for the first item not in allowed.
func parseChoices(s string, allowed []string, bad func(item string) error) ([]string, error) {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if !slices.Contains(allowed, f) {
			return nil, bad(f)
		}
		out = append(out, f)
	}
	return out, nil
}

// inWorkDir runs runner with o.dir as given, or when it is "" in a new
// temporary directory that is removed when runner returns.
func inWorkDir(ctx context.Context, o options, out io.Writer, runner func(context.Context, options, io.Writer) error) error {
	if o.dir == "" {
		d, err := os.MkdirTemp("", "keyward-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		o.dir = d
	}
	return runner(ctx, o, out)
}

// row is one line of the results table.
type row struct {
	scenario string
	res      harness.Result
	steps    *stepStats // sign-ins only
}

func run(ctx context.Context, o options, out io.Writer) error {
	load0, started := harness.LoadAvg(), time.Now()
	hopts := harness.Options{Dir: o.dir, NoSync: o.noSync, Algorithm: o.alg, AccessTokenAlgorithm: o.accessAlg}
	if o.log == "file" {
		f, err := os.Create(o.dir + "/keyward.log")
		if err != nil {
			return err
		}
		defer f.Close()
		hopts.Log = f
	}
	env, err := harness.Start(ctx, hopts)
	if err != nil {
		return err
	}
	defer env.Close()
	// One broker per signing algorithm: a Manager's algorithm applies from
	// the next rotation, so another algorithm needs another key set.
	envs := map[string]*harness.Env{o.alg: env}
	envFor := func(alg string) (*harness.Env, error) {
		if e, ok := envs[alg]; ok {
			return e, nil
		}
		d := filepath.Join(o.dir, alg)
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
		h := hopts
		h.Dir, h.Algorithm, h.AccessTokenAlgorithm = d, alg, ""
		e, err := harness.Start(ctx, h)
		if err != nil {
			return nil, err
		}
		envs[alg] = e
		return e, nil
	}
	defer func() {
		for alg, e := range envs {
			if alg != o.alg {
				e.Close()
			}
		}
	}()
	var edge *edgeResult
	signCost := map[string]time.Duration{}

	has := func(s string) bool { return slices.Contains(o.scenarios, s) }
	bareConc := o.conc
	if has("signin") {
		bareConc = slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(o.conc), o.signinConc...))))
	}
	var rows []row
	var signinConns, signinUpConns int64
	var jobs []string
	for _, sc := range o.scenarios {
		if sc == "exchange" {
			for _, alg := range o.exchangeAlgs {
				jobs = append(jobs, "exchange-"+alg)
			}
			continue
		}
		jobs = append(jobs, sc)
	}
	for _, sc := range jobs {
		levels := o.conc
		switch sc {
		case "bare":
			levels = bareConc
		case "signin":
			levels = o.signinConc
		case "verify":
			e, err := envFor("RS256")
			if err != nil {
				return err
			}
			if edge, err = runEdge(ctx, o, e); err != nil {
				return err
			}
			continue
		}
		env := env
		if alg, ok := strings.CutPrefix(sc, "exchange-"); ok {
			if env, err = envFor(alg); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "measuring keys.Manager.Sign (%s) …\n", alg)
			if signCost[alg], err = harness.SignCost(ctx, o.dir, alg); err != nil {
				return err
			}
		}
		s, err := newScenario(ctx, sc, env, slices.Max(levels))
		if err != nil {
			return err
		}
		for _, c := range levels {
			fmt.Fprintf(os.Stderr, "running %s c=%d …\n", sc, c)
			tr := harness.NewTransport(c)
			b0, u0 := env.BrokerConns.Load(), env.UpstreamConns.Load()
			l := harness.Load{Concurrency: c, Warmup: o.warmup, Duration: o.duration, NewOp: s.ops(tr), Counter: env.StoreWrites.Load}
			if o.cpuprofile != "" && sc == o.profScenario && c == slices.Max(levels) {
				stopProf, err := profiler(o.cpuprofile)
				if err != nil {
					return err
				}
				l.OnStart, l.OnStop = stopProf.start, stopProf.stop
			}
			r := row{scenario: sc, res: harness.Run(ctx, l), steps: s.collectSteps()}
			tr.CloseIdleConnections()
			if sc == "signin" && c == slices.Max(levels) {
				signinConns, signinUpConns = env.BrokerConns.Load()-b0, env.UpstreamConns.Load()-u0
			}
			if r.res.FirstError != nil {
				fmt.Fprintf(os.Stderr, "  %s c=%d: %d errors in the window; first: %v\n", sc, c, r.res.Errors, r.res.FirstError)
			}
			rows = append(rows, r)
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	}
	report(out, o, rows, reportInfo{
		machine: harness.Describe(o.dir), load0: load0, load1: harness.LoadAvg(), started: started,
		wall: time.Since(started), rss: harness.PeakRSS(), signinConns: signinConns, signinUpConns: signinUpConns,
		signinC: slices.Max(o.signinConc), edge: edge, signCost: signCost,
	})
	return nil
}

type prof struct {
	path string
	f    *os.File
}

func profiler(path string) (*prof, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	return &prof{path: path, f: f}, nil
}

func (p *prof) start() {
	if err := pprof.StartCPUProfile(p.f); err != nil {
		fmt.Fprintln(os.Stderr, "cpuprofile:", err)
	}
}

func (p *prof) stop() {
	pprof.StopCPUProfile()
	_ = p.f.Close()
	fmt.Fprintf(os.Stderr, "CPU profile written to %s\n", p.path)
}
