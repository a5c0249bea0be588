package main

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/web"
	"github.com/keyward/keyward/web/httpserver"
)

// LimitsConfig bounds what clients can make Keyward write. An omitted or
// zero field takes the broker's default (broker.LoginLimits).
type LimitsConfig struct {
	// LoginAttemptsPerMinute is how many login attempts one client address
	// (an IPv4 address or an IPv6 /64) may start per minute, sustained:
	// each /authorize that sends the person to sign in, and each choice on
	// the chooser. More get a 429 page. Single sign-on does not count.
	// Default: 60. A ceiling of 50 per second for all clients together
	// always applies.
	LoginAttemptsPerMinute int `yaml:"loginAttemptsPerMinute,omitempty"`
	// LoginAttemptsBurst is how many one client address may start at once.
	// Default: 30.
	LoginAttemptsBurst int `yaml:"loginAttemptsBurst,omitempty"`
	// MaxConnections caps the connections each listener (main, metrics,
	// admin) holds open at once; further clients wait until one closes.
	// Default: 4096 (web/httpserver).
	MaxConnections int `yaml:"maxConnections,omitempty"`
	// Concurrency bounds the requests in flight per endpoint class; beyond
	// it a request is answered at once with 503 and Retry-After
	// (web.Concurrency has the defaults and their reasoning).
	Concurrency ConcurrencyConfig `yaml:"concurrency,omitempty"`
	// ClientTokenRequestsPerSecond is each client's sustained rate at
	// /token (a confidential client by id, a public client per address);
	// more get 429. Default: 500.
	ClientTokenRequestsPerSecond int `yaml:"clientTokenRequestsPerSecond,omitempty"`
	// ClientTokenBurst is how many /token requests one client may make at
	// once. Default: 1000.
	ClientTokenBurst int `yaml:"clientTokenBurst,omitempty"`
	// FailedClientAuthPerMinute is how many failed client authentications
	// at /token one address may make per minute for one client id; more
	// get 429 without a secret comparison. Default: 10.
	FailedClientAuthPerMinute int `yaml:"failedClientAuthPerMinute,omitempty"`
	// FailedClientAuthBurst. Default: 10.
	FailedClientAuthBurst int `yaml:"failedClientAuthBurst,omitempty"`
}

// ConcurrencyConfig is limits.concurrency: requests in flight per endpoint
// class. Omitted or 0: the default; -1: no limit.
type ConcurrencyConfig struct {
	// Token: /token, /revoke, /introspect, /userinfo. Default: 32 per CPU,
	// at least 64.
	Token int `yaml:"token,omitempty"`
	// Browser: /authorize, /login, /callback, /end_session. Default: 32 per
	// CPU, at least 64.
	Browser int `yaml:"browser,omitempty"`
	// Admin: the admin API. Default: 8 per CPU, at least 16.
	Admin int `yaml:"admin,omitempty"`
}

// loginLimits converts the limits for broker.Config.
func (l LimitsConfig) loginLimits() broker.LoginLimits {
	return broker.LoginLimits{PerMinute: l.LoginAttemptsPerMinute, Burst: l.LoginAttemptsBurst}
}

// tokenLimits converts the limits for broker.Config.
func (l LimitsConfig) tokenLimits() broker.TokenLimits {
	return broker.TokenLimits{
		PerSecond: l.ClientTokenRequestsPerSecond, Burst: l.ClientTokenBurst,
		FailuresPerMinute: l.FailedClientAuthPerMinute, FailureBurst: l.FailedClientAuthBurst,
	}
}

// concurrency converts limits.concurrency for web.Config.
func (l LimitsConfig) concurrency() web.Concurrency {
	return web.Concurrency{Token: l.Concurrency.Token, Browser: l.Concurrency.Browser, Admin: l.Concurrency.Admin}
}

func (c *Config) validateLimits(p *problems) {
	if n := c.Limits.LoginAttemptsPerMinute; n < 0 {
		p.Add("limits.loginAttemptsPerMinute", "%d must not be negative; omit it for the default of %d", n, broker.DefaultLoginPerMinute)
	}
	if n := c.Limits.LoginAttemptsBurst; n < 0 {
		p.Add("limits.loginAttemptsBurst", "%d must not be negative; omit it for the default of %d", n, broker.DefaultLoginBurst)
	}
	for _, f := range []struct {
		path string
		n    int
		def  int
	}{
		{"limits.clientTokenRequestsPerSecond", c.Limits.ClientTokenRequestsPerSecond, broker.DefaultTokenPerSecond},
		{"limits.clientTokenBurst", c.Limits.ClientTokenBurst, broker.DefaultTokenBurst},
		{"limits.failedClientAuthPerMinute", c.Limits.FailedClientAuthPerMinute, broker.DefaultTokenFailuresPerMinute},
		{"limits.failedClientAuthBurst", c.Limits.FailedClientAuthBurst, broker.DefaultTokenFailureBurst},
	} {
		if f.n < 0 {
			p.Add(f.path, "%d must not be negative; omit it for the default of %d", f.n, f.def)
		}
	}
	def := web.Concurrency{}.Defaults()
	for _, f := range []struct {
		path   string
		n, def int
	}{
		{"limits.concurrency.token", c.Limits.Concurrency.Token, def.Token},
		{"limits.concurrency.browser", c.Limits.Concurrency.Browser, def.Browser},
		{"limits.concurrency.admin", c.Limits.Concurrency.Admin, def.Admin},
	} {
		if f.n < -1 {
			p.Add(f.path, "%d: use a positive number of requests in flight (omit it for the default of %d on this machine), or -1 for no limit", f.n, f.def)
		}
	}
	if err := httpserver.ValidateMaxConnections(c.Limits.MaxConnections); err != nil {
		p.Add("limits.maxConnections", "%v", err)
	}
	for i, s := range c.TrustedProxies {
		if _, err := parseTrustedProxy(s); err != nil {
			p.Add(fmt.Sprintf("trustedProxies[%d]", i), "%v", err)
		}
	}
}

// trustedProxies parses TrustedProxies (validated) for web.Config.
func (c *Config) trustedProxies() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range c.TrustedProxies {
		if p, err := parseTrustedProxy(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// parseTrustedProxy reads a CIDR or a single address (as /32 or /128).
func parseTrustedProxy(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	var p netip.Prefix
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Zone() != "" {
			return p, fmt.Errorf("%q has a zone; write the address without %%%s", s, a.Zone())
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	switch {
	case err != nil:
		return p, fmt.Errorf("%q is not a CIDR or an address; write it like 10.0.0.0/8, 192.0.2.7 or 2001:db8::/32", s)
	case p != p.Masked():
		return p, fmt.Errorf("%q has host bits set; write the network, %s", s, p.Masked())
	case p.Bits() == 0:
		return p, fmt.Errorf("%q trusts every address, so any client could pick the address it is limited by; list your proxies' networks", s)
	}
	if p.Addr().Is4In6() {
		// An IPv4-mapped network covers IPv4 peers, which clientIP unmaps.
		if p.Bits() < 96 {
			return p, fmt.Errorf("%q is an IPv4-mapped network shorter than /96; write the IPv4 network instead", s)
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p, nil
}
