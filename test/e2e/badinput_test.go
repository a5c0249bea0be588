package e2e

import (
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// noRedirect is a client that never follows a redirect, so a Location header
// is seen, not visited.
func noRedirect() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

var titleRE = regexp.MustCompile(`<h1 id="kw-title">([^<]*)</h1>`)

// pageTitle returns the title of a Keyward error page ("" if body is none).
func pageTitle(body string) string {
	m := titleRE.FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

// checkErrorPage asserts that resp is the HTML error page with status and
// title, and that it redirects nowhere.
func checkErrorPage(t *testing.T, resp *http.Response, status int, title string) {
	t.Helper()
	body := readAll(t, resp)
	if resp.StatusCode != status {
		t.Errorf("status = %d, want %d; body: %.300s", resp.StatusCode, status, body)
	}
	if loc := resp.Header.Get("Location"); loc != "" {
		t.Errorf("Location = %q, want none (an error page, not a redirect)", loc)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("Content-Type = %q, want text/html", ct)
	}
	if got := pageTitle(body); got != title {
		t.Errorf("error page title = %q, want %q", got, title)
	}
}

// clientRedirect asserts that resp redirects to the client at redirectURI
// and returns the redirect's query.
func clientRedirect(t *testing.T, resp *http.Response, redirectURI string) url.Values {
	t.Helper()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("status = %d, want %d (redirect to the client); body: %.300s", resp.StatusCode, http.StatusSeeOther, readAll(t, resp))
	}
	u, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatalf("parse Location: %v", err)
	}
	if got := u.Scheme + "://" + u.Host + u.Path; got != redirectURI {
		t.Fatalf("redirect goes to %q, want %q", got, redirectURI)
	}
	return u.Query()
}

func getNoRedirect(t *testing.T, u string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := noRedirect().Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestAuthorizeRejectsUnvalidatedClient(t *testing.T) {
	e := newEnv(t, envOptions{})
	tests := []struct {
		name               string
		clientID, redirect string
	}{
		{name: "another client's redirect_uri", clientID: appID, redirect: app2Redir},
		{name: "unregistered redirect_uri", clientID: appID, redirect: "https://evil.example/callback"},
		{name: "registered redirect_uri with extra path", clientID: appID, redirect: appRedir + "/x"},
		{name: "unknown client_id", clientID: "nobody", redirect: appRedir},
		{name: "no client_id", clientID: "", redirect: appRedir},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.idps[0].Hits("authorize")
			c := e.client(tt.clientID, "", tt.redirect, nil)
			l := newLogin()
			u := c.oauth.AuthCodeURL(l.state, oidc.Nonce(l.nonce), oauth2.S256ChallengeOption(l.verifier))
			checkErrorPage(t, getNoRedirect(t, u), http.StatusBadRequest, "Invalid sign-in request")
			if got := e.idps[0].Hits("authorize"); got != before {
				t.Errorf("upstream authorize hits = %d, want %d (not visited)", got, before)
			}
		})
	}
}

func TestAuthorizeRequiresS256PKCE(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.client(appID, appSecret, appRedir, nil)
	tests := []struct {
		name   string
		params map[string]string
	}{
		{name: "no PKCE", params: nil},
		{name: "plain", params: map[string]string{"code_challenge": strings.Repeat("p", 43), "code_challenge_method": "plain"}},
		{name: "challenge without method", params: map[string]string{"code_challenge": strings.Repeat("p", 43)}},
		{name: "unknown method", params: map[string]string{"code_challenge": strings.Repeat("p", 43), "code_challenge_method": "S512"}},
		{name: "method without challenge", params: map[string]string{"code_challenge_method": "S256"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.idps[0].Hits("authorize")
			l := newLogin()
			opts := []oauth2.AuthCodeOption{oidc.Nonce(l.nonce)}
			for k, v := range tt.params {
				opts = append(opts, oauth2.SetAuthURLParam(k, v))
			}
			q := clientRedirect(t, getNoRedirect(t, c.oauth.AuthCodeURL(l.state, opts...)), appRedir)
			if got := q.Get("error"); got != "invalid_request" {
				t.Errorf("error = %q, want %q", got, "invalid_request")
			}
			if got := q.Get("state"); got != l.state {
				t.Errorf("state = %q, want %q", got, l.state)
			}
			if got := q.Get("iss"); got != e.issuer {
				t.Errorf("iss = %q, want %q", got, e.issuer)
			}
			if q.Has("code") {
				t.Errorf("redirect carries a code: %v", q)
			}
			if got := e.idps[0].Hits("authorize"); got != before {
				t.Errorf("upstream authorize hits = %d, want %d (not visited)", got, before)
			}
		})
	}
}

