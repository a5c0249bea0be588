package fakeidp_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"

	"github.com/keyward/keyward/test/fakeidp"
)

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  fakeidp.Config
		want string
	}{
		{name: "no issuer", cfg: fakeidp.Config{}, want: "issuer:"},
		{name: "issuer with query", cfg: fakeidp.Config{Issuer: "http://x?a=b"}, want: "issuer:"},
		{name: "algorithm", cfg: fakeidp.Config{Issuer: "http://x", Algorithm: "HS256"}, want: "algorithm:"},
		{name: "auto login", cfg: fakeidp.Config{Issuer: "http://x", AutoLogin: "nobody"}, want: `auto login: no user "nobody"`},
		{
			name: "duplicate user",
			cfg:  fakeidp.Config{Issuer: "http://x", Users: []fakeidp.User{{Username: "a"}, {Username: "a"}}},
			want: `duplicate username "a"`,
		},
		{name: "client without redirect", cfg: fakeidp.Config{Issuer: "http://x", Clients: []fakeidp.Client{{ID: "c"}}}, want: "clients:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := fakeidp.New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New() = %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

func discovery(t *testing.T, base string) map[string]any {
	t.Helper()
	resp, body := get(t, base+"/.well-known/openid-configuration")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET discovery = %d", resp.StatusCode)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestDiscovery(t *testing.T) {
	s := newServer(t, func(c *fakeidp.Config) { c.Algorithm = "ES256" })
	got := discovery(t, s.URL())
	iss := s.URL()
	want := map[string]any{
		"issuer": iss, "authorization_endpoint": iss + "/authorize", "token_endpoint": iss + "/token",
		"userinfo_endpoint": iss + "/userinfo", "jwks_uri": iss + "/keys", "end_session_endpoint": iss + "/logout",
		"response_types_supported":              []any{"code"},
		"code_challenge_methods_supported":      []any{"S256"},
		"id_token_signing_alg_values_supported": []any{"ES256"},
	}
	for k, v := range want {
		if diff := cmp.Diff(v, got[k]); diff != "" {
			t.Errorf("discovery %s (-want +got):\n%s", k, diff)
		}
	}

	s.SetDiscoveryIssuer("https://evil.example.com")
	if got := discovery(t, s.URL()); got["issuer"] != "https://evil.example.com" || got["token_endpoint"] != iss+"/token" {
		t.Errorf("tampered discovery = %v, want only the issuer changed", got)
	}
	s.SetDiscoveryIssuer("")
	if got := discovery(t, s.URL())["issuer"]; got != iss {
		t.Errorf("restored discovery issuer = %v, want %s", got, iss)
	}
}

// An issuer with a path serves every endpoint under that path.
func TestIssuerPath(t *testing.T) {
	ts := httptest.NewUnstartedServer(nil)
	s, err := fakeidp.New(fakeidp.Config{Issuer: "http://" + ts.Listener.Addr().String() + "/upstream"})
	if err != nil {
		t.Fatal(err)
	}
	ts.Config.Handler = s.Handler()
	ts.Start()
	t.Cleanup(ts.Close)
	if got := discovery(t, s.URL())["jwks_uri"]; got != s.URL()+"/keys" {
		t.Errorf("jwks_uri = %v, want %s/keys", got, s.URL())
	}
	if resp, _ := get(t, s.URL()+"/keys"); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /upstream/keys = %d, want 200", resp.StatusCode)
	}
}

func jwks(t *testing.T, s *fakeidp.Server) jose.JSONWebKeySet {
	t.Helper()
	_, body := get(t, s.URL()+"/keys")
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(body), &set); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(body, `"d"`) {
		t.Errorf("JWKS %s publishes private key material", body)
	}
	return set
}

func TestRotateKey(t *testing.T) {
	for _, alg := range []string{"RS256", "ES256"} {
		t.Run(alg, func(t *testing.T) {
			s := newServer(t, func(c *fakeidp.Config) { c.Algorithm = alg })
			seen := map[string]bool{}
			// More rotations than there are fixtures: later keys are generated.
			for range 6 {
				kid := s.KeyID()
				set := jwks(t, s)
				if len(set.Keys) != 1 || set.Keys[0].KeyID != kid || set.Keys[0].Algorithm != alg {
					t.Fatalf("JWKS = %+v, want one %s key %q", set.Keys, alg, kid)
				}
				if seen[kid] {
					t.Fatalf("kid %q reused after rotation", kid)
				}
				seen[kid] = true
				s.RotateKey()
			}
		})
	}
}

