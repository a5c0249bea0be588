package demoapp

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/coreos/go-oidc/v3/oidc/oidctest"
	jose "github.com/go-jose/go-jose/v4"
)

const (
	testClientID     = "demo"
	testClientSecret = "demo-secret"
	testKID          = "key-1"
)

// testIDP is a small OIDC provider: oidctest.Server serves discovery and
// JWKS; this adds an authorize endpoint that approves at once and a token
// endpoint for the code (with PKCE) and refresh grants.
type testIDP struct {
	t      *testing.T
	srv    *httptest.Server
	key    *rsa.PrivateKey
	claims map[string]any // identity claims put in both tokens

	mu             sync.Mutex
	discoveryDown  bool
	discoveryHits  int
	wrongNonce     bool
	rejectRefresh  bool
	omitRefresh    bool
	codes          map[string]authRequest
	refreshTokens  map[string]authRequest
	lastAuthorize  url.Values
	issued         int
	refreshGrants  int
	codeGrantCalls int
}

type authRequest struct {
	redirectURI, challenge, nonce, scope string
}

func newTestIDP(t *testing.T) *testIDP {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p := &testIDP{
		t:   t,
		key: key,
		claims: map[string]any{
			"name":   "Ada Lovelace",
			"email":  "ada@example.com",
			"groups": []string{"engineering", "admins"},
		},
		codes:         map[string]authRequest{},
		refreshTokens: map[string]authRequest{},
	}
	o := &oidctest.Server{PublicKeys: []oidctest.PublicKey{{PublicKey: key.Public(), KeyID: testKID, Algorithm: oidc.RS256}}}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		down := p.discoveryDown
		p.discoveryHits++
		p.mu.Unlock()
		if down {
			http.Error(w, "starting up", http.StatusServiceUnavailable)
			return
		}
		o.ServeHTTP(w, r)
	})
	mux.Handle("/keys", o)
	mux.HandleFunc("/auth", p.authorize)
	mux.HandleFunc("/token", p.token)
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	o.SetIssuer(p.srv.URL)
	return p
}

func (p *testIDP) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lastAuthorize = q
	if q.Get("client_id") != testClientID || q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" {
		http.Error(w, "bad authorize request: "+q.Encode(), http.StatusBadRequest)
		return
	}
	code := rand.Text()
	p.codes[code] = authRequest{
		redirectURI: q.Get("redirect_uri"),
		challenge:   q.Get("code_challenge"),
		nonce:       q.Get("nonce"),
		scope:       q.Get("scope"),
	}
	u, err := url.Parse(q.Get("redirect_uri"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	v := url.Values{"code": {code}, "state": {q.Get("state")}}
	u.RawQuery = v.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

func (p *testIDP) token(w http.ResponseWriter, r *http.Request) {
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostFormValue("client_id"), r.PostFormValue("client_secret")
	}
	if id != testClientID || secret != testClientSecret {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "bad client credentials")
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var req authRequest
	switch r.PostFormValue("grant_type") {
	case "authorization_code":
		p.codeGrantCalls++
		var found bool
		req, found = p.codes[r.PostFormValue("code")]
		delete(p.codes, r.PostFormValue("code"))
		if !found || req.redirectURI != r.PostFormValue("redirect_uri") {
			oauthError(w, http.StatusBadRequest, "invalid_grant", "unknown code or redirect_uri")
			return
		}
		sum := sha256.Sum256([]byte(r.PostFormValue("code_verifier")))
		if base64.RawURLEncoding.EncodeToString(sum[:]) != req.challenge {
			oauthError(w, http.StatusBadRequest, "invalid_grant", "PKCE verification failed")
			return
		}
	case "refresh_token":
		p.refreshGrants++
		var found bool
		req, found = p.refreshTokens[r.PostFormValue("refresh_token")]
		delete(p.refreshTokens, r.PostFormValue("refresh_token")) // rotation
		if !found || p.rejectRefresh {
			oauthError(w, http.StatusBadRequest, "invalid_grant", "refresh token revoked")
			return
		}
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "")
		return
	}

	p.issued++
	now := time.Now()
	base := map[string]any{"iss": p.srv.URL, "sub": "user-1", "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()}
	maps.Copy(base, p.claims)
	idc := maps.Clone(base)
	idc["aud"] = testClientID
	idc["nonce"] = req.nonce
	if p.wrongNonce {
		idc["nonce"] = "not-the-nonce"
	}
	at := maps.Clone(base)
	at["aud"] = "https://api.example"
	at["client_id"] = testClientID
	at["scope"] = req.scope
	at["jti"] = fmt.Sprintf("at-%d", p.issued)

	resp := map[string]any{
		"access_token": p.sign(at, "at+jwt"),
		"token_type":   "Bearer",
		"expires_in":   300,
		"id_token":     p.sign(idc, "JWT"),
		"scope":        req.scope,
	}
	if !p.omitRefresh {
		rt := rand.Text()
		p.refreshTokens[rt] = req
		resp["refresh_token"] = rt
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(resp)
}

func (p *testIDP) sign(claims map[string]any, typ string) string {
	opts := (&jose.SignerOptions{}).WithType(jose.ContentType(typ)).WithHeader("kid", testKID)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: p.key}, opts)
	if err != nil {
		p.t.Errorf("new signer: %v", err)
		return ""
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		p.t.Errorf("marshal claims: %v", err)
		return ""
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		p.t.Errorf("sign: %v", err)
		return ""
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		p.t.Errorf("serialize: %v", err)
	}
	return s
}

func (p *testIDP) set(f func(p *testIDP)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(p)
}

func (p *testIDP) get(f func(p *testIDP)) { p.set(f) }

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}