// exchange posts the authorization-code grant for c.
func (c *rp) exchange(code, verifier string) (int, map[string]any) {
	return c.postForm("/token", url.Values{
		"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {c.oauth.RedirectURL}, "code_verifier": {verifier},
	})
}

func TestWrongCodeVerifierBurnsCode(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.client(appID, appSecret, appRedir, nil)
	l := newLogin()
	code := c.code(c.authorize(l), l)
	if status, m := c.exchange(code, oauth2.GenerateVerifier()); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Errorf("exchange with a wrong verifier = %d %v, want 400 invalid_grant", status, m["error"])
	}
	if status, m := c.exchange(code, l.verifier); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Errorf("exchange with the right verifier after a wrong one = %d %v, want 400 invalid_grant", status, m["error"])
	}
}

func TestCodeReuseRevokesTokens(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.client(appID, appSecret, appRedir, nil)
	l := newLogin()
	code := c.code(c.authorize(l), l)
	status, first := c.exchange(code, l.verifier)
	if status != http.StatusOK {
		t.Fatalf("first exchange = %d %v, want 200", status, first)
	}
	at, _ := first["access_token"].(string)
	rt, _ := first["refresh_token"].(string)
	if at == "" || rt == "" {
		t.Fatalf("first exchange returned access token %q, refresh token %q; want both", at, rt)
	}
	if got := c.introspect(at); got["active"] != true {
		t.Fatalf("introspect before reuse = %v, want active", got)
	}
	if status, m := c.exchange(code, l.verifier); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Errorf("second exchange = %d %v, want 400 invalid_grant", status, m["error"])
	}
	if got := c.introspect(at); got["active"] != false {
		t.Errorf("introspect access token after code reuse = %v, want active=false", got)
	}
	if status, m := c.refresh(rt); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Errorf("refresh after code reuse = %d %v, want 400 invalid_grant", status, m["error"])
	}
	if status, hdr, m := userinfo(t, e, "Bearer "+at); status != http.StatusUnauthorized || m["error"] != "invalid_token" {
		t.Errorf("userinfo after code reuse = %d %v (WWW-Authenticate %q), want 401 invalid_token", status, m["error"], hdr.Get("WWW-Authenticate"))
	}
}

// call sends one raw request and decodes a JSON answer.
func call(t *testing.T, method, u, contentType, body string, auth *url.Userinfo, authz string) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if auth != nil {
		pass, _ := auth.Password()
		req.SetBasicAuth(auth.Username(), pass)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("%s %s: %d, body is not JSON: %.300s", method, u, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, resp.Header, m
}

func userinfo(t *testing.T, e *env, authz string) (int, http.Header, map[string]any) {
	t.Helper()
	return call(t, http.MethodGet, e.issuer+"/userinfo", "", "", nil, authz)
}

func TestTokenEndpointBadInput(t *testing.T) {
	e := newEnv(t, envOptions{})
	const form = "application/x-www-form-urlencoded"
	good := url.UserPassword(appID, appSecret)
	refresh := "grant_type=refresh_token&refresh_token=" + strings.Repeat("r", 40)
	tests := []struct {
		name        string
		method      string
		contentType string
		body        string
		auth        *url.Userinfo
		wantStatus  int
		wantError   string // "" for a non-JSON answer
		wantAllow   string
	}{
		{name: "unknown client", body: refresh, auth: url.UserPassword("nobody", appSecret), wantStatus: 401, wantError: "invalid_client"},
		{name: "wrong client secret", body: refresh, auth: url.UserPassword(appID, "wrong-secret"), wantStatus: 401, wantError: "invalid_client"},
		{name: "another client's secret", body: refresh, auth: url.UserPassword(appID, app2Secret), wantStatus: 401, wantError: "invalid_client"},
		{name: "malformed body", body: "%zz", auth: good, wantStatus: 400, wantError: "invalid_request"},
		{name: "oversized body", body: "grant_type=refresh_token&refresh_token=" + strings.Repeat("r", 65<<10), auth: good, wantStatus: 400, wantError: "invalid_request"},
		{name: "grant_type password", body: "grant_type=password&username=alice&password=x", auth: good, wantStatus: 400, wantError: "unsupported_grant_type"},
		{name: "grant_type urn:foo", body: "grant_type=urn%3Afoo", auth: good, wantStatus: 400, wantError: "unsupported_grant_type"},
		{name: "grant_type client_credentials, not allowed for the client", body: "grant_type=client_credentials", auth: good, wantStatus: 400, wantError: "unauthorized_client"},
		{name: "missing grant_type", body: "code=abc", auth: good, wantStatus: 400, wantError: "invalid_request"},
		{name: "unknown refresh token", body: refresh, auth: good, wantStatus: 400, wantError: "invalid_grant"},
		{name: "unknown code", body: "grant_type=authorization_code&code=abc.def&redirect_uri=" + url.QueryEscape(appRedir) + "&code_verifier=" + strings.Repeat("v", 43), auth: good, wantStatus: 400, wantError: "invalid_grant"},
		{name: "GET", method: http.MethodGet, auth: good, wantStatus: 405, wantAllow: "POST"},
		{name: "PUT", method: http.MethodPut, body: refresh, contentType: form, auth: good, wantStatus: 405, wantAllow: "POST"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method, ct := tt.method, tt.contentType
			if method == "" {
				method = http.MethodPost
			}
			if ct == "" && method == http.MethodPost {
				ct = form
			}
			status, hdr, m := call(t, method, e.issuer+"/token", ct, tt.body, tt.auth, "")
			if status != tt.wantStatus {
				t.Errorf("%s /token = %d %v, want %d", method, status, m, tt.wantStatus)
			}
			if got := hdr.Get("Allow"); got != tt.wantAllow {
				t.Errorf("Allow = %q, want %q", got, tt.wantAllow)
			}
			if tt.wantError == "" {
				return
			}
			if got := m["error"]; got != tt.wantError {
				t.Errorf("error = %v, want %v", got, tt.wantError)
			}
			if got := hdr.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q, want %q", got, "no-store")
			}
		})
	}

	// The oversized body left the server healthy: it still signs people in.
	if status, _, _ := call(t, http.MethodGet, e.issuer+"/healthz", "", "", nil, ""); status != http.StatusOK {
		t.Errorf("GET /healthz after bad input = %d, want 200", status)
	}
	c := e.client(appID, appSecret, appRedir, nil)
	c.signIn()
}

