package verify

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestOverloadedMissIsRefusedAtOnceAndHitsBypass takes the one
// verification slot, then checks that a token not in the cache is answered
// 503 with Retry-After at once, while a cached token is still answered 200.
func TestOverloadedMissIsRefusedAtOnceAndHitsBypass(t *testing.T) {
	e := newEnv(t)
	v := newVerifier(t, e.ks, e.clock, func(c *Config) { c.MaxConcurrentVerifications = 1 })
	h := NewHandler(v, handlerRules(), HandlerOptions{})
	check := func(tok string) *httptest.ResponseRecorder {
		req := httptest.NewRequestWithContext(t.Context(), "GET", "/oauth2/auth", nil)
		req.Header.Set("X-Original-Uri", "/orders/1")
		req.Header.Set("X-Forwarded-Host", "api.example.com")
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	cached := mint(t, e.rsa, nil, e.claims)
	if rec := check(cached); rec.Code != http.StatusOK {
		t.Fatalf("first check = %d, want 200", rec.Code)
	}
	if !v.verifying.TryAcquire() { // the one slot is now busy
		t.Fatal("TryAcquire on an idle verifier = false")
	}
	defer v.verifying.Release()

	miss := mint(t, e.rsa, nil, with(e.claims, "jti", "jti-2"))
	rec := check(miss)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "1" {
		t.Errorf("cache miss while full = %d Retry-After %q, want 503 with Retry-After 1", rec.Code, rec.Header().Get("Retry-After"))
	}
	if _, err := v.Verify(t.Context(), miss); !errors.Is(err, ErrOverloaded) {
		t.Errorf("Verify(miss) while full = %v, want ErrOverloaded", err)
	}
	if rec := check(cached); rec.Code != http.StatusOK {
		t.Errorf("cache hit while full = %d, want 200 (hits bypass the limit)", rec.Code)
	}
	if got := v.verifying.Refused(); got != 2 {
		t.Errorf("refused = %d, want 2", got)
	}
}

func TestMaxConcurrentVerificationsValidate(t *testing.T) {
	c := Config{Issuer: "https://sso.example.com", Audiences: []string{"a"}, MaxConcurrentVerifications: -2}
	c.SetDefaults()
	err := c.Validate()
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Path != "maxConcurrentVerifications" {
		t.Errorf("Validate() = %v, want a problem at maxConcurrentVerifications", err)
	}
	c.MaxConcurrentVerifications = 0
	c.SetDefaults()
	if c.MaxConcurrentVerifications < 256 {
		t.Errorf("default MaxConcurrentVerifications = %d, want ≥ 256", c.MaxConcurrentVerifications)
	}
}