// verifyIDToken checks raw against the published JWKS and returns its claims.
func verifyIDToken(t *testing.T, s *fakeidp.Server, raw string) map[string]any {
	t.Helper()
	jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		t.Fatalf("parse id token: %v", err)
	}
	set := jwks(t, s)
	keys := set.Key(jws.Signatures[0].Header.KeyID)
	if len(keys) != 1 {
		t.Fatalf("id token kid %q is not published", jws.Signatures[0].Header.KeyID)
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		t.Fatalf("verify id token: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

func TestIDTokenClaims(t *testing.T) {
	s := newServer(t, func(c *fakeidp.Config) { c.Users[0].Extra = map[string]any{"tenant": "t1"} })
	verifier := oauth2.GenerateVerifier()

	s.SetNextClaims(map[string]any{"groups": "admins", "email": nil, "acr": "mfa"})
	_, resp := token(t, s, codeForm(code(t, s, authParams(verifier)), verifier), nil)
	got := verifyIDToken(t, s, resp["id_token"].(string))
	at := got["at_hash"]
	for _, k := range []string{"at_hash", "iat", "exp"} {
		delete(got, k)
	}
	want := map[string]any{
		"iss": s.URL(), "sub": "demo-alice", "aud": clientID, "nonce": "nc",
		"auth_time": float64(testNow.Unix()), "email_verified": true, "name": "Alice Example",
		"preferred_username": "alice", "groups": "admins", "tenant": "t1", "acr": "mfa",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ID token claims with SetNextClaims (-want +got):\n%s", diff)
	}
	if at == nil {
		t.Error("ID token has no at_hash")
	}

	// The override applied to one token only.
	_, resp = token(t, s, codeForm(code(t, s, authParams(verifier)), verifier), nil)
	got = verifyIDToken(t, s, resp["id_token"].(string))
	if diff := cmp.Diff([]any{"staff", "admins"}, got["groups"]); diff != "" || got["email"] != "alice@example.com" || got["acr"] != nil {
		t.Errorf("next ID token = %v, want the user's own claims", got)
	}
}

func TestTamper(t *testing.T) {
	s := newServer(t, nil)
	verifier := oauth2.GenerateVerifier()
	mint := func() map[string]any {
		t.Helper()
		status, resp := token(t, s, codeForm(code(t, s, authParams(verifier)), verifier), nil)
		if status != http.StatusOK {
			t.Fatalf("token = %d %v", status, resp)
		}
		return resp
	}
	claims := func(resp map[string]any) map[string]any {
		t.Helper()
		return verifyIDToken(t, s, resp["id_token"].(string))
	}

	s.SetTamper(fakeidp.Tamper{WrongNonce: true, WrongIssuer: true, WrongAudience: true, Expired: true})
	c := claims(mint())
	if c["nonce"] == "nc" || c["iss"] == s.URL() || c["aud"] == clientID || c["exp"].(float64) >= float64(testNow.Unix()) {
		t.Errorf("tampered claims = %v, want nonce, iss, aud and exp all wrong", c)
	}

	s.SetTamper(fakeidp.Tamper{BadSignature: true})
	raw := mint()["id_token"].(string)
	jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jws.Verify(jwks(t, s).Keys[0]); err == nil {
		t.Error("BadSignature token verifies")
	}

	s.SetTamper(fakeidp.Tamper{OmitIDToken: true})
	if resp := mint(); resp["id_token"] != nil || resp["access_token"] == nil {
		t.Errorf("OmitIDToken response = %v, want an access token and no id_token", resp)
	}

	s.SetTamper(fakeidp.Tamper{})
	if c := claims(mint()); c["nonce"] != "nc" || c["iss"] != s.URL() {
		t.Errorf("claims after SetTamper(Tamper{}) = %v, want honest ones", c)
	}
}

func TestFailureAndLatency(t *testing.T) {
	s := newServer(t, nil)
	verifier := oauth2.GenerateVerifier()
	s.FailToken(http.StatusBadGateway)
	if status, _ := token(t, s, codeForm(code(t, s, authParams(verifier)), verifier), nil); status != http.StatusBadGateway {
		t.Errorf("token with FailToken(502) = %d, want 502", status)
	}
	s.FailToken(0)
	if status, _ := token(t, s, codeForm(code(t, s, authParams(verifier)), verifier), nil); status != http.StatusOK {
		t.Errorf("token after FailToken(0) = %d, want 200", status)
	}

	s.SetLatency(100 * time.Millisecond)
	start := time.Now()
	get(t, s.URL()+"/keys")
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("GET /keys with 100ms latency took %v", d)
	}
}

// TestRefreshAnswers: SetRefreshAnswer scripts the refresh_token grant
// only; the code grant and, after RefreshHonest, refreshes work again.
func TestRefreshAnswers(t *testing.T) {
	s := newServer(t, nil)
	verifier := oauth2.GenerateVerifier()
	params := authParams(verifier)
	params.Set("scope", "openid email offline_access")
	status, resp := token(t, s, codeForm(code(t, s, params), verifier), nil)
	rt, _ := resp["refresh_token"].(string)
	if status != http.StatusOK || rt == "" {
		t.Fatalf("code grant = %d %v, want 200 with a refresh token", status, resp)
	}
	refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {clientID}, "client_secret": {secret}}
	for _, tc := range []struct {
		answer fakeidp.RefreshAnswer
		status int
		code   string
	}{
		{fakeidp.RefreshInvalidGrant, http.StatusBadRequest, "invalid_grant"},
		{fakeidp.RefreshDexDeletedUser, http.StatusInternalServerError, "invalid_request"},
		{fakeidp.RefreshInvalidClient, http.StatusUnauthorized, "invalid_client"},
		{fakeidp.RefreshUnauthorizedClient, http.StatusBadRequest, "unauthorized_client"},
		{fakeidp.RefreshUnavailable, http.StatusServiceUnavailable, ""},
	} {
		s.SetRefreshAnswer(tc.answer)
		if status, m := token(t, s, refresh, nil); status != tc.status || (tc.code != "" && m["error"] != tc.code) {
			t.Errorf("refresh with answer %d = %d %v, want %d %q", tc.answer, status, m, tc.status, tc.code)
		}
		if status, _ := token(t, s, codeForm(code(t, s, authParams(verifier)), verifier), nil); status != http.StatusOK {
			t.Errorf("code grant with refresh answer %d = %d, want 200", tc.answer, status)
		}
	}

	s.SetRefreshAnswer(fakeidp.RefreshHang)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL()+"/token", strings.NewReader(refresh.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("refresh with RefreshHang = %d, want no answer before the client gives up", resp.StatusCode)
	}

	s.SetRefreshAnswer(fakeidp.RefreshHonest)
	if status, m := token(t, s, refresh, nil); status != http.StatusOK {
		t.Errorf("refresh after RefreshHonest = %d %v, want 200", status, m)
	}
}

