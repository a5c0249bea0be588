package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/keyward/keyward/bench/harness"
)

// The store setups -stores compares.
var allStores = []string{"bolt", "postgres", "postgres2"}

var storeLabels = map[string]string{
	"bolt":      "bbolt, one broker",
	"postgres":  "PostgreSQL, one broker",
	"postgres2": "PostgreSQL, two brokers round-robin",
}

func parseStores(s string) ([]string, error) {
	return parseChoices(s, allStores, func(f string) error {
		return fmt.Errorf("-stores: %q is not one of %s", f, strings.Join(allStores, ","))
	})
}

// storeRow is one line of the store comparison.
type storeRow struct {
	store, scenario string
	res             harness.Result
}

// runStores measures the refresh grant and token exchange on each store
// setup of o.stores, in this one run, and prints one Markdown table.
// PostgreSQL setups each get a new database next to o.pgDSN, dropped at the
// end; two-broker setups spread every request round-robin over the brokers.
func runStores(ctx context.Context, o options, out io.Writer) error {
	load0, started := harness.LoadAvg(), time.Now()
	var rows []storeRow
	for _, kind := range o.stores {
		h := harness.Options{Dir: filepath.Join(o.dir, kind), NoSync: o.noSync, Algorithm: o.alg, MaxConns: o.pgMaxConns, Replicas: 1}
		if err := os.MkdirAll(h.Dir, 0o700); err != nil {
			return err
		}
		if kind != "bolt" {
			if o.pgDSN == "" {
				return fmt.Errorf("-stores %s needs -pg-dsn (or KEYWARD_BENCH_POSTGRES_DSN): a postgres:// URL of a role that may create databases", kind)
			}
			dsn, drop, err := harness.CreateDatabase(ctx, o.pgDSN, fmt.Sprintf("keyward_bench_%d_%s", os.Getpid(), kind))
			if err != nil {
				return err
			}
			defer func() { _ = drop(context.WithoutCancel(ctx)) }()
			h.Postgres = dsn
			if kind == "postgres2" {
				h.Replicas = 2
			}
		}
		env, err := harness.Start(ctx, h)
		if err != nil {
			return fmt.Errorf("%s: %w", kind, err)
		}
		for _, sc := range []string{"refresh", "exchange-" + o.alg} {
			s, err := newScenario(ctx, sc, env, slices.Max(o.conc))
			if err != nil {
				env.Close()
				return fmt.Errorf("%s: %w", kind, err)
			}
			for _, c := range o.conc {
				fmt.Fprintf(os.Stderr, "running %s on %s c=%d …\n", sc, kind, c)
				tr := harness.NewTransport(c)
				l := harness.Load{Concurrency: c, Warmup: o.warmup, Duration: o.duration, NewOp: s.ops(env.RoundRobin(tr)), Counter: env.StoreWrites.Load}
				r := storeRow{store: kind, scenario: sc, res: harness.Run(ctx, l)}
				s.collectSteps()
				tr.CloseIdleConnections()
				if r.res.FirstError != nil {
					fmt.Fprintf(os.Stderr, "  %s on %s c=%d: %d errors in the window; first: %v\n", sc, kind, c, r.res.Errors, r.res.FirstError)
				}
				rows = append(rows, r)
				if ctx.Err() != nil {
					env.Close()
					return ctx.Err()
				}
			}
		}
		env.Close()
	}
	m := harness.Describe(o.dir)
	fmt.Fprintf(out, "### Stores: bbolt and PostgreSQL, one and two brokers (%s)\n\n", started.UTC().Format("2006-01-02"))
	fmt.Fprintf(out, "%d CPUs (%s), GOMAXPROCS %d, %s, %s; bbolt on %s, fsync %s; signing %s; %v per row after %v warm-up; load average %s → %s.\n\n",
		m.CPUs, m.CPUModel, m.GOMAXPROCS, m.GoVersion, m.Kernel, m.DirFS, map[bool]string{true: "off", false: "on"}[o.noSync], o.alg, o.duration, o.warmup, load0, harness.LoadAvg())
	fmt.Fprintln(out, "| store | operation | clients | req/s | p50 | p99 | store writes/op | errors |")
	fmt.Fprintln(out, "|---|---|--:|--:|--:|--:|--:|--:|")
	for _, r := range rows {
		writes := "-"
		if r.res.Ops > 0 {
			writes = fmt.Sprintf("%.1f", float64(r.res.Counted)/float64(r.res.Ops))
		}
		op := "refresh grant"
		if strings.HasPrefix(r.scenario, "exchange-") {
			op = "token exchange (" + strings.TrimPrefix(r.scenario, "exchange-") + ")"
		}
		fmt.Fprintf(out, "| %s | %s | %d | %.0f | %s | %s | %s | %d |\n", storeLabels[r.store], op, r.res.Concurrency, r.res.Rate(),
			r.res.Percentile(50).Round(10*time.Microsecond), r.res.Percentile(99).Round(10*time.Microsecond), writes, r.res.Errors)
	}
	fmt.Fprintf(out, "\nWall time %v. The load generator, the brokers and the fake IdPs share this process; PostgreSQL runs in its own processes on the same machine.\n",
		time.Since(started).Round(time.Second))
	return nil
}
