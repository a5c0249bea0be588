package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
)

// TestRunVerifier runs the verify command's server in-process against a
// JWKS: a valid token passes with identity headers, a missing one is 401,
// and the metrics count both.
func TestRunVerifier(t *testing.T) {
	jwksURL, signToken := testJWKS(t)

	cfg := mustParseVerify(t, `
issuer: https://sso.example.com
audience: [orders-api]
jwksURL: `+jwksURL+`
rules:
  - {path: /orders/, scopes: {anyOf: [orders:read]}}
`)
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	ln, mln := listenLoopback(t), listenLoopback(t)
	var logs lockedBuffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	startVerifier(t, cfg, log, ln, mln)

	now := time.Now()
	signed := signToken(jwt.MapClaims{
		"iss": "https://sso.example.com", "aud": "orders-api", "sub": "s1", "exp": now.Add(5 * time.Minute).Unix(),
		"iat": now.Unix(), "scope": "openid orders:read", "email": "alice@example.com", "preferred_username": "alice",
		"groups": []string{"staff", "admins"},
	})

	base := "http://" + ln.Addr().String()
	check := func(token string) *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/oauth2/auth", nil)
		req.Header.Set("X-Original-URI", "/orders/1?x=y")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET /oauth2/auth: %v", err)
		}
		resp.Body.Close()
		return resp
	}
	// The key set loads in the background: wait until it has (no more 503).
	var resp *http.Response
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if resp = check(signed); resp.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
			break
		}
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Auth-Request-User") != "s1" ||
		resp.Header.Get("X-Auth-Request-Preferred-Username") != "alice" ||
		resp.Header.Get("X-Auth-Request-Groups") != "staff,admins" || resp.Header.Get("X-Auth-Request-Subject") != "s1" {
		t.Errorf("valid token: %d %v, want 200 with alice's identity headers", resp.StatusCode, resp.Header)
	}
	resp = check("")
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != `Bearer realm="keyward"` {
		t.Errorf("no token: %d %v, want 401 with a Bearer challenge", resp.StatusCode, resp.Header)
	}

	mresp, err := http.Get("http://" + mln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	body, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	for _, want := range []string{
		`keyward_verify_requests_total{result="unauthenticated"} 1`,
		`keyward_verify_requests_total{result="forbidden"} 0`,
		`keyward_verify_request_duration_seconds_count{result="allowed"} 1`,
		"keyward_verify_shed_total 0",
		"keyward_verify_verifications_in_flight 0",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q:\n%s", want, grepLines(string(body), "keyward_verify_"))
		}
	}
	if !strings.Contains(logs.String(), `"msg":"keyward verify serving"`) || strings.Count(logs.String(), "\n") != 1 {
		t.Errorf("logs = %s, want one startup line and no per-request lines", logs.String())
	}
}

func TestInstrumentVerifyResults(t *testing.T) {
	statuses := map[string]int{"/a": 200, "/b": 401, "/c": 403, "/d": 503, "/e": 500}
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if status, ok := statuses[r.Header.Get("X-Original-Uri")]; ok {
			w.WriteHeader(status)
		}
	})
	reg := prometheus.NewRegistry()
	h := instrumentVerify(next, "/ext_authz", reg)
	for uri := range statuses {
		req := httptest.NewRequest(http.MethodGet, "/oauth2/auth", nil)
		req.Header.Set("X-Original-Uri", uri)
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/healthz", nil)) // not a check
	req := httptest.NewRequest(http.MethodGet, "/ext_authz/orders", nil)
	req.Header.Set("X-Original-Uri", "/a")
	h.ServeHTTP(httptest.NewRecorder(), req) // an Envoy check
	got := counterValues(t, reg, "keyward_verify_requests_total")
	want := map[string]float64{"allowed": 2, "unauthenticated": 1, "forbidden": 1, "unavailable": 2}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("keyward_verify_requests_total{result=%q} = %v, want %v", k, got[k], v)
		}
	}
}

