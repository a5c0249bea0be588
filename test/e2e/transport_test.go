package e2e

import (
	"fmt"
	"net/http"
	"net/netip"
	"testing"

	"github.com/keyward/keyward/web"
)

// peerHeader names the TCP peer a test request pretends to come from: every
// test request reaches the broker from loopback, so the wrapper below sets
// RemoteAddr from it as a connection from that address would.
const peerHeader = "X-Test-Peer"

// asPeer makes the broker see the request's peerHeader as its TCP peer,
// and believe X-Forwarded-* only from 10.0.0.0/8.
func asPeer(o *envOptions) {
	prev := o.web
	o.web = func(wc *web.Config) {
		prev(wc)
		wc.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	}
	o.handler = func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if p := r.Header.Get(peerHeader); p != "" {
				r.RemoteAddr = p
				r.Header.Del(peerHeader)
			}
			h.ServeHTTP(w, r)
		})
	}
}

// transportCases: who may send a bearer token over plain http. Only a
// configured trusted proxy is believed when it says the client used https;
// anyone else's X-Forwarded-Proto is a client's word.
var transportCases = []struct {
	name   string
	peer   string
	proto  string
	secure bool
}{
	{"outsider claiming https", "203.0.113.7:4711", "https", false},
	{"outsider over plain http", "203.0.113.7:4711", "", false},
	{"trusted proxy that terminated TLS", "10.0.0.2:5000", "https", true},
	{"trusted proxy that got plain http", "10.0.0.2:5000", "http", false},
	{"trusted proxy that says nothing", "10.0.0.2:5000", "", false},
	{"loopback", "127.0.0.1:5000", "", true},
	{"loopback proxy that got plain http", "127.0.0.1:5000", "http", false},
}

// TestSCIMPlainHTTPTrustsOnlyTrustedProxies: a SCIM request from a peer
// that is not a trusted proxy is refused over plain http whatever its
// X-Forwarded-Proto says (the old rule believed anyone's).
func TestSCIMPlainHTTPTrustsOnlyTrustedProxies(t *testing.T) {
	e := newSCIMEnv(t, asPeer)
	for _, tt := range transportCases {
		t.Run(tt.name, func(t *testing.T) {
			h := []string{peerHeader, tt.peer}
			if tt.proto != "" {
				h = append(h, "X-Forwarded-Proto", tt.proto)
			}
			r := e.scim(t, http.MethodGet, "/Users", "", h...)
			want := http.StatusForbidden
			if tt.secure {
				want = http.StatusOK
			}
			if r.status != want {
				t.Errorf("GET /Users from %s (X-Forwarded-Proto %q) = %d %s, want %d", tt.peer, tt.proto, r.status, r.raw, want)
			}
		})
	}
}

// TestSSFPushRefusesPlainHTTP: the push endpoint carries a bearer token
// too, so it follows the same rule (it had none: any peer over plain http
// was served).
func TestSSFPushRefusesPlainHTTP(t *testing.T) {
	e := newSSFEnv(t, asPeer)
	issSub := map[string]any{"format": "iss_sub", "iss": e.idps[0].URL(), "sub": "demo-bob"}
	for i, tt := range transportCases {
		t.Run(tt.name, func(t *testing.T) {
			raw := e.tr.sign(t, e.set(fmt.Sprintf("t%d", i), issSub, "https://schemas.example.com/event/new-thing"), nil, "secevent+jwt")
			h := []string{peerHeader, tt.peer}
			if tt.proto != "" {
				h = append(h, "X-Forwarded-Proto", tt.proto)
			}
			status, m := e.push(t, raw, h...)
			want, wantErr := http.StatusForbidden, "access_denied"
			if tt.secure {
				want, wantErr = http.StatusAccepted, ""
			}
			if status != want || (wantErr != "" && m["err"] != wantErr) {
				t.Errorf("push from %s (X-Forwarded-Proto %q) = %d %v, want %d %s", tt.peer, tt.proto, status, m, want, wantErr)
			}
		})
	}
}
