package web

import (
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/keyward/keyward/web/loopback"
)

// clientIP is the address of the browser behind r: the TCP peer, unless
// the peer is a trusted proxy; then X-Forwarded-For is read from the right
// and the first address that is not a trusted proxy is the client. A
// client can write any X-Forwarded-For it likes, but only to the left of
// what the trusted proxies append, so it cannot choose its own address.
// When every hop is trusted, the leftmost is the client; a malformed hop
// ends the walk at the last good one. Invalid when RemoteAddr is not an
// address (the rate limit then puts such requests in one bucket).
func clientIP(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer := parseHop(r.RemoteAddr)
	if !peer.IsValid() || !isTrusted(peer, trusted) {
		return peer
	}
	hops := r.Header.Values("X-Forwarded-For")
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		parts := strings.Split(hops[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			hop := parseHop(strings.TrimSpace(parts[j]))
			if !hop.IsValid() {
				return client
			}
			client = hop
			if !isTrusted(hop, trusted) {
				return client
			}
		}
	}
	return client
}

// parseHop reads an address, with or without a port ("192.0.2.1",
// "192.0.2.1:443", "[2001:db8::1]:443", "2001:db8::1"); IPv4-mapped IPv6
// addresses become IPv4. Invalid when s is none of these.
func parseHop(s string) netip.Addr {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap()
	}
	host, _, err := net.SplitHostPort(s)
	if err != nil {
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	a = a.WithZone("")
	return slices.ContainsFunc(trusted, func(p netip.Prefix) bool { return p.Contains(a) })
}

// secureTransport is the one rule for endpoints that take a bearer token
// from another server (SCIM, Shared Signals push): the request came over
// TLS here, or a trusted proxy (trustedProxies) says in X-Forwarded-Proto
// that it terminated TLS, or the peer is loopback and no proxy says the
// client used plain http. Anyone else's X-Forwarded-Proto is a client's
// word and believed for nothing.
func secureTransport(r *http.Request, trusted []netip.Prefix) bool {
	if r.TLS != nil {
		return true
	}
	peer := parseHop(r.RemoteAddr)
	proto := r.Header.Values("X-Forwarded-Proto")
	if peer.IsValid() && isTrusted(peer, trusted) && len(proto) > 0 {
		// The nearest proxy's word: the last value it set or appended.
		last := proto[len(proto)-1]
		if i := strings.LastIndexByte(last, ','); i >= 0 {
			last = last[i+1:]
		}
		return strings.EqualFold(strings.TrimSpace(last), "https")
	}
	return len(proto) == 0 && loopback.HostPort(r.RemoteAddr)
}

// plainHTTPRefused reports whether r fails secureTransport, and logs it.
func (s *Server) plainHTTPRefused(r *http.Request) bool {
	if secureTransport(r, s.cfg.TrustedProxies) {
		return false
	}
	s.log.InfoContext(r.Context(), "request refused: a bearer token over plain http", "path", r.URL.Path)
	return true
}

// scimSecure serves SCIM only over secureTransport; otherwise a SCIM error
// (RFC 7644 §3.12), as web/scim answers its own.
func (s *Server) scimSecure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.plainHTTPRefused(r) {
			w.Header().Set("Content-Type", "application/scim+json")
			w.WriteHeader(http.StatusForbidden)
			_ = json.NewEncoder(w).Encode(map[string]any{
				"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:Error"},
				"status":  "403",
				"detail":  "SCIM requires https: the bearer token must not travel in the clear (plain http is accepted from loopback only; a proxy that terminates TLS must be listed in trustedProxies)",
			})
			return
		}
		next.ServeHTTP(w, r)
	})
}
