package fakeidp_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/keyward/keyward/test/fakeidp"
)

func TestAuthorizeValidation(t *testing.T) {
	s := newServer(t, nil)
	tests := []struct {
		name       string
		modify     func(url.Values)
		wantStatus int    // for errors shown on a page
		wantError  string // for errors sent back to the client
	}{
		{name: "unknown client", modify: func(q url.Values) { q.Set("client_id", "nobody") }, wantStatus: http.StatusBadRequest},
		{name: "unregistered redirect", modify: func(q url.Values) { q.Set("redirect_uri", redirectURI+"/x") }, wantStatus: http.StatusBadRequest},
		{name: "other client's redirect", modify: func(q url.Values) { q.Set("redirect_uri", "https://other.example.com/cb") }, wantStatus: http.StatusBadRequest},
		{name: "implicit flow", modify: func(q url.Values) { q.Set("response_type", "token") }, wantError: "unsupported_response_type"},
		{name: "no openid scope", modify: func(q url.Values) { q.Set("scope", "email") }, wantError: "invalid_scope"},
		{name: "no PKCE", modify: func(q url.Values) { q.Del("code_challenge") }, wantError: "invalid_request"},
		{name: "PKCE plain", modify: func(q url.Values) { q.Set("code_challenge_method", "plain") }, wantError: "invalid_request"},
		{name: "PKCE method missing", modify: func(q url.Values) { q.Del("code_challenge_method") }, wantError: "invalid_request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := authParams(oauth2.GenerateVerifier())
			tc.modify(q)
			resp, _ := get(t, s.URL()+"/authorize?"+q.Encode())
			if tc.wantStatus != 0 {
				if resp.StatusCode != tc.wantStatus || resp.Header.Get("Location") != "" {
					t.Fatalf("GET authorize = %d to %q, want %d and no redirect", resp.StatusCode, resp.Header.Get("Location"), tc.wantStatus)
				}
				return
			}
			got := location(t, resp)
			if got.Get("error") != tc.wantError || got.Get("state") != "st" || got.Has("code") {
				t.Errorf("authorize redirect = %v, want error=%s with state", got, tc.wantError)
			}
		})
	}
}

// form is a rendered login page.
type form struct {
	token  string
	cookie *http.Cookie
}

func openForm(t *testing.T, s *fakeidp.Server, q url.Values) (form, string) {
	t.Helper()
	resp, body := get(t, s.URL()+"/authorize?"+q.Encode())
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET authorize = %d %s, want the login page", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return form{token: formToken(t, body), cookie: csrfCookie(resp)}, body
}

func formToken(t *testing.T, body string) string {
	t.Helper()
	const marker = `name="form_token" value="`
	i := strings.Index(body, marker)
	if i < 0 {
		t.Fatalf("login page has no form token:\n%s", body)
	}
	rest := body[i+len(marker):]
	return rest[:strings.IndexByte(rest, '"')]
}

func csrfCookie(resp *http.Response) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == "fakeidp_csrf" {
			return c
		}
	}
	return nil
}

func (f form) submit(t *testing.T, s *fakeidp.Server, username, password string, modify func(*http.Request)) (*http.Response, string) {
	t.Helper()
	return postForm(t, s.URL()+"/authorize", url.Values{"form_token": {f.token}, "username": {username}, "password": {password}},
		func(r *http.Request) {
			if f.cookie != nil {
				r.AddCookie(f.cookie)
			}
			if modify != nil {
				modify(r)
			}
		})
}

