package fakegithub

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

const callback = "https://sso.example.com/callback"

func newServer(t *testing.T) *Server {
	t.Helper()
	return NewTest(t, Config{
		ClientID: "cid", ClientSecret: "csecret", CallbackURL: callback,
		User: User{ID: 7, Login: "octo", Orgs: []string{"a", "b", "c", "d", "e"}},
	})
}

// code runs the authorization endpoint with an S256 challenge of verifier.
func code(t *testing.T, s *Server, verifier string) string {
	t.Helper()
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{
		"client_id": {"cid"}, "redirect_uri": {callback}, "scope": {"read:user read:org"}, "state": {"st"},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(s.URL() + "/login/oauth/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || loc.Query().Get("state") != "st" || loc.Query().Get("code") == "" {
		t.Fatalf("authorize = %d %q, want a redirect with code and state", resp.StatusCode, resp.Header.Get("Location"))
	}
	return loc.Query().Get("code")
}

func redeem(t *testing.T, s *Server, form url.Values, accept string) (string, http.Header) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, s.URL()+"/login/oauth/access_token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", accept)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("token = %d, want 200 (GitHub answers errors with 200)", resp.StatusCode)
	}
	return string(body), resp.Header
}

func TestTokenEndpoint(t *testing.T) {
	s := newServer(t)
	form := func(code, verifier string) url.Values {
		return url.Values{"client_id": {"cid"}, "client_secret": {"csecret"}, "code": {code}, "redirect_uri": {callback}, "code_verifier": {verifier}}
	}
	body, _ := redeem(t, s, form(code(t, s, "verifier-one-0123456789-0123456789-0123"), "another-verifier"), "")
	if v, _ := url.ParseQuery(body); v.Get("error") != "bad_verification_code" {
		t.Errorf("wrong PKCE verifier: answer %q, want error=bad_verification_code", body)
	}
	verifier := "verifier-two-0123456789-0123456789-0123"
	c := code(t, s, verifier)
	body, h := redeem(t, s, form(c, verifier), "application/json")
	var tok struct {
		AccessToken string `json:"access_token"`
		Scope       string `json:"scope"`
	}
	if err := json.Unmarshal([]byte(body), &tok); err != nil ||
		!strings.HasPrefix(tok.AccessToken, "gho_") || tok.Scope != "read:user,read:org" || !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
		t.Fatalf("JSON token answer %q (%v), want a gho_ token and scope read:user,read:org", body, err)
	}
	if body, _ := redeem(t, s, form(c, verifier), ""); !strings.Contains(body, "error=bad_verification_code") {
		t.Errorf("replayed code: answer %q, want error=bad_verification_code", body)
	}

	// Pagination: 5 orgs, 2 per page.
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, s.APIURL()+"/user/orgs?per_page=2&page=2", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var orgs []struct{ Login string }
	_ = json.NewDecoder(resp.Body).Decode(&orgs)
	link := resp.Header.Get("Link")
	if len(orgs) != 2 || orgs[0].Login != "c" ||
		!strings.Contains(link, `<`+s.APIURL()+`/user/orgs?per_page=2&page=3>; rel="next"`) || !strings.Contains(link, `page=1>; rel="prev"`) {
		t.Errorf("page 2 = %v, Link %q; want c, d and next page 3", orgs, link)
	}
	if s.Hits("token") != 3 || s.Hits("orgs") != 1 {
		t.Errorf("hits token %d orgs %d, want 3 and 1", s.Hits("token"), s.Hits("orgs"))
	}
}
