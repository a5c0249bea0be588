package web

import (
	"crypto/tls"
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestSecureTransport(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	tests := []struct {
		name   string
		remote string
		xfp    []string
		tls    bool
		want   bool
	}{
		{"loopback peer", "127.0.0.1:5000", nil, false, true},
		{"loopback v6", "[::1]:5000", nil, false, true},
		{"remote peer over http", "192.0.2.7:5000", nil, false, false},
		{"remote peer over TLS", "192.0.2.7:5000", nil, true, true},
		{"remote peer claiming https", "192.0.2.7:5000", []string{"https"}, false, false},
		{"trusted proxy that terminated TLS", "10.0.0.2:5000", []string{"https"}, false, true},
		{"trusted proxy, upper case", "10.0.0.2:5000", []string{"HTTPS"}, false, true},
		{"trusted proxy appending http after a client's https", "10.0.0.2:5000", []string{"https, http"}, false, false},
		{"trusted proxy adding a line after a client's https", "10.0.0.2:5000", []string{"https", "http"}, false, false},
		{"trusted proxy saying nothing", "10.0.0.2:5000", nil, false, false},
		{"local proxy that got plain http", "127.0.0.1:5000", []string{"http"}, false, false},
		{"no address", "", nil, false, false},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "http://keyward.example/scim/v2/corp/Users", nil)
		r.RemoteAddr = tt.remote
		for _, v := range tt.xfp {
			r.Header.Add("X-Forwarded-Proto", v)
		}
		if tt.tls {
			r.TLS = &tls.ConnectionState{}
		}
		if got := secureTransport(r, trusted); got != tt.want {
			t.Errorf("%s: secureTransport = %t, want %t", tt.name, got, tt.want)
		}
	}
}
