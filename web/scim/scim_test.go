package scim

import (
	"crypto/tls"
	"net/http/httptest"
	"testing"
)

func TestSecureTransport(t *testing.T) {
	tests := []struct {
		name   string
		remote string
		xfp    string
		tls    bool
		want   bool
	}{
		{"loopback peer", "127.0.0.1:5000", "", false, true},
		{"loopback v6", "[::1]:5000", "", false, true},
		{"remote peer over http", "192.0.2.7:5000", "", false, false},
		{"remote peer over TLS", "192.0.2.7:5000", "", true, true},
		{"proxy that terminated TLS", "10.0.0.2:5000", "https", false, true},
		{"local proxy that got plain http", "127.0.0.1:5000", "http", false, false},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "http://keyward.example/scim/v2/corp/Users", nil)
		r.RemoteAddr = tt.remote
		if tt.xfp != "" {
			r.Header.Set("X-Forwarded-Proto", tt.xfp)
		}
		if tt.tls {
			r.TLS = &tls.ConnectionState{}
		}
		if got := secureTransport(r); got != tt.want {
			t.Errorf("%s: secureTransport = %t, want %t", tt.name, got, tt.want)
		}
	}
}
