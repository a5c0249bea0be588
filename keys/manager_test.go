package keys

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/keyward/keyward/cmd/config"
	"github.com/keyward/keyward/store"
)

// verifyWithJWKS verifies tok against the keys of a JWKS body, as an edge
// verifier would: go-jose parses the JWKS, golang-jwt checks the token.
func verifyWithJWKS(t *testing.T, body []byte, tok string, now time.Time) (jwt.MapClaims, *jwt.Token, error) {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatalf("parse JWKS %s: %v", body, err)
	}
	claims := jwt.MapClaims{}
	parsed, err := jwt.ParseWithClaims(tok, claims, func(tk *jwt.Token) (any, error) {
		kid, _ := tk.Header["kid"].(string)
		ks := set.Key(kid)
		if len(ks) != 1 {
			return nil, fmt.Errorf("kid %q not in JWKS", kid)
		}
		if ks[0].Algorithm != tk.Method.Alg() {
			return nil, fmt.Errorf("JWK alg %q, token alg %q", ks[0].Algorithm, tk.Method.Alg())
		}
		return ks[0].Key, nil
	}, jwt.WithValidMethods([]string{RS256, ES256, EdDSA}), jwt.WithTimeFunc(func() time.Time { return now }))
	return claims, parsed, err
}

// verifyWithManager verifies tok with Manager.PublicKey.
func verifyWithManager(m *Manager, tok string, now time.Time) error {
	_, err := jwt.Parse(tok, func(tk *jwt.Token) (any, error) {
		kid, _ := tk.Header["kid"].(string)
		k, ok := m.PublicKey(kid)
		if !ok {
			return nil, fmt.Errorf("unknown kid %q", kid)
		}
		return k.Public, nil
	}, jwt.WithValidMethods([]string{RS256, ES256, EdDSA}), jwt.WithTimeFunc(func() time.Time { return now }))
	return err
}

func TestNewCreatesCurrentAndNext(t *testing.T) {
	st, clock := &memStore{}, newClock()
	m := mustNew(t, testConfig(t, st, clock))

	ks := st.set()
	now := clock.Now().UTC()
	want := []KeyInfo{
		{ID: m.SigningKey().ID, Algorithm: ES256, State: store.KeyCurrent, CreatedAt: now, ActivatesAt: now, Encrypted: true},
		{ID: kidsOf(ks)[store.KeyNext][0], Algorithm: ES256, State: store.KeyNext, CreatedAt: now, ActivatesAt: now.Add(24 * time.Hour), Encrypted: true},
	}
	if diff := cmp.Diff(want, m.Keys()); diff != "" {
		t.Errorf("Keys() (-want +got):\n%s", diff)
	}
	if got, want := ks.NextRotation, now.Add(24*time.Hour); !got.Equal(want) {
		t.Errorf("NextRotation = %v, want %v", got, want)
	}
	if got := m.Algorithm(); got != ES256 {
		t.Errorf("Algorithm() = %q, want ES256", got)
	}

	// A second process on the same store loads the same set.
	m2 := mustNew(t, testConfig(t, st, clock))
	if diff := cmp.Diff(m.Keys(), m2.Keys()); diff != "" {
		t.Errorf("second Manager Keys() (-first +second):\n%s", diff)
	}
	if n := st.updates.Load(); n != 1 {
		t.Errorf("store updates = %d, want 1", n)
	}
}

func TestNewToleratesConcurrentCreate(t *testing.T) {
	st, clock := &memStore{}, newClock()
	var other *Manager
	var raced atomic.Bool
	// The first New reads "not found", generates, and before its update
	// another process creates the set.
	st.beforeUpdate = func() {
		if raced.CompareAndSwap(false, true) {
			other = mustNew(t, testConfig(t, st, clock))
		}
	}
	m := mustNew(t, testConfig(t, st, clock))
	if got, want := m.SigningKey().ID, other.SigningKey().ID; got != want {
		t.Errorf("SigningKey().ID = %q, other process has %q", got, want)
	}
	if n := len(st.set().Keys); n != 2 {
		t.Errorf("stored keys = %d, want 2 (the loser's keys are discarded)", n)
	}
}