func TestLoginForm(t *testing.T) {
	s := newServer(t, func(c *fakeidp.Config) { c.AutoLogin = ""; c.Title = "Acme SSO" })
	verifier := oauth2.GenerateVerifier()
	q := authParams(verifier)
	q.Set("login_hint", "bob")

	f, page := openForm(t, s, q)
	for _, want := range []string{"Acme SSO", `<label for="username">`, `<label for="password">`, `value="bob"`, `method="post"`} {
		if !strings.Contains(page, want) {
			t.Errorf("login page lacks %q", want)
		}
	}
	if f.cookie == nil || !f.cookie.HttpOnly || f.cookie.SameSite != http.SameSiteLaxMode {
		t.Fatalf("csrf cookie = %+v, want HttpOnly SameSite=Lax", f.cookie)
	}

	t.Run("wrong password re-renders", func(t *testing.T) {
		resp, body := f.submit(t, s, "bob", "wrong", nil)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "Invalid username or password.") || !strings.Contains(body, `value="bob"`) {
			t.Fatalf("POST wrong password = %d, want 401 with the error and the username kept", resp.StatusCode)
		}
		f.token = formToken(t, body)
	})
	t.Run("without the csrf cookie", func(t *testing.T) {
		g, _ := openForm(t, s, q)
		g.cookie = nil
		if resp, _ := g.submit(t, s, "bob", "bob-demo", nil); resp.StatusCode != http.StatusForbidden {
			t.Errorf("POST without cookie = %d, want 403", resp.StatusCode)
		}
	})
	t.Run("with another browser's cookie", func(t *testing.T) {
		g, _ := openForm(t, s, q)
		g.cookie = &http.Cookie{Name: "fakeidp_csrf", Value: strings.Repeat("A", len(f.cookie.Value))}
		if resp, _ := g.submit(t, s, "bob", "bob-demo", nil); resp.StatusCode != http.StatusForbidden {
			t.Errorf("POST with a foreign cookie = %d, want 403", resp.StatusCode)
		}
	})
	t.Run("cross-origin post", func(t *testing.T) {
		g, _ := openForm(t, s, q)
		cross := func(r *http.Request) { r.Header.Set("Sec-Fetch-Site", "cross-site") }
		if resp, _ := g.submit(t, s, "bob", "bob-demo", cross); resp.StatusCode != http.StatusForbidden {
			t.Errorf("cross-origin POST = %d, want 403", resp.StatusCode)
		}
	})

	resp, _ := f.submit(t, s, "bob", "bob-demo", nil)
	got := location(t, resp)
	if got.Get("code") == "" || got.Get("state") != "st" {
		t.Fatalf("login redirect = %v, want code and state", got)
	}
	status, tok := token(t, s, codeForm(got.Get("code"), verifier), nil)
	if status != http.StatusOK {
		t.Fatalf("token = %d %v", status, tok)
	}
	if sub := verifyIDToken(t, s, tok["id_token"].(string))["sub"]; sub != "demo-bob" {
		t.Errorf("sub = %v, want demo-bob", sub)
	}

	if resp, _ := f.submit(t, s, "bob", "bob-demo", nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("second POST of one form = %d, want 403", resp.StatusCode)
	}

	q.Set("prompt", "none")
	resp, _ = get(t, s.URL()+"/authorize?"+q.Encode())
	if got := location(t, resp).Get("error"); got != "login_required" {
		t.Errorf("prompt=none error = %q, want login_required", got)
	}
}

func TestToken(t *testing.T) {
	s := newServer(t, nil)
	basic := func(id, pw string) func(*http.Request) {
		return func(r *http.Request) { r.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(pw)) }
	}
	noClient := func(f url.Values) { f.Del("client_id"); f.Del("client_secret") }
	tests := []struct {
		name       string
		modify     func(url.Values)
		auth       func(*http.Request)
		reuse      bool
		wantStatus int
		wantError  string
	}{
		{name: "client_secret_post", wantStatus: http.StatusOK},
		{name: "client_secret_basic", modify: noClient, auth: basic(clientID, secret), wantStatus: http.StatusOK},
		{name: "wrong secret", modify: func(f url.Values) { f.Set("client_secret", "x") }, wantStatus: http.StatusUnauthorized, wantError: "invalid_client"},
		{name: "wrong basic secret", modify: noClient, auth: basic(clientID, "x"), wantStatus: http.StatusUnauthorized, wantError: "invalid_client"},
		{name: "two auth methods", auth: basic(clientID, secret), wantStatus: http.StatusBadRequest, wantError: "invalid_request"},
		{name: "code reused", reuse: true, wantStatus: http.StatusBadRequest, wantError: "invalid_grant"},
		{name: "redirect mismatch", modify: func(f url.Values) { f.Set("redirect_uri", redirectURI+"/x") }, wantStatus: http.StatusBadRequest, wantError: "invalid_grant"},
		{name: "PKCE verifier wrong", modify: func(f url.Values) { f.Set("code_verifier", oauth2.GenerateVerifier()) }, wantStatus: http.StatusBadRequest, wantError: "invalid_grant"},
		{name: "PKCE verifier missing", modify: func(f url.Values) { f.Del("code_verifier") }, wantStatus: http.StatusBadRequest, wantError: "invalid_grant"},
		{
			name:       "other client",
			modify:     func(f url.Values) { f.Set("client_id", "other"); f.Set("client_secret", "other-secret") },
			wantStatus: http.StatusBadRequest, wantError: "invalid_grant",
		},
		{name: "unsupported grant", modify: func(f url.Values) { f.Set("grant_type", "password") }, wantStatus: http.StatusBadRequest, wantError: "unsupported_grant_type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			verifier := oauth2.GenerateVerifier()
			f := codeForm(code(t, s, authParams(verifier)), verifier)
			if tc.reuse {
				if status, _ := token(t, s, f, nil); status != http.StatusOK {
					t.Fatalf("first redemption = %d", status)
				}
			}
			if tc.modify != nil {
				tc.modify(f)
			}
			status, got := token(t, s, f, tc.auth)
			if status != tc.wantStatus || (tc.wantError != "" && got["error"] != tc.wantError) {
				t.Fatalf("POST token = %d %v, want %d %s", status, got, tc.wantStatus, tc.wantError)
			}
			if status == http.StatusOK && (got["access_token"] == nil || got["id_token"] == nil || got["token_type"] != "Bearer" || got["refresh_token"] != nil) {
				t.Errorf("POST token = %v, want access and ID tokens, no refresh token", got)
			}
		})
	}
}

