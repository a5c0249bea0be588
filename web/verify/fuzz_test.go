package verify

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzVerify feeds arbitrary tokens to Verify and, through the forward-auth
// handler, arbitrary URIs and methods: nothing may panic, and every failure
// must be an *Error. Run: go test -fuzz=FuzzVerify -fuzztime=20s ./web/verify/
func FuzzVerify(f *testing.F) {
	e := newEnv(f)
	v := newVerifier(f, e.ks, e.clock, nil)
	waitIdle(f, v)
	h := NewHandler(v, handlerRules(), HandlerOptions{EnvoyPrefix: "/ext_authz"})

	for _, k := range []testKey{e.rsa, e.ec, e.ed} {
		f.Add(mint(f, k, nil, e.claims), "/orders/1?x=1", "GET")
	}
	f.Add(mint(f, e.rsa, map[string]any{"crit": []string{"b64"}}, e.claims), "/public/../orders", "POST")
	f.Add(mint(f, e.ed, map[string]any{"kid": "other"}, e.claims), "/orders/%2e%2e/", "DELETE")
	f.Add(mint(f, e.ec, nil, with(e.claims, "aud", 7, "exp", "x")), "//", "")
	f.Add("eyJhbGciOiJub25lIn0.e30.", "/%zz", "get")
	f.Add("a.b.c", "", "GET")
	f.Add("..", "?", "GET")
	f.Add(strings.Repeat("A", 9000), "/orders/", "GET")
	f.Add("eyJ9.eyJ9.eyJ9", "/public", "HEAD")

	f.Fuzz(func(t *testing.T, token, uri, method string) {
		c, err := v.Verify(t.Context(), token)
		var verr *Error
		switch {
		case err == nil && c == nil:
			t.Fatalf("Verify(%q) = nil, nil", token)
		case err != nil && !errors.As(err, &verr):
			t.Fatalf("Verify(%q) = %v, want an *Error", token, err)
		}
		if !validHeaderValue(uri) || !validHeaderValue(method) || !validHeaderValue(token) {
			return
		}
		req := httptest.NewRequestWithContext(t.Context(), "GET", "/oauth2/auth", nil)
		req.Header.Set("X-Original-Uri", uri)
		req.Header.Set("X-Original-Method", method)
		req.Header.Set("X-Forwarded-Host", "api.example.com")
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK, http.StatusUnauthorized, http.StatusForbidden:
		default:
			t.Fatalf("ServeHTTP(uri %q, method %q) = %d", uri, method, rec.Code)
		}
	})
}

func validHeaderValue(s string) bool {
	return !strings.ContainsAny(s, "\r\n\x00")
}
