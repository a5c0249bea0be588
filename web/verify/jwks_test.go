package verify

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
)

func TestKeySetRefetchOnKIDMiss(t *testing.T) {
	e := newEnv(t)
	v := newVerifier(t, e.ks, e.clock, nil)
	startVerifier(t, v)
	rotated := newKey(t, "ec-2", "ES256")
	e.ks.setKeys(e.rsa, rotated)
	if _, err := v.Verify(t.Context(), mint(t, rotated, nil, e.claims)); err != nil {
		t.Fatalf("Verify(new kid) = %v, want nil", err)
	}
	if got := e.ks.hits.Load(); got != 2 {
		t.Errorf("JWKS hits = %d, want 2", got)
	}
}

func TestKeySetRateLimit(t *testing.T) {
	e := newEnv(t)
	v := newVerifier(t, e.ks, e.clock, func(c *Config) { c.MinRefreshInterval = time.Minute })
	startVerifier(t, v)
	x, y := newKey(t, "x", "ES256"), newKey(t, "y", "EdDSA")
	steps := []struct {
		advance  time.Duration
		key      testKey
		wantHits int64
	}{
		{0, x, 2},                // first unknown kid: one refetch
		{0, y, 2},                // another unknown kid at once: none
		{59 * time.Second, y, 2}, // still within the interval
		{time.Second, y, 3},      // interval over: one more
		{0, x, 3},
	}
	for i, s := range steps {
		e.clock.Advance(s.advance)
		_, err := v.Verify(t.Context(), mint(t, s.key, nil, e.claims))
		if statusOf(err) != http.StatusUnauthorized {
			t.Errorf("step %d: Verify(kid %s) = %v, want 401", i, s.key.kid, err)
		}
		if got := e.ks.hits.Load(); got != s.wantHits {
			t.Errorf("step %d: JWKS hits = %d, want %d", i, got, s.wantHits)
		}
	}
}

func TestKeySetKeepsKeysWhenIssuerDown(t *testing.T) {
	e := newEnv(t)
	v := newVerifier(t, e.ks, e.clock, func(c *Config) { c.Cache.MaxEntries = -1 })
	token := mint(t, e.rsa, nil, with(e.claims, "exp", e.clock.Now().Add(time.Hour).Unix()))
	if _, err := v.Verify(t.Context(), token); err != nil {
		t.Fatalf("Verify() = %v", err)
	}
	e.ks.setStatus(http.StatusBadGateway)
	e.clock.Advance(6 * time.Minute) // past the default max-age, 5m ±10%
	for range 2 {
		if _, err := v.Verify(t.Context(), token); err != nil {
			t.Fatalf("Verify() with the issuer down = %v, want nil (stale keys kept)", err)
		}
		waitIdle(t, v)
	}
	if got := e.ks.hits.Load(); got != 2 {
		t.Errorf("JWKS hits = %d, want 2 (one failed refresh, then back-off)", got)
	}
	e.ks.Close()
	e.clock.Advance(failureBackoff)
	if _, err := v.Verify(t.Context(), token); err != nil {
		t.Fatalf("Verify() with the issuer gone = %v, want nil", err)
	}
	waitIdle(t, v)
	_, err := v.Verify(t.Context(), mint(t, newKey(t, "z", "EdDSA"), nil, e.claims))
	if statusOf(err) != http.StatusUnauthorized {
		t.Errorf("Verify(unknown kid) with the issuer gone = %v, want 401, not 503", err)
	}
}

func TestKeySetConcurrentWaitersShareOneFetch(t *testing.T) {
	e := newEnv(t)
	release := e.ks.blockKeys()
	defer release()
	v := newVerifier(t, e.ks, e.clock, func(c *Config) { c.Cache.MaxEntries = -1 })
	token := mint(t, e.ec, nil, e.claims)

	const waiters = 16
	errs := make(chan error, waiters)
	var started sync.WaitGroup
	for range waiters {
		started.Go(func() {
			_, err := v.Verify(t.Context(), token)
			errs <- err
		})
	}
	release()
	started.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Verify() = %v, want nil", err)
		}
	}
	if got := e.ks.hits.Load(); got != 1 {
		t.Errorf("JWKS hits = %d, want 1 shared fetch", got)
	}
}

func TestKeySetUnknownKIDWaitersShareOneFetch(t *testing.T) {
	e := newEnv(t)
	v := newVerifier(t, e.ks, e.clock, nil)
	startVerifier(t, v)
	rotated := newKey(t, "ed-2", "EdDSA")
	e.ks.setKeys(rotated)
	release := e.ks.blockKeys()
	defer release()

	const waiters = 16
	var wg sync.WaitGroup
	errs := make(chan error, waiters)
	for i := range waiters {
		token := mint(t, rotated, nil, with(e.claims, "jti", strconv.Itoa(i))) // distinct tokens: no cache sharing
		wg.Go(func() {
			_, err := v.Verify(t.Context(), token)
			errs <- err
		})
	}
	// Let every waiter reach the in-flight fetch before it completes.
	deadline := time.Now().Add(5 * time.Second)
	for e.ks.hits.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	release()
	wg.Wait()
	close(errs)
	var failed int
	for err := range errs {
		if err != nil {
			failed++
			t.Log(err)
		}
	}
	// A waiter that arrived after the fetch finished finds the kid at once;
	// none may cause another fetch.
	if got := e.ks.hits.Load(); got != 2 || failed != 0 {
		t.Errorf("JWKS hits, failures = %d, %d; want 2, 0", got, failed)
	}
}