func TestRefresh(t *testing.T) {
	s := newServer(t, nil)
	verifier := oauth2.GenerateVerifier()
	q := authParams(verifier)
	q.Set("scope", "openid offline_access")
	_, first := token(t, s, codeForm(code(t, s, q), verifier), nil)
	rt, _ := first["refresh_token"].(string)
	if rt == "" {
		t.Fatalf("token with offline_access = %v, want a refresh token", first)
	}
	f := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {clientID}, "client_secret": {secret}}
	status, second := token(t, s, f, nil)
	if status != http.StatusOK || second["refresh_token"] == rt || second["refresh_token"] == nil {
		t.Fatalf("refresh = %d %v, want a new refresh token", status, second)
	}
	if c := verifyIDToken(t, s, second["id_token"].(string)); c["nonce"] != nil || c["sub"] != "demo-alice" {
		t.Errorf("refreshed ID token claims = %v, want alice without nonce", c)
	}
	if status, got := token(t, s, f, nil); status != http.StatusBadRequest || got["error"] != "invalid_grant" {
		t.Errorf("reused refresh token = %d %v, want invalid_grant", status, got)
	}
}

func TestUserinfo(t *testing.T) {
	s := newServer(t, nil)
	verifier := oauth2.GenerateVerifier()
	_, tok := token(t, s, codeForm(code(t, s, authParams(verifier)), verifier), nil)
	call := func(authz string) (*http.Response, string) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.URL()+"/userinfo", nil)
		if err != nil {
			t.Fatal(err)
		}
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		return do(t, req)
	}
	resp, body := call("Bearer " + tok["access_token"].(string))
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"sub":"demo-alice"`) || !strings.Contains(body, `"groups":["staff","admins"]`) {
		t.Errorf("userinfo = %d %s, want alice's claims", resp.StatusCode, body)
	}
	for _, authz := range []string{"", "Bearer nope", "Basic " + tok["access_token"].(string)} {
		resp, _ := call(authz)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("userinfo with %q = %d %q, want 401 invalid_token", authz, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
}

func TestLogout(t *testing.T) {
	s := newServer(t, nil)
	q := url.Values{"post_logout_redirect_uri": {redirectURI}, "state": {"bye"}, "client_id": {clientID}}
	resp, _ := get(t, s.URL()+"/logout?"+q.Encode())
	if got := location(t, resp); got.Get("state") != "bye" || !strings.HasPrefix(resp.Header.Get("Location"), redirectURI) {
		t.Errorf("logout redirect = %q, want %s with state", resp.Header.Get("Location"), redirectURI)
	}
	for _, bad := range []url.Values{
		{"post_logout_redirect_uri": {"https://evil.example.com/"}},
		{"post_logout_redirect_uri": {"https://other.example.com/cb"}, "client_id": {clientID}},
	} {
		resp, body := get(t, s.URL()+"/logout?"+bad.Encode())
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Location") != "" || !strings.Contains(body, "signed out") {
			t.Errorf("logout to %v = %d %q, want the signed-out page", bad, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	if n := s.Hits("logout"); n != 3 {
		t.Errorf("Hits(logout) = %d, want 3", n)
	}
}
