package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/keyward/keyward/keys"
	"github.com/keyward/keyward/store/bolt"
)

// Reference costs, measured in the harness's own process with
// testing.Benchmark (one goroutine, about one second each), so that a run
// reports them next to its HTTP numbers.

// JWTParseCost is golang-jwt/v5's ParseWithClaims of token (signature with
// the key that the JWKS at jwksURL publishes under the token's kid, alg
// allowlist, iss, aud, exp): the "raw parse + verify" reference cost that
// docs/performance.md compares with, for this very token.
func JWTParseCost(ctx context.Context, jwksURL, issuer, audience, token string) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, jwksURL, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		return 0, fmt.Errorf("jwks: %w", err)
	}
	t, _, err := jwt.NewParser().ParseUnverified(token, jwt.MapClaims{})
	if err != nil {
		return 0, err
	}
	kid, _ := t.Header["kid"].(string)
	ks := set.Key(kid)
	if len(ks) == 0 {
		return 0, fmt.Errorf("jwks: no key %q", kid)
	}
	pub := ks[0].Key
	p := jwt.NewParser(jwt.WithValidMethods([]string{t.Method.Alg()}), jwt.WithIssuer(issuer),
		jwt.WithAudience(audience), jwt.WithExpirationRequired())
	keyfunc := func(*jwt.Token) (any, error) { return pub, nil }
	if _, err := p.ParseWithClaims(token, jwt.MapClaims{}, keyfunc); err != nil {
		return 0, fmt.Errorf("golang-jwt refuses the token: %w", err)
	}
	var failed error
	r := testing.Benchmark(func(b *testing.B) {
		for b.Loop() {
			if _, err := p.ParseWithClaims(token, jwt.MapClaims{}, keyfunc); err != nil {
				failed = err
				return
			}
		}
	})
	if failed != nil {
		return 0, failed
	}
	return time.Duration(r.NsPerOp()), nil
}

// SignCost is keys.Manager.Sign of a 17-claim access token (the claims of
// keys.BenchmarkSign) with a fresh key of alg: the signing-only bound of
// any endpoint that issues one token per request. dir holds a scratch bbolt
// file.
func SignCost(ctx context.Context, dir, alg string) (time.Duration, error) {
	st, err := bolt.Open(ctx, bolt.Options{Path: filepath.Join(dir, "signcost-"+alg+".db"), NoSync: true})
	if err != nil {
		return 0, err
	}
	defer st.Close()
	km, err := keys.New(keys.Config{Store: st, SessionSecret: []byte("bench-session-secret-0123456789-0123456789"), Algorithm: alg, MaxTokenTTL: 15 * time.Minute, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return 0, err
	}
	if err := km.Load(ctx); err != nil {
		return 0, err
	}
	now := time.Now()
	claims := map[string]any{
		"iss": "https://id.example.com", "sub": "u_8f3a9c2e1b7d4f60", "aud": []string{"api"},
		"exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(), "nbf": now.Unix(),
		"jti": "b1f6d0e4-5c3a-4f7e-9a2b-8d1c3e5f7a90", "client_id": "web", "scope": "openid email profile",
		"auth_time": now.Unix(), "sid": "s_4c2e7a9b", "idp": "corp", "email": "alice@example.com",
		"email_verified": true, "name": "Alice Example", "preferred_username": "alice",
		"groups": []string{"staff", "eng"},
	}
	header := map[string]any{"typ": "at+jwt"}
	var failed error
	r := testing.Benchmark(func(b *testing.B) {
		for b.Loop() {
			if _, err := km.Sign(ctx, claims, header); err != nil {
				failed = err
				return
			}
		}
	})
	if failed != nil {
		return 0, failed
	}
	return time.Duration(r.NsPerOp()), nil
}