func TestSignVerifiesWithJWKS(t *testing.T) {
	tests := []struct {
		alg  string
		want map[string]int // JWK member -> decoded length (0: check value only)
	}{
		{alg: RS256, want: map[string]int{"n": 256, "e": 3}},
		{alg: ES256, want: map[string]int{"x": 32, "y": 32}},
		{alg: EdDSA, want: map[string]int{"x": 32}},
	}
	wantKty := map[string]string{RS256: "RSA", ES256: "EC", EdDSA: "OKP"}
	wantCrv := map[string]string{ES256: "P-256", EdDSA: "Ed25519"}
	for _, tt := range tests {
		t.Run(tt.alg, func(t *testing.T) {
			st, clock := &memStore{}, newClock()
			cfg := testConfig(t, st, clock)
			cfg.Algorithm = tt.alg
			m := mustNew(t, cfg)
			now := clock.Now()
			claims := map[string]any{"sub": "alice", "exp": now.Add(5 * time.Minute).Unix()}
			tok, err := m.Sign(t.Context(), claims, map[string]any{"typ": "at+jwt", "alg": "none", "kid": "evil"})
			if err != nil {
				t.Fatalf("Sign() = %v", err)
			}
			body, _ := m.JWKS()
			got, parsed, err := verifyWithJWKS(t, body, tok, now)
			if err != nil {
				t.Fatalf("verify Sign() output with JWKS: %v", err)
			}
			if got["sub"] != "alice" {
				t.Errorf("claims = %v, want sub alice", got)
			}
			wantHeader := map[string]any{"alg": tt.alg, "kid": m.SigningKey().ID, "typ": "at+jwt"}
			if diff := cmp.Diff(wantHeader, parsed.Header); diff != "" {
				t.Errorf("header (-want +got):\n%s", diff)
			}
			if err := verifyWithManager(m, tok, now); err != nil {
				t.Errorf("verify with PublicKey: %v", err)
			}

			// The JWKS members, per RFC 7518 §6 and RFC 8037 §2.
			var raw struct{ Keys []map[string]string }
			if err := json.Unmarshal(body, &raw); err != nil {
				t.Fatal(err)
			}
			if len(raw.Keys) != 2 {
				t.Fatalf("JWKS has %d keys, want 2 (current, next)", len(raw.Keys))
			}
			if raw.Keys[0]["kid"] != m.SigningKey().ID {
				t.Errorf("first JWK kid = %q, want the current key %q", raw.Keys[0]["kid"], m.SigningKey().ID)
			}
			for _, jwk := range raw.Keys {
				if jwk["kty"] != wantKty[tt.alg] || jwk["use"] != "sig" || jwk["alg"] != tt.alg || jwk["crv"] != wantCrv[tt.alg] {
					t.Errorf("JWK %v: want kty %s, use sig, alg %s, crv %q", jwk, wantKty[tt.alg], tt.alg, wantCrv[tt.alg])
				}
				for member, n := range tt.want {
					b, err := base64.RawURLEncoding.DecodeString(jwk[member])
					if err != nil || len(b) != n {
						t.Errorf("JWK %s = %q: %d bytes (err %v), want %d", member, jwk[member], len(b), err, n)
					}
				}
				if _, ok := jwk["d"]; ok {
					t.Errorf("JWK %s has a private member", jwk["kid"])
				}
			}
		})
	}
}

func TestSignNilHeaderAndClaims(t *testing.T) {
	st, clock := &memStore{}, newClock()
	m := mustNew(t, testConfig(t, st, clock))
	tok, err := m.Sign(t.Context(), nil, nil)
	if err != nil {
		t.Fatalf("Sign(nil, nil) = %v", err)
	}
	body, _ := m.JWKS()
	_, parsed, err := verifyWithJWKS(t, body, tok, clock.Now())
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if diff := cmp.Diff(map[string]any{"alg": ES256, "kid": m.SigningKey().ID, "typ": "JWT"}, parsed.Header); diff != "" {
		t.Errorf("header (-want +got):\n%s", diff)
	}
}

func TestKIDFormat(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		kid := newKID()
		b, err := base64.RawURLEncoding.DecodeString(kid)
		if err != nil || len(b) < 16 {
			t.Fatalf("newKID() = %q: %d bytes (err %v), want >= 16 URL-safe bytes", kid, len(b), err)
		}
		if seen[kid] {
			t.Fatalf("newKID() repeated %q", kid)
		}
		seen[kid] = true
	}
}

func TestJWKSMaxAge(t *testing.T) {
	tests := []struct {
		name       string
		period     time.Duration
		maxAge     time.Duration
		sinceRead  time.Duration // clock advance after the last store read
		wantMaxAge time.Duration
	}{
		{name: "default", wantMaxAge: time.Hour},
		{name: "configured", maxAge: 90 * time.Second, wantMaxAge: 90 * time.Second},
		{name: "capped at half the period", period: 4 * time.Hour, maxAge: 10 * time.Hour, wantMaxAge: 2 * time.Hour},
		{name: "shrinks since the last read", sinceRead: 20 * time.Minute, wantMaxAge: 40 * time.Minute},
		{name: "whole seconds, rounded down", sinceRead: 1500 * time.Millisecond, wantMaxAge: time.Hour - 2*time.Second},
		{name: "zero when the store was not read for a max-age", sinceRead: 61 * time.Minute, wantMaxAge: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, clock := &memStore{}, newClock()
			cfg := testConfig(t, st, clock)
			cfg.RotationPeriod, cfg.JWKSMaxAge = config.Duration(tt.period), config.Duration(tt.maxAge)
			m := mustNew(t, cfg)
			clock.Advance(tt.sinceRead)
			if _, got := m.JWKS(); got != tt.wantMaxAge {
				t.Errorf("JWKS() max-age = %v, want %v", got, tt.wantMaxAge)
			}
			if err := m.Reload(t.Context()); err != nil {
				t.Fatalf("Reload() = %v", err)
			}
			want := cmpOr(tt.maxAge, time.Hour)
			if tt.period != 0 {
				want = min(want, tt.period/2)
			}
			if _, got := m.JWKS(); got != want {
				t.Errorf("after Reload, JWKS() max-age = %v, want %v", got, want)
			}
		})
	}
}

func cmpOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// TestSnapshotRebuiltOnVersionChange checks that the parsed keys and the JWKS
// body are reused until the stored version changes, and that the hot path
// does no store I/O.
func TestSnapshotRebuiltOnVersionChange(t *testing.T) {
	st, clock := &memStore{}, newClock()
	m := mustNew(t, testConfig(t, st, clock))
	before := m.snap.Load()
	body1, _ := m.JWKS()

	gets := st.gets.Load()
	for range 100 {
		if _, err := m.Sign(t.Context(), map[string]any{"sub": "x"}, nil); err != nil {
			t.Fatal(err)
		}
		m.JWKS()
		m.PublicKey(before.signers[ES256].ID)
	}
	if n := st.gets.Load() - gets; n != 0 {
		t.Errorf("Sign/JWKS/PublicKey read the store %d times, want 0", n)
	}

	clock.Advance(time.Minute)
	if err := m.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	after := m.snap.Load()
	body2, _ := m.JWKS()
	if &body1[0] != &body2[0] || before.signers[ES256].private != after.signers[ES256].private {
		t.Errorf("Reload of an unchanged version rebuilt the snapshot")
	}
	if !after.checked.Equal(clock.Now()) {
		t.Errorf("snapshot checked = %v, want %v", after.checked, clock.Now())
	}

	// Another process rotates: the version changes and the snapshot follows.
	other := mustNew(t, testConfig(t, st, clock))
	clock.Advance(24 * time.Hour)
	if _, err := other.Rotate(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := m.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	body3, _ := m.JWKS()
	if string(body3) == string(body1) {
		t.Errorf("JWKS unchanged after another process rotated")
	}
	if got, want := m.SigningKey().ID, other.SigningKey().ID; got != want {
		t.Errorf("after Reload SigningKey().ID = %q, want %q", got, want)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
		want   string
	}{
		{name: "no store", modify: func(c *Config) { c.Store = nil }, want: "missing Store"},
		{name: "algorithm", modify: func(c *Config) { c.Algorithm = "HS256" }, want: `unsupported Algorithm "HS256"`},
		{name: "access token algorithm", modify: func(c *Config) { c.AccessTokenAlgorithm = "PS256" }, want: `unsupported AccessTokenAlgorithm "PS256"`},
		{name: "no token TTL", modify: func(c *Config) { c.MaxTokenTTL = 0 }, want: "invalid MaxTokenTTL 0s: must be positive"},
		{name: "no key-encryption key", modify: func(c *Config) { c.SessionSecret = nil }, want: "missing SessionSecret or EncryptionKey (private keys are always encrypted at rest)"},
		{name: "short KEK", modify: func(c *Config) { c.EncryptionKey = make([]byte, 16) }, want: "invalid EncryptionKey (keys.encryptionKeyFile): 16 bytes, want 32"},
		{name: "negative max-age", modify: func(c *Config) { c.JWKSMaxAge = config.Duration(-time.Second) }, want: "invalid JWKSMaxAge -1s: negative"},
		{name: "tiny period", modify: func(c *Config) { c.RotationPeriod = config.Duration(time.Second) }, want: "invalid RotationPeriod 1s: below 2s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t, &memStore{}, newClock())
			tt.modify(&cfg)
			_, err := New(cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "keys: config: ") {
				t.Errorf("New() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestNewDoesNoIO: New only checks the config; Load reads the store and
// reports its errors; nothing signs before Load.
func TestNewDoesNoIO(t *testing.T) {
	st := &memStore{}
	down := errors.New("disk on fire")
	st.setFail(down)
	m, err := New(testConfig(t, st, newClock()))
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	if g, u := st.gets.Load(), st.updates.Load(); g != 0 || u != 0 {
		t.Errorf("New read the store %d times and wrote it %d times, want 0", g, u)
	}
	if _, err := m.Sign(t.Context(), map[string]any{"sub": "x"}, nil); !errors.Is(err, ErrNotLoaded) {
		t.Errorf("Sign() before Load = %v, want ErrNotLoaded", err)
	}
	if body, _ := m.JWKS(); body != nil {
		t.Errorf("JWKS() before Load = %s, want nil", body)
	}
	if err := m.Run(t.Context()); !errors.Is(err, ErrNotLoaded) {
		t.Errorf("Run() before Load = %v, want ErrNotLoaded", err)
	}
	err = m.Load(t.Context())
	if !errors.Is(err, down) || !strings.HasPrefix(err.Error(), "keys: load key set: ") {
		t.Errorf("Load() = %v, want keys: load key set: …%v", err, down)
	}
	st.setFail(nil)
	if err := m.Load(t.Context()); err != nil {
		t.Fatalf("Load() after the store recovered = %v", err)
	}
	if _, err := m.Sign(t.Context(), map[string]any{"sub": "x"}, nil); err != nil {
		t.Errorf("Sign() after Load = %v", err)
	}
}
