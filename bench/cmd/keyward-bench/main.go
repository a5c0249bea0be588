// Command keyward-bench measures Keyward's broker core on loopback next to a
// bare net/http handler in the same process and run, and prints Markdown.
//
//	go run ./bench/cmd/keyward-bench [-duration 3s] [-concurrency 1,32] [-scenarios bare,keys,refresh,signin]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
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
	dir              string
	log              string
	cpuprofile       string
	profScenario     string
}

var allScenarios = []string{"bare", "keys", "refresh", "signin"}

func main() {
	var o options
	var conc, signinConc, scenarios string
	flag.DurationVar(&o.duration, "duration", 3*time.Second, "measured time per scenario and concurrency (at most 60s)")
	flag.DurationVar(&o.warmup, "warmup", 500*time.Millisecond, "unmeasured warm-up before each measured window")
	flag.StringVar(&conc, "concurrency", "1,32", "concurrent clients for bare, keys and refresh (comma-separated, each 1..256)")
	flag.StringVar(&signinConc, "signin-concurrency", "1,8", "concurrent clients for whole sign-ins")
	flag.StringVar(&scenarios, "scenarios", strings.Join(allScenarios, ","), "scenarios to run: "+strings.Join(allScenarios, ","))
	flag.BoolVar(&o.noSync, "nosync", false, "open bbolt with NoSync (not production: shows what fsync costs)")
	flag.StringVar(&o.alg, "alg", "RS256", "Keyward's signing algorithm: RS256, ES256 or EdDSA")
	flag.StringVar(&o.dir, "dir", "", "directory for the bbolt file (default: a new temporary directory, removed at exit)")
	flag.StringVar(&o.log, "log", "file", "broker log: file (JSON at info in -dir, as production writes it) or discard")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of -profile-scenario's measured window at its highest concurrency")
	flag.StringVar(&o.profScenario, "profile-scenario", "refresh", "scenario that -cpuprofile covers")
	flag.Parse()

	var err error
	if o.conc, err = parseInts(conc); err == nil {
		o.signinConc, err = parseInts(signinConc)
	}
	if err == nil {
		o.scenarios, err = parseScenarios(scenarios)
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
	if err := run(ctx, o, os.Stdout); err != nil {
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
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if !slices.Contains(allScenarios, f) {
			return nil, fmt.Errorf("scenario %q: want one of %s", f, strings.Join(allScenarios, ","))
		}
		out = append(out, f)
	}
	return out, nil
}

// row is one line of the results table.
type row struct {
	scenario string
	res      harness.Result
	steps    *stepStats // sign-ins only
}

func run(ctx context.Context, o options, out io.Writer) error {
	if o.dir == "" {
		d, err := os.MkdirTemp("", "keyward-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		o.dir = d
	}
	load0, started := harness.LoadAvg(), time.Now()
	hopts := harness.Options{Dir: o.dir, NoSync: o.noSync, Algorithm: o.alg}
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

	has := func(s string) bool { return slices.Contains(o.scenarios, s) }
	bareConc := o.conc
	if has("signin") {
		bareConc = slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(o.conc), o.signinConc...))))
	}
	var rows []row
	var signinConns, signinUpConns int64
	for _, sc := range o.scenarios {
		levels := o.conc
		switch sc {
		case "bare":
			levels = bareConc
		case "signin":
			levels = o.signinConc
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
		signinC: slices.Max(o.signinConc),
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
