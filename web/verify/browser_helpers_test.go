package verify

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	browserClient = "shop-web"
	browserSecret = "shop-secret"
	browserHost   = "shop.example.com"
)

var browserCookieKey = []byte("0123456789abcdef0123456789abcdef")

// fakeOP is Keyward's token endpoint as browser mode sees it: it redeems the
// codes the test issues (checking PKCE and client authentication) and
// rotating refresh tokens, minting tokens with the env's key and clock.
type fakeOP struct {
	*httptest.Server
	t         testing.TB
	e         *env
	refreshes atomic.Int64

	mu          sync.Mutex
	extra       jwt.MapClaims        // added to every access token
	codes       map[string][2]string // code → nonce, challenge
	refresh     string               // the one valid refresh token
	failRefresh bool
	ttl         time.Duration // of the access tokens; 0: 5m
	n           int
}

func newFakeOP(t *testing.T, e *env) *fakeOP {
	op := &fakeOP{t: t, e: e, codes: map[string][2]string{}}
	op.Server = httptest.NewServer(http.HandlerFunc(op.token))
	t.Cleanup(op.Close)
	return op
}

func (op *fakeOP) issueCode(code, nonce, challenge string) {
	op.mu.Lock()
	defer op.mu.Unlock()
	op.codes[code] = [2]string{nonce, challenge}
}

func (op *fakeOP) setExtra(c jwt.MapClaims) {
	op.mu.Lock()
	defer op.mu.Unlock()
	op.extra = c
}

func (op *fakeOP) setTTL(ttl time.Duration) {
	op.mu.Lock()
	defer op.mu.Unlock()
	op.ttl = ttl
}

func (op *fakeOP) setFailRefresh(fail bool) {
	op.mu.Lock()
	defer op.mu.Unlock()
	op.failRefresh = fail
}

func (op *fakeOP) token(w http.ResponseWriter, r *http.Request) {
	if id, secret, ok := r.BasicAuth(); !ok || id != browserClient || secret != browserSecret {
		http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
		return
	}
	_ = r.ParseForm()
	op.mu.Lock()
	defer op.mu.Unlock()
	nonce := ""
	switch r.PostForm.Get("grant_type") {
	case "authorization_code":
		c, ok := op.codes[r.PostForm.Get("code")]
		delete(op.codes, r.PostForm.Get("code"))
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		if !ok || base64.RawURLEncoding.EncodeToString(sum[:]) != c[1] {
			http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
			return
		}
		nonce = c[0]
	case "refresh_token":
		op.refreshes.Add(1)
		time.Sleep(20 * time.Millisecond) // let parallel callers pile up
		if op.failRefresh || r.PostForm.Get("refresh_token") != op.refresh {
			http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
			return
		}
	default:
		http.Error(w, `{"error":"unsupported_grant_type"}`, http.StatusBadRequest)
		return
	}
	op.n++
	now, ttl := op.e.clock.Now(), op.ttl
	if ttl == 0 {
		ttl = 5 * time.Minute
	}
	at := with(op.e.claims, "jti", fmt.Sprintf("jti-%d", op.n), "iat", now.Unix(), "exp", now.Add(ttl).Unix())
	for k, v := range op.extra {
		at[k] = v
	}
	idc := jwt.MapClaims{"iss": op.e.ks.URL, "sub": "corp|1234", "aud": browserClient, "exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix()}
	if nonce != "" {
		idc["nonce"] = nonce
	}
	op.refresh = fmt.Sprintf("refresh-%d", op.n)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"access_token": mint(op.t, op.e.rsa, nil, at), "token_type": "Bearer", "expires_in": int(ttl.Seconds()),
		"refresh_token": op.refresh, "id_token": mint(op.t, op.e.rsa, map[string]any{"typ": "JWT"}, idc),
	})
}

// browserEnv is a handler in browser mode against a fakeOP, and a cookie jar
// for the one browser the test plays.
type browserEnv struct {
	e   *env
	op  *fakeOP
	b   *Browser
	jar map[string]string
}

func newBrowserEnv(t *testing.T, mutate func(*BrowserConfig)) *browserEnv {
	t.Helper()
	return newBrowserEnvWith(t, nil, mutate)
}

