package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keyward/keyward/bench/harness"
)

// scenario makes the ops of one scenario for a run; collectSteps returns and
// resets the per-leg timings of sign-ins (nil for other scenarios).
type scenario struct {
	ops          func(tr http.RoundTripper) func(i int) harness.Op
	collectSteps func() *stepStats
}

func newScenario(ctx context.Context, name string, env *harness.Env, maxC int) (*scenario, error) {
	none := func() *stepStats { return nil }
	get := func(url string) *scenario {
		return &scenario{collectSteps: none, ops: func(tr http.RoundTripper) func(int) harness.Op {
			client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
			return func(int) harness.Op {
				return func(ctx context.Context, _ bool) error { return harness.Get(ctx, client, url) }
			}
		}}
	}
	switch name {
	case "bare":
		return get(env.BareURL + "/"), nil
	case "keys":
		return get(env.BrokerURL + "/keys"), nil
	case "refresh":
		return refreshScenario(ctx, env, maxC)
	case "signin":
		return signinScenario(env, maxC), nil
	}
	if _, ok := strings.CutPrefix(name, "exchange-"); ok {
		return exchangeScenario(ctx, env)
	}
	return nil, fmt.Errorf("unknown scenario %q", name)
}

// refreshScenario gives each worker its own refresh-token chain, started by
// a real sign-in; one op is one refresh grant.
func refreshScenario(ctx context.Context, env *harness.Env, maxC int) (*scenario, error) {
	tr := harness.NewTransport(4)
	defer tr.CloseIdleConnections()
	sc := harness.NewSignInClient(env.BrokerURL, tr)
	chains := make([]*harness.Refresher, maxC)
	tokens := make([]string, maxC)
	for i := range tokens {
		tok, err := sc.SignIn(ctx, nil)
		if err != nil {
			return nil, fmt.Errorf("sign in for refresh chain %d: %w", i, err)
		}
		tokens[i] = tok.RefreshToken
	}
	return &scenario{
		collectSteps: func() *stepStats {
			// Keep each chain's current token for the next run.
			for i, r := range chains {
				if r != nil {
					tokens[i] = r.Token()
				}
			}
			return nil
		},
		ops: func(tr http.RoundTripper) func(int) harness.Op {
			signIn := harness.NewSignInClient(env.BrokerURL, tr)
			return func(i int) harness.Op {
				r := harness.NewRefresher(env.BrokerURL, tr, tokens[i])
				chains[i] = r
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
			}
		},
	}, nil
}

// exchangeScenario exchanges one CI token (valid for an hour, reused: the
// trust rule is not single use) for an access token; one op is one exchange.
// One exchange before the run fetches the CI issuer's discovery and keys, so
// the run measures cached issuer keys.
func exchangeScenario(ctx context.Context, env *harness.Env) (*scenario, error) {
	subject := env.MintCIToken(time.Hour)
	tr := harness.NewTransport(1)
	defer tr.CloseIdleConnections()
	if err := harness.NewExchanger(env.BrokerURL, tr, subject).Exchange(ctx); err != nil {
		return nil, fmt.Errorf("first exchange: %w", err)
	}
	return &scenario{collectSteps: func() *stepStats { return nil }, ops: func(tr http.RoundTripper) func(int) harness.Op {
		return func(int) harness.Op {
			x := harness.NewExchanger(env.BrokerURL, tr, subject)
			return func(ctx context.Context, _ bool) error { return x.Exchange(ctx) }
		}
	}}, nil
}

// signinScenario runs whole sign-ins, each with a fresh cookie jar.
func signinScenario(env *harness.Env, maxC int) *scenario {
	var mu sync.Mutex
	perWorker := make([][]harness.Steps, maxC)
	return &scenario{
		collectSteps: func() *stepStats {
			mu.Lock()
			defer mu.Unlock()
			var all []harness.Steps
			for i := range perWorker {
				all = append(all, perWorker[i]...)
				perWorker[i] = nil
			}
			return newStepStats(all)
		},
		ops: func(tr http.RoundTripper) func(int) harness.Op {
			sc := harness.NewSignInClient(env.BrokerURL, tr)
			return func(i int) harness.Op {
				return func(ctx context.Context, measured bool) error {
					var st harness.Steps
					if _, err := sc.SignIn(ctx, &st); err != nil {
						return err
					}
					if measured {
						mu.Lock()
						perWorker[i] = append(perWorker[i], st)
						mu.Unlock()
					}
					return nil
				}
			}
		},
	}
}

// stepStats holds each sign-in leg's sorted durations.
type stepStats struct {
	names []string
	legs  [][]time.Duration
}

func newStepStats(all []harness.Steps) *stepStats {
	s := &stepStats{names: []string{"authorize", "upstream", "callback", "token"}, legs: make([][]time.Duration, 4)}
	for _, st := range all {
		for i, d := range []time.Duration{st.Authorize, st.Upstream, st.Callback, st.Token} {
			s.legs[i] = append(s.legs[i], d)
		}
	}
	for i := range s.legs {
		slices.Sort(s.legs[i])
	}
	return s
}

func (s *stepStats) percentile(leg int, p float64) time.Duration {
	return harness.Result{Latencies: s.legs[leg]}.Percentile(p)
}
