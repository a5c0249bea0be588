package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

// TestRunVerifierLogsDecisionsAtDebug: at level debug the verifier logs one
// line per check with the rule, outcome and reason, never the token; at
// info it logs none.
func TestRunVerifierLogsDecisionsAtDebug(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	}))
	t.Cleanup(jwks.Close)
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": "https://sso.example.com", "aud": "orders-api", "sub": "s1", "exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(),
	})
	tok.Header["typ"], tok.Header["kid"] = "at+jwt", "k1"
	signed, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	for _, level := range []slog.Level{slog.LevelDebug, slog.LevelInfo} {
		cfg := mustParseVerify(t, `
issuer: https://sso.example.com
audience: [orders-api]
jwksURL: `+jwks.URL+`
rules:
  - {path: /orders/}
`)
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Validate() = %v", err)
		}
		ln := listenLoopback(t)
		var logs lockedBuffer
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			done <- runVerifier(ctx, cfg, slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: level})), ln, nil)
		}()
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
		cancel()
		if err := <-done; err != nil {
			t.Errorf("runVerifier() = %v", err)
		}
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
