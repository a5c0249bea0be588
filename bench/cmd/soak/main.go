// Command soak runs Keyward's broker, a fake upstream, a CI issuer and an
// edge verifier on loopback under mixed traffic for a bounded time (sign-ins,
// refreshes, token exchanges, edge checks through web/verify, a
// deprovisioning every few seconds, a key rotation halfway), then checks
// that goroutines, open file descriptors, heap and the store stayed flat
// (Bounds) and that no request failed except by design. docs/performance.md
// ("Soak") has the figures.
//
//	go run ./bench/cmd/soak -duration 3m
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"
)

func main() {
	duration := flag.Duration("duration", 3*time.Minute, "load after the warm-up (1s..2h)")
	warmup := flag.Duration("warmup", time.Minute, "load before the baseline snapshot (long enough for the store file to reach its size)")
	nosync := flag.Bool("nosync", false, "skip bbolt's fsync")
	every := flag.Duration("deprovision-every", 3*time.Second, "one person is deprovisioned this often (and reinstated a second later)")
	flag.Parse()
	if *duration < time.Second || *duration > 2*time.Hour || *warmup < time.Second || *every < 1500*time.Millisecond {
		fmt.Fprintln(os.Stderr, "soak: -duration must be 1s..2h, -warmup at least 1s, -deprovision-every at least 1.5s")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *warmup+*duration+5*time.Minute)
	defer cancel()
	r, err := Run(ctx, defaultConfig(*warmup, *duration, *nosync, *every))
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
	out, _ := json.MarshalIndent(r, "", "  ")
	fmt.Println(string(out))
	if err := r.Check(); err != nil {
		fmt.Fprintln(os.Stderr, "soak: FAIL:", err)
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, "soak: PASS")
}

// defaultConfig is the traffic mix of both the command and the short test.
func defaultConfig(warmup, duration time.Duration, nosync bool, every time.Duration) Config {
	return Config{
		Warmup: warmup, Duration: duration, NoSync: nosync,
		Persons: 10, DeprovisionEvery: every, Refreshers: 3, Edges: 2, GCEvery: 30 * time.Second, Log: os.Stderr,
	}
}