func TestHits(t *testing.T) {
	s := newServer(t, nil)
	verifier := oauth2.GenerateVerifier()
	discovery(t, s.URL())
	jwks(t, s)
	_, resp := token(t, s, codeForm(code(t, s, authParams(verifier)), verifier), nil)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, s.URL()+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+resp["access_token"].(string))
	do(t, req)
	want := map[string]int64{"discovery": 1, "keys": 1, "authorize": 1, "token": 1, "userinfo": 1, "logout": 0, "nonsense": 0}
	for name, n := range want {
		if got := s.Hits(name); got != n {
			t.Errorf("Hits(%q) = %d, want %d", name, got, n)
		}
	}
}

// Knobs may be turned while requests are in flight (run with -race).
func TestKnobsConcurrently(t *testing.T) {
	s := newServer(t, nil)
	var wg sync.WaitGroup
	// No t.Fatal off the test goroutine: plain requests, errors reported.
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for range 4 {
		wg.Go(func() {
			verifier := oauth2.GenerateVerifier()
			for range 5 {
				req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, s.URL()+"/authorize?"+authParams(verifier).Encode(), nil)
				resp, err := c.Do(req)
				if err != nil {
					t.Errorf("GET authorize: %v", err)
					return
				}
				resp.Body.Close()
				loc, _ := url.Parse(resp.Header.Get("Location"))
				req, _ = http.NewRequestWithContext(t.Context(), http.MethodPost, s.URL()+"/token", strings.NewReader(codeForm(loc.Query().Get("code"), verifier).Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				resp, err = c.Do(req)
				if err != nil {
					t.Errorf("POST token: %v", err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("POST token = %d, want 200", resp.StatusCode)
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 10 {
			s.SetTamper(fakeidp.Tamper{WrongNonce: i%2 == 0})
			s.SetNextClaims(map[string]any{"x": i})
			s.SetDiscoveryIssuer("")
			s.SetLatency(0)
			s.FailToken(0)
			s.RotateKey()
			_ = s.Hits("token")
		}
	})
	wg.Wait()
	if got := s.Hits("token"); got != 20 {
		t.Errorf("Hits(token) = %d, want 20", got)
	}
}