func TestTokenResponsesAreNotCached(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.client(appID, appSecret, appRedir, nil)
	l := newLogin()
	code := c.code(c.authorize(l), l)
	body := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {appRedir}, "code_verifier": {l.verifier}}.Encode()
	const form = "application/x-www-form-urlencoded"
	auth := url.UserPassword(appID, appSecret)

	status, hdr, m := call(t, http.MethodPost, e.issuer+"/token", form, body, auth, "")
	if status != http.StatusOK {
		t.Fatalf("exchange = %d %v, want 200", status, m)
	}
	if got := hdr.Get("Cache-Control"); got != "no-store" {
		t.Errorf("exchange: Cache-Control = %q, want %q", got, "no-store")
	}
	rt, _ := m["refresh_token"].(string)
	status, hdr, m = call(t, http.MethodPost, e.issuer+"/token", form, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}.Encode(), auth, "")
	if status != http.StatusOK {
		t.Fatalf("refresh = %d %v, want 200", status, m)
	}
	if got := hdr.Get("Cache-Control"); got != "no-store" {
		t.Errorf("refresh: Cache-Control = %q, want %q", got, "no-store")
	}
	status, hdr, m = call(t, http.MethodPost, e.issuer+"/token", form, body, auth, "")
	if status != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Errorf("reused code = %d %v, want 400 invalid_grant", status, m["error"])
	}
	if got := hdr.Get("Cache-Control"); got != "no-store" {
		t.Errorf("error: Cache-Control = %q, want %q", got, "no-store")
	}
}

func TestUserInfoRejectsMissingAndBadTokens(t *testing.T) {
	e := newEnv(t, envOptions{})
	tests := []struct {
		name      string
		authz     string
		wantError string
		wantWWW   string
	}{
		{name: "no token", authz: "", wantError: "invalid_request", wantWWW: `Bearer realm="keyward"`},
		{name: "empty bearer", authz: "Bearer ", wantError: "invalid_request", wantWWW: `Bearer realm="keyward"`},
		{name: "basic scheme", authz: "Basic YXBwOmFwcA==", wantError: "invalid_request", wantWWW: `Bearer realm="keyward"`},
		{name: "garbage token", authz: "Bearer garbage", wantError: "invalid_token", wantWWW: `Bearer realm="keyward", error="invalid_token"`},
		{name: "forged JWT", authz: "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", wantError: "invalid_token", wantWWW: `Bearer realm="keyward", error="invalid_token"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, hdr, m := userinfo(t, e, tt.authz)
			if status != http.StatusUnauthorized {
				t.Errorf("userinfo = %d %v, want 401", status, m)
			}
			if got := hdr.Get("WWW-Authenticate"); got != tt.wantWWW {
				t.Errorf("WWW-Authenticate = %q, want %q", got, tt.wantWWW)
			}
			if got := m["error"]; got != tt.wantError {
				t.Errorf("error = %v, want %v", got, tt.wantError)
			}
		})
	}
}
