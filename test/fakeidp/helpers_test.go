package fakeidp_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/keyward/keyward/test/fakeidp"
)

const (
	clientID    = "app"
	secret      = "app-secret"
	redirectURI = "https://app.example.com/callback"
)

var testNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// newServer starts a fake IdP with the demo users and one client; alice is
// approved at once unless modify clears AutoLogin.
func newServer(t *testing.T, modify func(*fakeidp.Config)) *fakeidp.Server {
	t.Helper()
	cfg := fakeidp.Config{
		Users:     fakeidp.DemoUsers(),
		Clients:   []fakeidp.Client{{ID: clientID, Secret: secret, RedirectURIs: []string{redirectURI}}, {ID: "other", Secret: "other-secret", RedirectURIs: []string{"https://other.example.com/cb"}}},
		AutoLogin: "alice",
		Now:       func() time.Time { return testNow },
	}
	if modify != nil {
		modify(&cfg)
	}
	return fakeidp.NewTest(t, cfg)
}

// authParams are valid authorization request parameters for verifier.
func authParams(verifier string) url.Values {
	return url.Values{
		"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirectURI},
		"scope": {"openid email"}, "state": {"st"}, "nonce": {"nc"},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"},
	}
}

// do sends req without following redirects and returns the response with
// its body read.
func do(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func get(t *testing.T, rawURL string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, req)
}

func postForm(t *testing.T, rawURL string, form url.Values, modify func(*http.Request)) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, rawURL, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if modify != nil {
		modify(req)
	}
	return do(t, req)
}

// location returns the query of a redirect response, failing otherwise.
func location(t *testing.T, resp *http.Response) url.Values {
	t.Helper()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("status = %d, want 303", resp.StatusCode)
	}
	u, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

// code runs an auto-approved authorization request and returns the code.
func code(t *testing.T, s *fakeidp.Server, params url.Values) string {
	t.Helper()
	resp, _ := get(t, s.URL()+"/authorize?"+params.Encode())
	q := location(t, resp)
	if q.Get("code") == "" {
		t.Fatalf("authorize redirect = %v, want a code", q)
	}
	return q.Get("code")
}

// token posts form to the token endpoint (client_secret_post unless form
// names no client_id) and decodes the JSON answer.
func token(t *testing.T, s *fakeidp.Server, form url.Values, modify func(*http.Request)) (int, map[string]any) {
	t.Helper()
	resp, body := postForm(t, s.URL()+"/token", form, modify)
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		return resp.StatusCode, map[string]any{"raw": body}
	}
	return resp.StatusCode, m
}

// codeForm is a valid authorization_code request for c and verifier.
func codeForm(c, verifier string) url.Values {
	return url.Values{
		"grant_type": {"authorization_code"}, "code": {c}, "redirect_uri": {redirectURI},
		"code_verifier": {verifier}, "client_id": {clientID}, "client_secret": {secret},
	}
}
