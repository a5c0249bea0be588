package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/web"
)

func TestLimitsConfig(t *testing.T) {
	c := mustParse(t, validYAML+`
trustedProxies: [10.0.0.0/8, 192.0.2.7, "2001:db8::/32", "::ffff:172.16.0.0/108"]
limits: {loginAttemptsPerMinute: 120, loginAttemptsBurst: 40}
`)
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	want := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"),
		netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("172.16.0.0/12"),
	}
	if diff := cmp.Diff(want, c.trustedProxies(), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("trustedProxies() (-want +got):\n%s", diff)
	}
	if got := c.Limits.loginLimits(); got != (broker.LoginLimits{PerMinute: 120, Burst: 40}) {
		t.Errorf("loginLimits() = %+v, want PerMinute 120, Burst 40", got)
	}
	c = mustParse(t, validYAML+`
limits:
  concurrency: {token: 100, browser: -1}
  clientTokenRequestsPerSecond: 20
  clientTokenBurst: 40
  failedClientAuthPerMinute: 5
  failedClientAuthBurst: 6
`)
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	if got, want := c.Limits.tokenLimits(), (broker.TokenLimits{PerSecond: 20, Burst: 40, FailuresPerMinute: 5, FailureBurst: 6}); got != want {
		t.Errorf("tokenLimits() = %+v, want %+v", got, want)
	}
	if got, want := c.Limits.concurrency(), (web.Concurrency{Token: 100, Browser: -1}); got != want {
		t.Errorf("concurrency() = %+v, want %+v", got, want)
	}
	// Omitted: zero, so the broker's defaults apply.
	if got := mustParse(t, validYAML).Limits.loginLimits(); got != (broker.LoginLimits{}) {
		t.Errorf("loginLimits() of an omitted section = %+v, want zero (the broker's defaults)", got)
	}
}

func TestValidateLimits(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(c *Config)
		want    []string
		wantMsg string
	}{
		{"negative rate", func(c *Config) { c.Limits.LoginAttemptsPerMinute = -1 }, []string{"limits.loginAttemptsPerMinute"}, "must not be negative"},
		{"negative burst", func(c *Config) { c.Limits.LoginAttemptsBurst = -5 }, []string{"limits.loginAttemptsBurst"}, "must not be negative"},
		{"negative connection cap", func(c *Config) { c.Limits.MaxConnections = -1 }, []string{"limits.maxConnections"}, "default of 4096"},
		{"negative token rate", func(c *Config) { c.Limits.ClientTokenRequestsPerSecond = -1 }, []string{"limits.clientTokenRequestsPerSecond"}, "default of 500"},
		{"negative failure burst", func(c *Config) { c.Limits.FailedClientAuthBurst = -1 }, []string{"limits.failedClientAuthBurst"}, "default of 10"},
		{"concurrency below -1", func(c *Config) { c.Limits.Concurrency.Token = -2 }, []string{"limits.concurrency.token"}, "-1 for no limit"},
		{"not a cidr", func(c *Config) { c.TrustedProxies = []string{"10.0.0.0/8", "proxy.internal"} }, []string{"trustedProxies[1]"}, "is not a CIDR or an address"},
		{"host bits", func(c *Config) { c.TrustedProxies = []string{"10.1.2.3/8"} }, []string{"trustedProxies[0]"}, "write the network, 10.0.0.0/8"},
		{"everything", func(c *Config) { c.TrustedProxies = []string{"0.0.0.0/0"} }, []string{"trustedProxies[0]"}, "trusts every address"},
		{"everything v6", func(c *Config) { c.TrustedProxies = []string{"::/0"} }, []string{"trustedProxies[0]"}, "trusts every address"},
		{"zone", func(c *Config) { c.TrustedProxies = []string{"fe80::1%eth0"} }, []string{"trustedProxies[0]"}, "has a zone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustParse(t, validYAML)
			tt.edit(c)
			err := c.Validate()
			if diff := cmp.Diff(tt.want, errorPaths(t, err)); diff != "" {
				t.Fatalf("Validate() problem paths (-want +got):\n%s", diff)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("Validate() = %q, want it to say %q", err, tt.wantMsg)
			}
		})
	}
}

func TestExampleLimits(t *testing.T) {
	// The commented-out trustedProxies and limits of examples/keyward.yaml,
	// uncommented, parse and validate with the values they document.
	data, err := os.ReadFile(filepath.Join("..", "..", "examples", "keyward.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	for _, line := range []string{"trustedProxies: [", "limits:\n", "  loginAttemptsPerMinute: ", "  loginAttemptsBurst: "} {
		if !strings.Contains(text, "\n# "+line) {
			t.Fatalf("examples/keyward.yaml lacks the commented-out line %q", line)
		}
		text = strings.Replace(text, "\n# "+line, "\n"+line, 1)
	}
	env := map[string]string{"KEYWARD_GOOGLE_CLIENT_SECRET": "g", "KEYWARD_UPSTREAM_SECRET": "u", "APP_SECRET": "a"}
	c, err := parseConfig([]byte(text), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatalf("parse the uncommented example: %v", err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	if len(c.trustedProxies()) != 1 || c.Limits != (LimitsConfig{LoginAttemptsPerMinute: 60, LoginAttemptsBurst: 30}) {
		t.Errorf("trustedProxies, limits = %v, %+v; want one proxy network and 60/min, burst 30", c.trustedProxies(), c.Limits)
	}
}
