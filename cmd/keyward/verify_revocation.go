package main

// This file holds verify.yaml's revocationFeed section: defaults,
// validation, the conversion into web/verify's RevocationConfig, and the
// feed's metrics.

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyward/keyward/cmd/config"
	"github.com/keyward/keyward/web/loopback"
	"github.com/keyward/keyward/web/verify"
)

// VerifyRevocationFeedConfig is verify.yaml's revocationFeed section. The
// verifier polls the broker's GET /revocations as a reader client (listed in
// revocationFeed.readers of keyward.yaml) and refuses a token whose subject
// or session was revoked after the token was issued.
type VerifyRevocationFeedConfig struct {
	// URL of the feed. Default: issuer + /revocations.
	URL string `yaml:"url,omitempty"`
	// Interval between polls; at least 1s. Default: 5s.
	Interval Duration `yaml:"interval,omitempty"`
	// MaxStaleness: when the feed has not been read for longer than this,
	// onStale decides. It must exceed interval. Default: 60s.
	MaxStaleness Duration `yaml:"maxStaleness,omitempty"`
	// OnStale is deny (503 for every token: fail closed) or allow (keep
	// verifying with the entries already read: fail open). Default: deny.
	OnStale string `yaml:"onStale,omitempty"`
	// ClientID is the verifier's reader client at the broker. Required.
	ClientID string `yaml:"clientID"`
	// ClientSecretFile holds that client's secret. Required.
	ClientSecretFile string `yaml:"clientSecretFile"`
}

const (
	minRevocationInterval = time.Second
	maxRevocationInterval = 5 * time.Minute
)

func (f *VerifyRevocationFeedConfig) withDefaults(issuer string) {
	if issuer != "" {
		setDefault(&f.URL, issuer+"/revocations")
	}
	setDefault(&f.Interval, Duration(verify.DefaultRevocationInterval))
	setDefault(&f.MaxStaleness, Duration(verify.DefaultMaxStaleness))
	setDefault(&f.OnStale, "deny")
}

func (c *VerifyConfig) validateRevocationFeed(p *problems) {
	f := c.RevocationFeed
	if f == nil {
		return
	}
	if u, err := url.Parse(f.URL); f.URL != "" && (err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.RawQuery != "" || u.Fragment != "") {
		p.Add("revocationFeed.url", "%q must be an https URL without query, e.g. https://sso.example.com/revocations", f.URL)
	} else if err == nil && u.Scheme == "http" && !loopback.Host(u.Hostname()) {
		p.Add("revocationFeed.url", "%q %s: the verifier sends its client secret there", f.URL, config.HTTPSHint)
	}
	switch d := time.Duration(f.Interval); {
	case d < minRevocationInterval:
		p.Add("revocationFeed.interval", "%s is too short; poll at most once a second (default 5s)", f.Interval)
	case d > maxRevocationInterval:
		p.Add("revocationFeed.interval", "%s is too long; use at most %s (a revoked token keeps working up to one interval)", f.Interval, Duration(maxRevocationInterval))
	}
	if f.MaxStaleness <= f.Interval {
		p.Add("revocationFeed.maxStaleness", "%s must exceed interval (%s); a few intervals, e.g. 60s, survive a short broker outage", f.MaxStaleness, f.Interval)
	}
	if f.OnStale != "deny" && f.OnStale != "allow" {
		p.Add("revocationFeed.onStale", "%q: use deny (refuse every token with 503 while the feed is stale: fail closed) or allow (fail open)", f.OnStale)
	}
	if strings.TrimSpace(f.ClientID) == "" {
		p.Add("revocationFeed.clientID", "set it to a client listed in revocationFeed.readers of keyward.yaml; only readers may see who was deprovisioned")
	}
	if f.ClientSecretFile == "" {
		p.Add("revocationFeed.clientSecretFile", "name the file holding that client's secret")
	}
}

// revocationConfig reads the feed's client secret and builds the library's
// config; nil without a revocationFeed section. It is called once Validate
// has passed.
func (c *VerifyConfig) revocationConfig() (*verify.RevocationConfig, error) {
	f := c.RevocationFeed
	if f == nil {
		return nil, nil
	}
	var p problems
	secret := f.readSecret(&p)
	if err := p.Err(); err != nil {
		return nil, err
	}
	return &verify.RevocationConfig{
		URL: f.URL, Interval: time.Duration(f.Interval), MaxStaleness: time.Duration(f.MaxStaleness),
		FailOpen: f.OnStale == "allow", ClientID: f.ClientID, ClientSecret: secret,
	}, nil
}

// readSecret reads the feed client's secret.
func (f *VerifyRevocationFeedConfig) readSecret(p *problems) string {
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
	f := c.RevocationFeed
	if f == nil {
		return []any{"revocation_feed", false}
	}
	return []any{"revocation_feed", fmt.Sprintf("%s every %s, on stale %s after %s", f.URL, f.Interval, f.OnStale, f.MaxStaleness)}
}
