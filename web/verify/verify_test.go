package verify

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// env is what a token case needs: keys, the server and the clock.
type env struct {
	rsa, ec, ed testKey
	ks          *keyServer
	clock       *fakeClock
	claims      jwt.MapClaims
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{
		rsa:   newKey(t, "rsa-1", "RS256"),
		ec:    newKey(t, "ec-1", "ES256"),
		ed:    newKey(t, "ed-1", "EdDSA"),
		clock: newClock(),
	}
	e.ks = newKeyServer(t, e.rsa, e.ec, e.ed)
	e.claims = claims(e.ks.URL, e.clock.Now())
	return e
}

func TestVerifyTokens(t *testing.T) {
	tests := []struct {
		name       string
		token      func(t *testing.T, e *env) string
		wantStatus int // 0: valid
		wantDesc   string
	}{
		{"valid RS256", func(t *testing.T, e *env) string { return mint(t, e.rsa, nil, e.claims) }, 0, ""},
		{"valid ES256", func(t *testing.T, e *env) string { return mint(t, e.ec, nil, e.claims) }, 0, ""},
		{"valid EdDSA", func(t *testing.T, e *env) string { return mint(t, e.ed, nil, e.claims) }, 0, ""},
		{"typ application/at+jwt", func(t *testing.T, e *env) string {
			return mint(t, e.rsa, map[string]any{"typ": "application/AT+JWT"}, e.claims)
		}, 0, ""},
		{"aud as a string", func(t *testing.T, e *env) string {
			return mint(t, e.rsa, nil, with(e.claims, "aud", testAudience))
		}, 0, ""},
		{"expired within leeway", func(t *testing.T, e *env) string {
			return mint(t, e.rsa, nil, with(e.claims, "exp", e.clock.Now().Add(-20*time.Second).Unix()))
		}, 0, ""},
		{"alg none", func(t *testing.T, e *env) string {
			tok := jwt.NewWithClaims(jwt.SigningMethodNone, e.claims)
			tok.Header["typ"], tok.Header["kid"] = "at+jwt", e.rsa.kid
			s, err := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
			if err != nil {
				t.Fatal(err)
			}
			return s + "AAAA" // a signature segment, so only alg decides
		}, http.StatusUnauthorized, "signing algorithm not allowed"},
		{"HS256 signed with the RSA public key", func(t *testing.T, e *env) string {
			der, err := x509.MarshalPKIXPublicKey(e.rsa.priv.Public())
			if err != nil {
				t.Fatal(err)
			}
			pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, e.claims)
			tok.Header["typ"], tok.Header["kid"] = "at+jwt", e.rsa.kid
			s, err := tok.SignedString(pemKey)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}, http.StatusUnauthorized, "signing algorithm not allowed"},
		{"RS256 header on an EC key", func(t *testing.T, e *env) string {
			return mint(t, e.rsa, map[string]any{"kid": e.ec.kid}, e.claims)
		}, http.StatusUnauthorized, "signing algorithm does not match key"},
		{"wrong iss", func(t *testing.T, e *env) string {
			return mint(t, e.rsa, nil, with(e.claims, "iss", "https://evil.example.com"))
		}, http.StatusUnauthorized, "issuer mismatch"},
		{"wrong aud", func(t *testing.T, e *env) string {
			return mint(t, e.rsa, nil, with(e.claims, "aud", []string{"billing-api"}))
		}, http.StatusUnauthorized, "audience mismatch"},
		{"no aud", func(t *testing.T, e *env) string {
			return mint(t, e.rsa, nil, with(e.claims, "aud", nil))
		}, http.StatusUnauthorized, "audience mismatch"},
		{"expired", func(t *testing.T, e *env) string {
			return mint(t, e.rsa, nil, with(e.claims, "exp", e.clock.Now().Add(-time.Minute).Unix()))
		}, http.StatusUnauthorized, "token expired"},
		{"no exp", func(t *testing.T, e *env) string {
			return mint(t, e.rsa, nil, with(e.claims, "exp", nil))
		}, http.StatusUnauthorized, "token has no exp"},
		{"no sub", func(t *testing.T, e *env) string {
			return mint(t, e.rsa, nil, with(e.claims, "sub", nil))
		}, http.StatusUnauthorized, "token has no sub"},
		{"exp not a number", func(t *testing.T, e *env) string {
			return mint(t, e.rsa, nil, with(e.claims, "exp", "tomorrow"))
		}, http.StatusUnauthorized, "malformed token claims"},
		{"nbf in the future", func(t *testing.T, e *env) string {
			return mint(t, e.rsa, nil, with(e.claims, "nbf", e.clock.Now().Add(5*time.Minute).Unix()))
		}, http.StatusUnauthorized, "token not yet valid"},
		{"iat in the future", func(t *testing.T, e *env) string {
			return mint(t, e.rsa, nil, with(e.claims, "iat", e.clock.Now().Add(2*time.Minute).Unix()))
		}, http.StatusUnauthorized, "token issued in the future"},
		{"typ JWT (an ID token)", func(t *testing.T, e *env) string {
			return mint(t, e.rsa, map[string]any{"typ": "JWT"}, e.claims)
		}, http.StatusUnauthorized, "token type is not at+jwt"},
		{"no typ", func(t *testing.T, e *env) string {
			return mint(t, e.rsa, map[string]any{"typ": nil}, e.claims)
		}, http.StatusUnauthorized, "token type is not at+jwt"},
		{"tampered payload", func(t *testing.T, e *env) string {
			good := strings.Split(mint(t, e.rsa, nil, e.claims), ".")
			other := strings.Split(mint(t, e.rsa, nil, with(e.claims, "sub", "corp|admin")), ".")
			return good[0] + "." + other[1] + "." + good[2]
		}, http.StatusUnauthorized, "token signature invalid"},
		{"tampered signature", func(t *testing.T, e *env) string {
			s := []byte(mint(t, e.rsa, nil, e.claims))
			i := len(s) - 20
			s[i] ^= 'A' ^ 'B' // A<->B keeps it valid base64url
			if s[i] != 'A' && s[i] != 'B' {
				s[i] = 'A'
			}
			return string(s)
		}, http.StatusUnauthorized, "token signature invalid"},
		{"truncated", func(t *testing.T, e *env) string {
			s := mint(t, e.rsa, nil, e.claims)
			return s[:strings.LastIndexByte(s, '.')]
		}, http.StatusUnauthorized, "malformed token"},
		{"empty signature", func(t *testing.T, e *env) string {
			s := mint(t, e.rsa, nil, e.claims)
			return s[:strings.LastIndexByte(s, '.')+1]
		}, http.StatusUnauthorized, "malformed token"},
		{"four segments", func(t *testing.T, e *env) string {
			s := mint(t, e.rsa, nil, e.claims)
			return s + ".AAAA"
		}, http.StatusUnauthorized, "malformed token"},
		{"multi-megabyte header", func(t *testing.T, e *env) string {
			return mint(t, e.rsa, map[string]any{"pad": strings.Repeat("x", 3<<20)}, e.claims)
		}, http.StatusUnauthorized, "token too large"},
		{"invalid base64", func(t *testing.T, e *env) string {
			s := mint(t, e.rsa, nil, e.claims)
			return "ey!J" + s[4:]
		}, http.StatusUnauthorized, "malformed token header"},
		{"crit header", func(t *testing.T, e *env) string {
			return mint(t, e.rsa, map[string]any{"crit": []string{"exp"}, "exp": 1}, e.claims)
		}, http.StatusUnauthorized, "critical header parameters not supported"},
		{"crit header null", func(t *testing.T, e *env) string {
			s := mint(t, e.rsa, nil, e.claims)
			return b64.EncodeToString([]byte(`{"alg":"RS256","typ":"at+jwt","kid":"rsa-1","crit":null}`)) + s[strings.IndexByte(s, '.'):]
		}, http.StatusUnauthorized, "critical header parameters not supported"},
		{"missing kid", func(t *testing.T, e *env) string {
			return mint(t, e.rsa, map[string]any{"kid": nil}, e.claims)
		}, http.StatusUnauthorized, "token header has no kid"},
		{"empty", func(*testing.T, *env) string { return "" }, http.StatusUnauthorized, "malformed token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			v := newVerifier(t, e.ks, e.clock, nil)
			token := tt.token(t, e)
			got, err := v.Verify(t.Context(), token)
			if tt.wantStatus == 0 {
				if err != nil {
					t.Fatalf("Verify() = %v, want nil", err)
				}
				if got.Subject != "corp|1234" || got.User() != "corp|1234" {
					t.Errorf("Verify() subject, user = %q, %q; want corp|1234 for both", got.Subject, got.User())
				}
				return
			}
			var verr *Error
			if !errors.As(err, &verr) {
				t.Fatalf("Verify() = %v, want *Error", err)
			}
			want := []any{tt.wantStatus, CodeInvalidToken, tt.wantDesc}
			if diff := cmp.Diff(want, []any{verr.Status, verr.Code, verr.Description}); diff != "" {
				t.Errorf("Verify() error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestVerifyClaims(t *testing.T) {
	e := newEnv(t)
	v := newVerifier(t, e.ks, e.clock, nil)
	now := e.clock.Now()
	got, err := v.Verify(t.Context(), mint(t, e.ed, nil, with(e.claims, "nbf", now.Unix(), "extra", true)))
	if err != nil {
		t.Fatalf("Verify() = %v", err)
	}
	want := &Claims{
		Issuer: e.ks.URL, Subject: "corp|1234", Audience: []string{testAudience},
		ExpiresAt: now.Add(5 * time.Minute), IssuedAt: now, NotBefore: now,
		JTI: "jti-1", ClientID: "shop-web", Scopes: []string{"openid", "orders:read"},
		SessionID: "sid-1", IDP: "corp", Email: "ada@example.com", EmailVerified: true, Name: "Ada Lovelace",
		PreferredUsername: "ada", Groups: []string{"staff", "shop-admins"},
	}
	opts := cmp.Options{cmpopts.IgnoreUnexported(Claims{}), cmpopts.IgnoreFields(Claims{}, "Raw"), cmpopts.EquateApproxTime(0)}
	if diff := cmp.Diff(want, got, opts); diff != "" {
		t.Errorf("Verify() claims (-want +got):\n%s", diff)
	}
	if got.Raw["extra"] != true {
		t.Errorf("Raw[extra] = %v, want true", got.Raw["extra"])
	}
}

func TestVerifyExpiredError(t *testing.T) {
	e := newEnv(t)
	v := newVerifier(t, e.ks, e.clock, nil)
	exp := e.clock.Now().Add(-time.Hour).Truncate(time.Second)
	_, err := v.Verify(t.Context(), mint(t, e.rsa, nil, with(e.claims, "exp", exp.Unix())))
	var expired *ExpiredError
	if !errors.As(err, &expired) {
		t.Fatalf("Verify() = %v, want an *ExpiredError", err)
	}
	if !expired.Expiry.Equal(exp) {
		t.Errorf("Expiry = %v, want %v", expired.Expiry, exp)
	}
}

func TestVerifyUnknownKIDRefetchesOnce(t *testing.T) {
	e := newEnv(t)
	v := newVerifier(t, e.ks, e.clock, nil)
	startVerifier(t, v)
	if got := e.ks.hits.Load(); got != 1 {
		t.Fatalf("JWKS hits after Run = %d, want 1", got)
	}
	stranger := newKey(t, "unknown", "ES256")
	_, err := v.Verify(t.Context(), mint(t, stranger, nil, e.claims))
	if statusOf(err) != http.StatusUnauthorized || !strings.Contains(err.Error(), "signing key not found") {
		t.Errorf("Verify(unknown kid) = %v, want 401 signing key not found", err)
	}
	if got := e.ks.hits.Load(); got != 2 {
		t.Errorf("JWKS hits = %d, want 2 (exactly one refetch)", got)
	}
}

// New does no I/O: the key set is fetched by Run, or, without Run, by the
// first Verify, which waits for it and succeeds.
func TestNewDoesNoIO(t *testing.T) {
	e := newEnv(t)
	v := newVerifier(t, e.ks, e.clock, nil)
	waitIdle(t, v)
	if got := e.ks.hits.Load(); got != 0 {
		t.Fatalf("JWKS hits after New = %d, want 0", got)
	}
	if _, err := v.Verify(t.Context(), mint(t, e.rsa, nil, e.claims)); err != nil {
		t.Fatalf("first Verify() without Run = %v, want nil (it loads the keys)", err)
	}
	if got := e.ks.hits.Load(); got != 1 {
		t.Errorf("JWKS hits after the first Verify = %d, want 1", got)
	}

	ran := newVerifier(t, e.ks, e.clock, nil)
	startVerifier(t, ran)
	if got := e.ks.hits.Load(); got != 2 {
		t.Errorf("JWKS hits after Run = %d, want 2 (Run loads the keys at once)", got)
	}
}

func TestNewConfigErrors(t *testing.T) {
	ok := Config{Issuer: "https://sso.example.com", Audiences: []string{"a"}}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"no issuer", func(c *Config) { c.Issuer = "" }, "issuer"},
		{"relative issuer", func(c *Config) { c.Issuer = "sso.example.com" }, "issuer"},
		{"no audiences", func(c *Config) { c.Audiences = nil }, "at least one"},
		{"alg none", func(c *Config) { c.Algorithms = []string{"none"} }, `"none" is not supported`},
		{"HS256", func(c *Config) { c.Algorithms = []string{"RS256", "HS256"} }, `"HS256" is not supported`},
		{"leeway above a minute", func(c *Config) { c.Leeway = 2 * time.Minute }, "leeway"},
		{"negative leeway", func(c *Config) { c.Leeway = -time.Second }, "leeway"},
		{"bad jwks url", func(c *Config) { c.JWKSURL = "/keys" }, "jwksURL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.mutate(&cfg)
			_, err := New(t.Context(), cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New() = %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

func TestVerifyUnavailable(t *testing.T) {
	e := newEnv(t)
	e.ks.setStatus(http.StatusInternalServerError)
	v := newVerifier(t, e.ks, e.clock, nil)
	_, err := v.Verify(t.Context(), mint(t, e.rsa, nil, e.claims))
	if !errors.Is(err, ErrUnavailable) || statusOf(err) != http.StatusServiceUnavailable {
		t.Fatalf("Verify() with no key set = %v, want 503 ErrUnavailable", err)
	}
	// Failed fetches are not repeated at once...
	hits := e.ks.hits.Load()
	if _, err := v.Verify(t.Context(), mint(t, e.rsa, nil, e.claims)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Verify() = %v, want ErrUnavailable", err)
	}
	if got := e.ks.hits.Load(); got != hits {
		t.Errorf("JWKS hits = %d, want %d (no fetch right after a failure)", got, hits)
	}
	// ...but once the issuer is back, keys load.
	e.ks.setStatus(0)
	e.clock.Advance(failureBackoff)
	if _, err := v.Verify(t.Context(), mint(t, e.rsa, nil, e.claims)); err != nil {
		t.Fatalf("Verify() after recovery = %v, want nil", err)
	}
}

func TestVerifyDiscoveryIssuerMismatch(t *testing.T) {
	e := newEnv(t)
	v := newVerifier(t, e.ks, e.clock, func(c *Config) { c.Issuer = e.ks.URL + "/" })
	_, err := v.Verify(t.Context(), mint(t, e.rsa, nil, e.claims))
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "discovery document names issuer") {
		t.Errorf("Verify() = %v, want ErrUnavailable from the issuer mismatch", err)
	}
}

// statusOf is the HTTP status of an error from this package, 0 for others.
func statusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}
