package main

import (
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestVerifierMetricsAndTraces runs keyward verify with a JWKS that fails
// at first and OTEL_EXPORTER_OTLP_ENDPOINT naming an in-process OTLP
// receiver: /metrics counts the failed key fetches and the verified-token
// cache's hits and misses, and each check is a verify.check span with its
// rule, outcome and reason, continuing the gateway's traceparent, with no
// token in any attribute.
func TestVerifierMetricsAndTraces(t *testing.T) {
	recv := &otlpReceiver{}
	collector := httptest.NewServer(recv)
	defer collector.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)

	jwksURL, signToken := testJWKS(t)
	var failing atomic.Bool
	failing.Store(true)
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		resp, err := http.Get(jwksURL)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.Copy(w, resp.Body)
	}))
	defer jwks.Close()

	cfg := mustParseVerify(t, `
issuer: https://sso.example.com
audience: [orders-api]
jwksURL: `+jwks.URL+`
rules:
  - {path: /orders/, scopes: {anyOf: [orders:read]}}
`)
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	ln, mln := listenLoopback(t), listenLoopback(t)
	stop := startVerifier(t, cfg, slog.New(slog.DiscardHandler), ln, mln)

	now := time.Now()
	claims := func(scope string) jwt.MapClaims {
		return jwt.MapClaims{"iss": "https://sso.example.com", "aud": "orders-api", "sub": "s1",
			"exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(), "scope": scope}
	}
	reader, other := signToken(claims("openid orders:read")), signToken(claims("openid"))
	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	check := func(token, traceparent string) int {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+ln.Addr().String()+"/oauth2/auth", nil)
		req.Header.Set("X-Original-URI", "/orders/1?x=y")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if traceparent != "" {
			req.Header.Set("Traceparent", traceparent)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET /oauth2/auth: %v", err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	// The JWKS fails: the token cannot be checked (503) and the failures
	// are counted. Then it answers; after its retry backoff the keys load.
	if got := check(reader, ""); got != http.StatusServiceUnavailable {
		t.Fatalf("JWKS down: check = %d, want 503", got)
	}
	failing.Store(false)
	status := 0
	for deadline := time.Now().Add(10 * time.Second); status != http.StatusOK && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		status = check(reader, "")
	}
	if status != http.StatusOK {
		t.Fatalf("JWKS back: check = %d, want 200", status)
	}
	// The same token twice more: both from the cache.
	if a, b := check(reader, ""), check(reader, "00-"+traceID+"-"+parentID+"-01"); a != 200 || b != 200 {
		t.Fatalf("cached token: %d, %d, want 200 twice", a, b)
	}
	if got := check(other, ""); got != http.StatusForbidden {
		t.Fatalf("token without orders:read = %d, want 403", got)
	}
	if got := check("", ""); got != http.StatusUnauthorized {
		t.Fatalf("no token = %d, want 401", got)
	}

	families := scrape(t, "http://"+mln.Addr().String()+"/metrics")
	metrics := map[string]float64{}
	for _, name := range []string{"keyward_verify_jwks_fetch_errors_total", "keyward_verify_token_cache_hits_total", "keyward_verify_token_cache_misses_total"} {
		v, ok := value(families, name, nil)
		if !ok {
			t.Fatalf("/metrics has no %s", name)
		}
		metrics[name] = v
	}
	if metrics["keyward_verify_jwks_fetch_errors_total"] < 1 {
		t.Errorf("keyward_verify_jwks_fetch_errors_total = %v, want at least 1 (the JWKS answered 500)", metrics["keyward_verify_jwks_fetch_errors_total"])
	}
	if got := metrics["keyward_verify_token_cache_hits_total"]; got != 2 {
		t.Errorf("keyward_verify_token_cache_hits_total = %v, want 2 (the token checked again twice)", got)
	}
	// Misses: each attempt of the first token until the keys loaded (at
	// least the 503 and the 200), and the other token.
	if got := metrics["keyward_verify_token_cache_misses_total"]; got < 3 {
		t.Errorf("keyward_verify_token_cache_misses_total = %v, want at least 3", got)
	}

	stop() // flushes the spans
	recv.mu.Lock()
	defer recv.mu.Unlock()
	outcomes := map[string]int{}
	var continued bool
	for _, s := range recv.spans {
		a := attrs(s.GetAttributes())
		for k, v := range a {
			if strings.Contains(v, reader) || strings.Contains(v, other) || strings.Contains(v, "x=y") {
				t.Errorf("span %q attribute %s holds a token or the query", s.GetName(), k)
			}
		}
		if s.GetName() != "verify.check" {
			continue
		}
		outcome := a["keyward.verify.outcome"]
		outcomes[outcome]++
		switch outcome {
		case "allow":
			if _, reason := a["keyward.verify.reason"]; a["keyward.verify.rule"] != "int_value:0" || reason || a["http.response.status_code"] != "int_value:200" {
				t.Errorf("allow span attributes %v, want rule 0, no reason, status 200", a)
			}
			continued = continued || hex.EncodeToString(s.GetTraceId()) == traceID && hex.EncodeToString(s.GetParentSpanId()) == parentID
		case "deny", "unauthenticated", "unavailable":
			if a["keyward.verify.reason"] == "" {
				t.Errorf("%s span attributes %v, want a reason", outcome, a)
			}
		}
	}
	if outcomes["allow"] != 3 || outcomes["deny"] != 1 || outcomes["unauthenticated"] != 1 || outcomes["unavailable"] < 1 {
		t.Errorf("verify.check spans by outcome = %v, want allow 3, deny 1, unauthenticated 1, unavailable at least 1", outcomes)
	}
	if !continued {
		t.Errorf("no allow span continues the traceparent's trace %s under span %s", traceID, parentID)
	}
}