// newBrowserEnvWith is newBrowserEnv with the verifier's config mutated too.
func newBrowserEnvWith(t *testing.T, mutateVerifier func(*Config), mutate func(*BrowserConfig)) *browserEnv {
	t.Helper()
	e := newEnv(t)
	v := newVerifier(t, e.ks, e.clock, mutateVerifier)
	op := newFakeOP(t, e)
	cfg := BrowserConfig{
		ClientID: browserClient, ClientSecret: browserSecret, RedirectURL: "https://" + browserHost + "/oauth2/callback",
		CookieSecret: browserCookieKey, AllowedRedirectDomains: []string{browserHost, ".apps.example.com"},
		AuthURL: "https://sso.example.com/authorize", TokenURL: op.URL, HTTPClient: op.Client(), Now: e.clock.Now,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	b, err := NewBrowser(v, cfg)
	if err != nil {
		t.Fatalf("NewBrowser() = %v", err)
	}
	return &browserEnv{e: e, op: op, b: b, jar: map[string]string{}}
}

func (be *browserEnv) handler(family Headers) http.Handler {
	return NewHandler(be.b.v, Rules{
		{Host: browserHost, Path: "/admin/", Browser: true, Groups: Set{AnyOf: []string{"shop-admins"}}},
		{Host: browserHost, Path: "/", Browser: true},
	}, HandlerOptions{Headers: family, Browser: be.b})
}

// do sends a request with the jar's cookies and stores the cookies set.
func (be *browserEnv) do(t *testing.T, h http.Handler, target string, hdr http.Header) *httptest.ResponseRecorder {
	t.Helper()
	return be.doMethod(t, h, http.MethodGet, target, hdr)
}

// doMethod is do with another method.
func (be *browserEnv) doMethod(t *testing.T, h http.Handler, method, target string, hdr http.Header) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequestWithContext(t.Context(), method, target, nil)
	req.Host = browserHost
	for k, v := range hdr {
		req.Header[k] = v
	}
	for name, value := range be.jar {
		req.AddCookie(&http.Cookie{Name: name, Value: value})
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	for _, c := range (&http.Response{Header: rec.Header()}).Cookies() {
		if c.MaxAge < 0 {
			delete(be.jar, c.Name)
		} else {
			be.jar[c.Name] = c.Value
		}
	}
	return rec
}

// signIn runs /oauth2/start?rd= and the callback, with tamper applied to the
// callback's query, and returns the callback's answer.
func (be *browserEnv) signIn(t *testing.T, h http.Handler, rd string, tamper func(q url.Values)) *httptest.ResponseRecorder {
	t.Helper()
	rec := be.do(t, h, "/oauth2/start?rd="+url.QueryEscape(rd), nil)
	if rec.Code != http.StatusFound {
		t.Fatalf("GET /oauth2/start = %d, want 302: %s", rec.Code, rec.Body)
	}
	loc, err := url.Parse(rec.Header().Get("Location"))
	if err != nil || !strings.HasPrefix(loc.String(), "https://sso.example.com/authorize?") {
		t.Fatalf("start redirected to %q, want Keyward's /authorize", rec.Header().Get("Location"))
	}
	aq := loc.Query()
	for k, want := range map[string]string{"client_id": browserClient, "response_type": "code", "code_challenge_method": "S256",
		"redirect_uri": "https://" + browserHost + "/oauth2/callback", "scope": "openid email profile groups offline_access"} {
		if aq.Get(k) != want {
			t.Errorf("authorize %s = %q, want %q", k, aq.Get(k), want)
		}
	}
	if aq.Get("state") == "" || aq.Get("nonce") == "" || aq.Get("code_challenge") == "" {
		t.Fatalf("authorize URL lacks state, nonce or code_challenge: %s", loc)
	}
	be.op.issueCode("code-1", aq.Get("nonce"), aq.Get("code_challenge"))
	q := url.Values{"code": {"code-1"}, "state": {aq.Get("state")}, "iss": {be.e.ks.URL}}
	if tamper != nil {
		tamper(q)
	}
	return be.do(t, h, "/oauth2/callback?"+q.Encode(), nil)
}

func nginxCheck(uri string) http.Header {
	return http.Header{"X-Original-Uri": {uri}, "X-Forwarded-Host": {browserHost}}
}

// withDiscovery makes the verifier's HTTP client answer the issuer's
// discovery document with doc (issuer and jwks_uri added); other requests
// reach the key server.
func withDiscovery(doc map[string]any) func(*Config) {
	return func(c *Config) {
		full := map[string]any{"issuer": c.Issuer, "jwks_uri": c.Issuer + "/keys"}
		for k, v := range doc {
			full[k] = v
		}
		body, _ := json.Marshal(full)
		base := c.HTTPClient.Transport
		if base == nil {
			base = http.DefaultTransport
		}
		c.HTTPClient = &http.Client{Transport: discoveryTransport{base: base, path: "/.well-known/openid-configuration", body: body}}
	}
}

type discoveryTransport struct {
	base http.RoundTripper
	path string
	body []byte
}

func (d discoveryTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Path != d.path {
		return d.base.RoundTrip(r)
	}
	rec := httptest.NewRecorder()
	rec.Header().Set("Content-Type", "application/json")
	_, _ = rec.Write(d.body)
	resp := rec.Result()
	resp.Request = r
	return resp, nil
}
