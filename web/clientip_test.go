package web

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestClientIP(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:ffff::/48")}
	tests := []struct {
		name    string
		remote  string
		xff     []string // X-Forwarded-For header lines
		trusted []netip.Prefix
		want    string // "" for the invalid address
	}{
		{name: "no proxy", remote: "192.0.2.1:5000", want: "192.0.2.1"},
		{name: "xff from an untrusted peer is ignored", remote: "192.0.2.1:5000", xff: []string{"198.51.100.7"}, trusted: proxies, want: "192.0.2.1"},
		{name: "xff ignored without trusted proxies", remote: "10.0.0.5:5000", xff: []string{"198.51.100.7"}, want: "10.0.0.5"},
		{name: "trusted peer", remote: "10.0.0.5:5000", xff: []string{"198.51.100.7"}, trusted: proxies, want: "198.51.100.7"},
		{
			name: "rightmost untrusted hop, client-written hops on the left ignored", remote: "10.0.0.5:5000",
			xff: []string{"203.0.113.66, 198.51.100.7, 10.1.2.3"}, trusted: proxies, want: "198.51.100.7",
		},
		{
			name: "several header lines read as one list", remote: "10.0.0.5:5000",
			xff: []string{"203.0.113.66", "198.51.100.7,10.1.2.3"}, trusted: proxies, want: "198.51.100.7",
		},
		{name: "every hop trusted: the leftmost", remote: "10.0.0.5:5000", xff: []string{"10.9.9.9, 10.1.2.3"}, trusted: proxies, want: "10.9.9.9"},
		{name: "trusted peer without xff", remote: "10.0.0.5:5000", trusted: proxies, want: "10.0.0.5"},
		{
			name: "malformed hop ends the walk at the last good one", remote: "10.0.0.5:5000",
			xff: []string{"198.51.100.7, garbage, 10.1.2.3"}, trusted: proxies, want: "10.1.2.3",
		},
		{
			name: "hops with ports and IPv6", remote: "[2001:db8:ffff::1]:443",
			xff: []string{"[2001:db8:1::5]:1234, 10.1.2.3:80"}, trusted: proxies, want: "2001:db8:1::5",
		},
		{name: "IPv4-mapped peer is unmapped", remote: "[::ffff:10.0.0.5]:5000", xff: []string{"::ffff:198.51.100.7"}, trusted: proxies, want: "198.51.100.7"},
		{name: "unparsable remote address", remote: "@unix", xff: []string{"198.51.100.7"}, trusted: proxies, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/authorize", nil)
			r.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			got := clientIP(r, tt.trusted)
			var want netip.Addr
			if tt.want != "" {
				want = netip.MustParseAddr(tt.want)
			}
			if got != want {
				t.Errorf("clientIP(RemoteAddr %q, X-Forwarded-For %q) = %v, want %v", tt.remote, tt.xff, got, want)
			}
		})
	}
}