func TestKeySetMaxAge(t *testing.T) {
	e := newEnv(t)
	e.ks.setCacheControl("public, max-age=600")
	v := newVerifier(t, e.ks, e.clock, func(c *Config) { c.Cache.MaxEntries = -1 })
	claims := with(e.claims, "exp", e.clock.Now().Add(time.Hour).Unix())
	token := mint(t, e.rsa, nil, claims)
	steps := []struct {
		advance  time.Duration
		wantHits int64
	}{
		{0, 1},
		{539 * time.Second, 1}, // before 90% of max-age: fresh
		{122 * time.Second, 2}, // 661s: past 110%, refreshed in the background
		{time.Minute, 2},       // fresh again
	}
	for i, s := range steps {
		e.clock.Advance(s.advance)
		if _, err := v.Verify(t.Context(), token); err != nil {
			t.Fatalf("step %d: Verify() = %v", i, err)
		}
		waitIdle(t, v)
		if got := e.ks.hits.Load(); got != s.wantHits {
			t.Errorf("step %d: JWKS hits = %d, want %d", i, got, s.wantHits)
		}
	}
}

func TestCacheMaxAge(t *testing.T) {
	tests := []struct {
		header string
		want   time.Duration
	}{
		{"", defaultMaxAge},
		{"max-age=600", 10 * time.Minute},
		{"public, Max-Age=3600, must-revalidate", time.Hour},
		{"max-age=5", minMaxAge},
		{"max-age=0", minMaxAge},
		{"no-store", minMaxAge},
		{"max-age=99999999999", maxMaxAge},
		{"max-age=-1", defaultMaxAge},
		{"max-age=abc", defaultMaxAge},
	}
	for _, tt := range tests {
		if got := cacheMaxAge(tt.header); got != tt.want {
			t.Errorf("cacheMaxAge(%q) = %v, want %v", tt.header, got, tt.want)
		}
	}
}

func TestKeySetCancellation(t *testing.T) {
	e := newEnv(t)
	release := e.ks.blockKeys()
	defer release()
	v := newVerifier(t, e.ks, e.clock, nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := v.Verify(ctx, mint(t, e.rsa, nil, e.claims))
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || statusOf(err) != http.StatusServiceUnavailable {
			t.Errorf("Verify(cancelled) = %v, want 503 wrapping context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Verify did not return after cancellation")
	}
}

func TestKeySetStopsWithNewContext(t *testing.T) {
	e := newEnv(t)
	release := e.ks.blockKeys()
	defer release()
	ctx, cancel := context.WithCancel(t.Context())
	v, err := New(ctx, Config{Issuer: e.ks.URL, Audiences: []string{testAudience}, HTTPClient: e.ks.Client(), Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	waitIdle(t, v)
	if _, err := v.Verify(t.Context(), mint(t, e.rsa, nil, e.claims)); !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("Verify() after the Verifier's context ended = %v, want ErrUnavailable wrapping context.Canceled", err)
	}
}

func TestParseJWKS(t *testing.T) {
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	good, ed := newKey(t, "good", "RS256"), newKey(t, "ed", "EdDSA")
	enc := good.jwk()
	enc.KeyID, enc.Use = "enc", "enc"
	noKID := ed.jwk()
	noKID.KeyID = ""
	private := newKey(t, "private", "ES256")
	keys := []jose.JSONWebKey{
		good.jwk(), ed.jwk(), enc, noKID,
		{Key: weak.Public(), KeyID: "weak", Use: "sig"},
		{Key: p384.Public(), KeyID: "p384", Use: "sig"},
		{Key: private.priv, KeyID: "private"}, // published by mistake: only the public half is kept
	}
	var raw []json.RawMessage
	for _, k := range keys {
		b, err := json.Marshal(k)
		if err != nil {
			t.Fatal(err)
		}
		raw = append(raw, b)
	}
	raw = append(raw, json.RawMessage(`{"kty":"oct","k":"c2VjcmV0","kid":"hmac"}`), json.RawMessage(`{"kty":"nope"}`))
	body, err := json.Marshal(map[string]any{"keys": raw})
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseJWKS(body)
	if err != nil {
		t.Fatalf("parseJWKS() = %v", err)
	}
	var kids []string
	for kid := range got {
		kids = append(kids, kid)
	}
	sort.Strings(kids)
	if diff := cmp.Diff([]string{"ed", "good", "private"}, kids); diff != "" {
		t.Errorf("parseJWKS() kids (-want +got):\n%s", diff)
	}
	if _, isPub := got["private"].key.(*ecdsa.PublicKey); !isPub {
		t.Errorf("parseJWKS() private key kept as %T, want *ecdsa.PublicKey", got["private"].key)
	}
	if _, err := parseJWKS([]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"hmac"}]}`)); err == nil {
		t.Error("parseJWKS(only an HMAC key) = nil error, want no usable key")
	}
}
