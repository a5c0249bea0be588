package main

// This file holds what the binary adds to verify.yaml's revocationFeed
// section (web/verify owns its defaults and validation): reading its secret
// file, and the feed's metrics.

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyward/keyward/web/verify"
)

// revocationConfig is the revocationFeed section with its client secret
// read; nil without the section. It is called once Validate has passed.
func (c *VerifyConfig) revocationConfig() (*verify.RevocationConfig, error) {
	if c.Revocation == nil {
		return nil, nil
	}
	rc := *c.Revocation
	var p problems
	rc.ClientSecret = readFeedSecret(&p, &rc)
	if err := p.Err(); err != nil {
		return nil, err
	}
	return &rc, nil
}

// readFeedSecret reads the feed client's secret.
func readFeedSecret(p *problems, f *verify.RevocationConfig) string {
	return readSecret(p, "revocationFeed.clientSecretFile", f.ClientSecretFile, "")
}

// registerRevocationMetrics exports the feed's state, read from v at each
// scrape.
func registerRevocationMetrics(reg prometheus.Registerer, v *verify.Verifier) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "keyward_verify_revocation_feed_lag_seconds",
			Help: "Seconds since the revocation feed was last read completely (since start when it never was). Above revocationFeed.maxStaleness, tokens are refused (onStale: deny).",
		}, func() float64 {
			lag, _, _ := v.RevocationStatus()
			return lag.Seconds()
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "keyward_verify_revocation_entries",
			Help: "Subjects and sessions the revocation feed currently revokes.",
		}, func() float64 {
			_, _, n := v.RevocationStatus()
			return float64(n)
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "keyward_verify_revocation_stale_denials_total",
			Help: "Tokens refused with 503 because the revocation feed was stale (onStale: deny).",
		}, func() float64 { return float64(v.RevocationStaleDenials()) }),
	)
}

// revocationLogAttrs describe the feed in the start-up line.
func (c *VerifyConfig) revocationLogAttrs() []any {
	f := c.Revocation
	if f == nil {
		return []any{"revocation_feed", false}
	}
	return []any{"revocation_feed", fmt.Sprintf("%s every %s, on stale %s after %s", f.URL, Duration(f.Interval), f.OnStale, Duration(f.MaxStaleness))}
}