// counterValues returns the values of the counter family name by its result
// label.
func counterValues(t *testing.T, reg *prometheus.Registry, name string) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" {
					out[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestRunVerifierRevocationFeed runs the verifier with a revocation feed: a
// revoked subject's token is refused, another passes, and the feed's
// metrics are exported.
func TestRunVerifierRevocationFeed(t *testing.T) {
	jwksURL, signToken := testJWKS(t)
	now := time.Now()
	feed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, secret, _ := r.BasicAuth(); id != "edge" || secret != "edge-secret" || r.URL.Path != "/revocations" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("ETag", `"1"`)
		_, _ = io.WriteString(w, `{"entries":[{"seq":1,"kind":"subject","sub":"gone","not_before":`+
			strconv.FormatInt(now.Add(time.Second).Unix(), 10)+`}],"highest":1,"next":1}`)
	}))
	t.Cleanup(feed.Close)
	secret := writeFile(t, t.TempDir(), "edge-secret", "edge-secret\n")
	cfg := mustParseVerify(t, `
issuer: https://sso.example.com
audience: [orders-api]
jwksURL: `+jwksURL+`
rules:
  - {path: /}
revocationFeed:
  url: `+feed.URL+`/revocations
  clientID: edge
  clientSecretFile: `+secret+`
`)
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	ln, mln := listenLoopback(t), listenLoopback(t)
	var logs lockedBuffer
	startVerifier(t, cfg, slog.New(slog.NewJSONHandler(&logs, nil)), ln, mln)
	sign := func(sub string) string {
		return signToken(jwt.MapClaims{
			"iss": "https://sso.example.com", "aud": "orders-api", "sub": sub, "exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(),
		})
	}
	check := func(token string) int {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+ln.Addr().String()+"/oauth2/auth", nil)
		req.Header.Set("X-Original-URI", "/x")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET /oauth2/auth: %v", err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	stay := sign("stays")
	status := 0
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if status = check(stay); status != http.StatusServiceUnavailable || time.Now().After(deadline) {
			break
		}
	}
	if status != http.StatusOK {
		t.Errorf("token of a subject not in the feed: %d, want 200", status)
	}
	if status := check(sign("gone")); status != http.StatusUnauthorized {
		t.Errorf("token of a revoked subject: %d, want 401", status)
	}
	mresp, err := http.Get("http://" + mln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	body, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	for _, want := range []string{
		"keyward_verify_revocation_entries 1",
		"keyward_verify_revocation_stale_denials_total 0",
		"keyward_verify_revocation_feed_lag_seconds ",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q:\n%s", want, grepLines(string(body), "keyward_verify_revocation"))
		}
	}
	if !strings.Contains(logs.String(), `"revocation_feed":"`+feed.URL+`/revocations every 5s, on stale deny after 1m"`) {
		t.Errorf("start-up line = %s, want the feed described", logs.String())
	}
}

// TestRunVerifierServerSettings: the verify command's listeners are built
// by web/httpserver: an oversized header gets 431 on both, and with
// maxConnections: 1 a second client waits while one connection is open.
func TestRunVerifierServerSettings(t *testing.T) {
	cfg := mustParseVerify(t, `
issuer: https://sso.example.com
audience: [orders-api]
jwksURL: http://127.0.0.1:1/keys
maxConnections: 1
rules:
  - {path: /, allow: anonymous}
`)
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	ln, mln := listenLoopback(t), listenLoopback(t)
	startVerifier(t, cfg, slog.New(slog.DiscardHandler), ln, mln)

	for _, url := range []string{"http://" + ln.Addr().String() + "/healthz", "http://" + mln.Addr().String() + "/metrics"} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
		req.Header.Set("X-Padding", strings.Repeat("a", 128<<10))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("GET %s with a 128 KiB header: %d, want 431", url, resp.StatusCode)
		}
	}

	// One connection in the middle of its request holds the only slot (an
	// idle keep-alive one would yield it to the next client).
	get := func(c net.Conn) chan string {
		got := make(chan string, 1)
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		go func() {
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				got <- err.Error()
				return
			}
			resp.Body.Close()
			got <- resp.Status
		}()
		return got
	}
	dial := func() net.Conn {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	first := dial() // accepted before the second: the kernel queues in order
	if _, err := io.WriteString(first, "GET /healthz HTTP/1.1\r\n"); err != nil {
		t.Fatal(err)
	}
	second := get(dial())
	select { // a negative check: a slow machine can only make it pass wrongly
	case s := <-second:
		t.Fatalf("a second connection beyond maxConnections: 1 was served (%s)", s)
	case <-time.After(300 * time.Millisecond):
	}
	first.Close()
	select {
	case s := <-second:
		if s != "200 OK" {
			t.Errorf("second connection once the first closed: %s, want 200 OK", s)
		}
	case <-time.After(10 * time.Second):
		t.Error("the second connection was not served within 10s of the first closing")
	}
}

// testJWKS serves a JWKS with one RS256 key, kid k1, for the tests' whole
// life. signToken signs claims with it as an access token (typ at+jwt).
func testJWKS(t *testing.T) (jwksURL string, signToken func(jwt.MapClaims) string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	}))
	t.Cleanup(jwks.Close)
	return jwks.URL, func(claims jwt.MapClaims) string {
		t.Helper()
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
		tok.Header["typ"], tok.Header["kid"] = "at+jwt", "k1"
		signed, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return signed
	}
}

// startVerifier runs the verify command's servers on ln and mln (nil: no
// metrics listener) in the background. stop ends the run and reports its
// error; it also runs when the test ends.
func startVerifier(t *testing.T, cfg *VerifyConfig, log *slog.Logger, ln, mln net.Listener) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- runVerifier(ctx, cfg, log, ln, mln) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("runVerifier() = %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("runVerifier did not stop within 10s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}
