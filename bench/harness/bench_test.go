package harness

import (
	"net/http"
	"runtime"
	"testing"
	"time"
)

// Run with, for example:
//
//	go test -run '^$' -bench . -benchtime 2s ./bench/harness/
//
// Each benchmark measures whole HTTP round trips on loopback, client and
// servers in this process, and has a Bare counterpart to compare against.
// Nothing here asserts on speed.

// parallelism: goroutines per GOMAXPROCS in the parallel benchmarks,
// standing in for 32 concurrent clients on two cores.
const parallelism = 16

func startEnv(b *testing.B, noSync bool) *Env {
	b.Helper()
	env, err := Start(b.Context(), Options{Dir: b.TempDir(), NoSync: noSync})
	if err != nil {
		b.Fatalf("Start: %v", err)
	}
	b.Cleanup(env.Close)
	return env
}

func BenchmarkBare(b *testing.B) {
	env := startEnv(b, true)
	b.Run("serial", func(b *testing.B) {
		benchGet(b, env.BareURL+"/", 1)
	})
	b.Run("parallel", func(b *testing.B) {
		benchGet(b, env.BareURL+"/", parallelism)
	})
}

func BenchmarkKeys(b *testing.B) {
	env := startEnv(b, true)
	benchGet(b, env.BrokerURL+"/keys", parallelism)
}

func benchGet(b *testing.B, url string, par int) {
	tr := NewTransport(par * runtime.GOMAXPROCS(0))
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	b.ReportAllocs()
	if par == 1 {
		for b.Loop() {
			if err := Get(b.Context(), client, url); err != nil {
				b.Fatal(err)
			}
		}
		return
	}
	b.SetParallelism(par)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := Get(b.Context(), client, url); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkRefreshGrant: one op is one refresh_token grant on a chain of its
// own, with bbolt fsync on (production) and off.
func BenchmarkRefreshGrant(b *testing.B) {
	for _, tc := range []struct {
		name   string
		noSync bool
	}{{"fsync", false}, {"nosync", true}} {
		b.Run(tc.name, func(b *testing.B) {
			env := startEnv(b, tc.noSync)
			b.Run("serial", func(b *testing.B) {
				benchRefresh(b, env, 1)
			})
			b.Run("parallel", func(b *testing.B) {
				benchRefresh(b, env, parallelism)
			})
		})
	}
}

func benchRefresh(b *testing.B, env *Env, par int) {
	n := par * runtime.GOMAXPROCS(0)
	if par == 1 {
		n = 1
	}
	tr := NewTransport(n)
	defer tr.CloseIdleConnections()
	sc := NewSignInClient(env.BrokerURL, tr)
	chains := make(chan *Refresher, n)
	for range n {
		tok, err := sc.SignIn(b.Context(), nil)
		if err != nil {
			b.Fatalf("SignIn: %v", err)
		}
		chains <- NewRefresher(env.BrokerURL, tr, tok.RefreshToken)
	}
	b.ReportAllocs()
	b.ResetTimer()
	if par == 1 {
		r := <-chains
		for b.Loop() {
			if err := r.Refresh(b.Context()); err != nil {
				b.Fatal(err)
			}
		}
		return
	}
	b.SetParallelism(par)
	b.RunParallel(func(pb *testing.PB) {
		r := <-chains
		for pb.Next() {
			if err := r.Refresh(b.Context()); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkSignIn: one op is a whole sign-in (authorize → upstream →
// callback → token) with a fresh cookie jar; the fake upstream's work (an
// RS256 ID token) is included.
func BenchmarkSignIn(b *testing.B) {
	env := startEnv(b, false)
	tr := NewTransport(8)
	defer tr.CloseIdleConnections()
	sc := NewSignInClient(env.BrokerURL, tr)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := sc.SignIn(b.Context(), nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkExchange: one op is one RFC 8693 token exchange (a CI JWT, RS256
// by the fake CI issuer, for a Keyward access token) with the issuer's keys
// cached, per signing algorithm, with bbolt fsync on (production) and off.
// For a CPU profile of the broker's side:
//
//	go test -run '^$' -bench 'Exchange/ES256/nosync/parallel' -cpuprofile cpu.out ./bench/harness/
func BenchmarkExchange(b *testing.B) {
	for _, alg := range []string{"ES256", "RS256"} {
		for _, tc := range []struct {
			name   string
			noSync bool
		}{{"fsync", false}, {"nosync", true}} {
			b.Run(alg+"/"+tc.name, func(b *testing.B) {
				env, err := Start(b.Context(), Options{Dir: b.TempDir(), NoSync: tc.noSync, Algorithm: alg})
				if err != nil {
					b.Fatalf("Start: %v", err)
				}
				b.Cleanup(env.Close)
				subject := env.MintCIToken(time.Hour)
				tr := NewTransport(parallelism * runtime.GOMAXPROCS(0))
				defer tr.CloseIdleConnections()
				// The first exchange discovers the CI issuer and fetches its keys.
				if err := NewExchanger(env.BrokerURL, tr, subject).Exchange(b.Context()); err != nil {
					b.Fatalf("first exchange: %v", err)
				}
				b.Run("serial", func(b *testing.B) {
					x := NewExchanger(env.BrokerURL, tr, subject)
					b.ReportAllocs()
					for b.Loop() {
						if err := x.Exchange(b.Context()); err != nil {
							b.Fatal(err)
						}
					}
				})
				b.Run("parallel", func(b *testing.B) {
					b.ReportAllocs()
					b.SetParallelism(parallelism)
					b.RunParallel(func(pb *testing.PB) {
						x := NewExchanger(env.BrokerURL, tr, subject)
						for pb.Next() {
							if err := x.Exchange(b.Context()); err != nil {
								b.Error(err)
								return
							}
						}
					})
				})
			})
		}
	}
}
