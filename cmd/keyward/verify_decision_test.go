package main

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestRunVerifierLogsDecisionsAtDebug: at level debug the verifier logs one
// line per check with the rule, outcome and reason, never the token; at
// info it logs none.
func TestRunVerifierLogsDecisionsAtDebug(t *testing.T) {
	jwksURL, signToken := testJWKS(t)
	now := time.Now()
	signed := signToken(jwt.MapClaims{
		"iss": "https://sso.example.com", "aud": "orders-api", "sub": "s1", "exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(),
	})
	for _, level := range []slog.Level{slog.LevelDebug, slog.LevelInfo} {
		cfg := mustParseVerify(t, `
issuer: https://sso.example.com
audience: [orders-api]
jwksURL: `+jwksURL+`
rules:
  - {path: /orders/}
`)
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Validate() = %v", err)
		}
		ln := listenLoopback(t)
		var logs lockedBuffer
		stop := startVerifier(t, cfg, slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: level})), ln, nil)
		check := func(uri string) int {
			t.Helper()
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+ln.Addr().String()+"/oauth2/auth", nil)
			if uri != "" {
				req.Header.Set("X-Original-URI", uri)
			}
			req.Header.Set("Authorization", "Bearer "+signed)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("GET /oauth2/auth: %v", err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		status := 0
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if status = check("/orders/1?q=secret"); status != http.StatusServiceUnavailable || time.Now().After(deadline) {
				break
			}
		}
		if status != http.StatusOK {
			t.Fatalf("check = %d, want 200", status)
		}
		if status := check(""); status != http.StatusForbidden {
			t.Errorf("check without X-Original-URI = %d, want 403", status)
		}
		stop()
		out := logs.String()
		if strings.Contains(out, signed) || strings.Contains(out, "q=secret") {
			t.Errorf("the log holds the token or the query:\n%s", out)
		}
		got := strings.Count(out, `"msg":"check"`)
		if level == slog.LevelInfo {
			if got != 0 {
				t.Errorf("at info: %d check lines, want none:\n%s", got, out)
			}
			continue
		}
		for _, want := range []string{
			`"msg":"check","component":"verify","outcome":"allow","status":200,"rule":0,"reason":"","method":"GET","host":"` + ln.Addr().String() + `","path":"/orders/1"`,
			`"outcome":"deny","status":403,"rule":-1,"reason":"the gateway sent no X-Original-URI header`,
		} {
			if !strings.Contains(out, want) {
				t.Errorf("debug log lacks %s:\n%s", want, out)
			}
		}
	}
}
