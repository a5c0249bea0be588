package federation

import (
	"github.com/keyward/keyward/cmd/config"

	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/oauth2"

	"github.com/keyward/keyward/test/fakegithub"
)

const (
	ghClientID = "Iv1.keyward"
	ghSecret   = "gh-secret-0123456789"
)

func octocat() fakegithub.User {
	return fakegithub.User{
		ID: 583231, Login: "octocat", Name: "The Octocat", PublicEmail: "public@elsewhere.example",
		Emails: []fakegithub.Email{
			{Email: "octo@example.com", Primary: true, Verified: true},
			{Email: "other@example.org", Verified: true},
		},
		Orgs:  []string{"Acme", "tools"},
		Teams: []fakegithub.Team{{Org: "Acme", Slug: "platform"}, {Org: "tools", Slug: "ci"}},
		Extra: map[string]any{"company": "Acme Inc"},
	}
}

// newGitHub starts a fake GitHub signing u in and opens an upstream on it.
func newGitHub(t *testing.T, u fakegithub.User, edit func(c *Config)) (*GitHub, *fakegithub.Server) {
	t.Helper()
	gh := fakegithub.NewTest(t, fakegithub.Config{ClientID: ghClientID, ClientSecret: ghSecret, CallbackURL: redirectURL, User: u})
	c := Config{Type: TypeGitHub, ID: "gh", Name: "GitHub", GitHubURL: gh.URL(), ClientID: ghClientID, ClientSecret: ghSecret, RedirectURL: redirectURL}
	if edit != nil {
		edit(&c)
	}
	up, err := c.OpenGitHub(t.Context(), nil, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return up, gh
}

// authorizeGitHub runs the browser leg and returns the code.
func authorizeGitHub(t *testing.T, up *GitHub, verifier string) string {
	t.Helper()
	browser := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := browser.Get(up.AuthCodeURL("state-0123456789", "nonce-unused", verifier, AuthOptions{}))
	if err != nil {
		t.Fatalf("authorize: %v", err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusFound || loc.Query().Get("code") == "" {
		t.Fatalf("authorize = %d Location %q, want a redirect with a code", resp.StatusCode, resp.Header.Get("Location"))
	}
	if got := loc.Query().Get("state"); got != "state-0123456789" {
		t.Fatalf("state = %q, want it sent back", got)
	}
	return loc.Query().Get("code")
}

func signInGitHub(t *testing.T, up *GitHub) (Identity, error) {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	return up.Exchange(t.Context(), authorizeGitHub(t, up, verifier), verifier, "nonce-unused")
}

func TestGitHubExchange(t *testing.T) {
	up, gh := newGitHub(t, octocat(), func(c *Config) {
		c.Claims.GroupsPrefix = "gh:"
		c.Claims.Claims = map[string]string{"company": "company"}
	})
	id, err := signInGitHub(t, up)
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	want := Identity{
		Subject: "583231", Email: "octo@example.com", EmailVerified: true, Name: "The Octocat", PreferredUsername: "octocat",
		Groups: []string{"gh:acme", "gh:tools", "gh:acme:platform", "gh:tools:ci"},
		Extra:  map[string]string{"company": "Acme Inc"},
	}
	if diff := cmp.Diff(want, id, cmpopts.IgnoreFields(Identity{}, "Claims")); diff != "" {
		t.Errorf("Exchange identity (-want +got):\n%s", diff)
	}
	if id.Claims["sub"] != "583231" || id.Claims["login"] != "octocat" {
		t.Errorf("Claims sub, login = %v, %v; want the /user document with sub", id.Claims["sub"], id.Claims["login"])
	}
	q := gh.LastAuthorizeRequest()
	for k, v := range map[string]string{
		"client_id": ghClientID, "redirect_uri": redirectURL, "scope": "read:user user:email read:org",
		"code_challenge_method": "S256", "response_type": "code",
	} {
		if q.Get(k) != v {
			t.Errorf("authorize %s = %q, want %q", k, q.Get(k), v)
		}
	}
	if q.Get("code_challenge") == "" || q.Has("nonce") {
		t.Errorf("authorize query %v: want a code_challenge and no nonce", q)
	}
}

func TestGitHubAuthCodeURLOptions(t *testing.T) {
	up, _ := newGitHub(t, octocat(), nil)
	for _, tc := range []struct {
		name string
		opts AuthOptions
		want url.Values // of prompt and login
	}{
		{"none", AuthOptions{}, url.Values{}},
		{"select account", AuthOptions{Prompt: "select_account"}, url.Values{"prompt": {"select_account"}}},
		{"prompt login is not GitHub's", AuthOptions{Prompt: "login"}, url.Values{}},
		{"login hint", AuthOptions{LoginHint: "octocat"}, url.Values{"login": {"octocat"}}},
		{"email hint is no login", AuthOptions{LoginHint: "octo@example.com"}, url.Values{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := url.Parse(up.AuthCodeURL("state-0123456789", "n", oauth2.GenerateVerifier(), tc.opts))
			if err != nil {
				t.Fatal(err)
			}
			got := url.Values{}
			for _, k := range []string{"prompt", "login", "max_age", "login_hint"} {
				if v, ok := u.Query()[k]; ok {
					got[k] = v
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("AuthCodeURL(%+v) params (-want +got):\n%s", tc.opts, diff)
			}
		})
	}
}

func TestGitHubEmail(t *testing.T) {
	tests := []struct {
		name       string
		emails     []fakegithub.Email
		granted    []string // nil: as requested
		wantEmail  string
		wantHits   int64 // of /user/emails
		wantRefuse bool  // with requireEmailVerified
	}{
		{name: "primary verified", emails: octocat().Emails, wantEmail: "octo@example.com", wantHits: 1},
		{
			name:     "primary unverified, another verified",
			emails:   []fakegithub.Email{{Email: "new@example.com", Primary: true}, {Email: "old@example.com", Verified: true}},
			wantHits: 1, wantRefuse: true,
		},
		{name: "no emails: the public one is not used", wantHits: 1, wantRefuse: true},
		{name: "user:email not granted", emails: octocat().Emails, granted: []string{"read:user", "read:org"}, wantRefuse: true},
		{name: "user scope covers emails", emails: octocat().Emails, granted: []string{"user"}, wantEmail: "octo@example.com", wantHits: 1},
		{name: "github app token", emails: octocat().Emails, granted: []string{}, wantEmail: "octo@example.com", wantHits: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := octocat()
			u.Emails = tc.emails
			up, gh := newGitHub(t, u, nil)
			gh.SetGrantedScopes(tc.granted)
			id, err := signInGitHub(t, up)
			if err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			if id.Email != tc.wantEmail || id.EmailVerified != (tc.wantEmail != "") {
				t.Errorf("email, verified = %q, %v; want %q, %v", id.Email, id.EmailVerified, tc.wantEmail, tc.wantEmail != "")
			}
			if _, ok := id.Claims["email_verified"]; ok != (tc.wantEmail != "") {
				t.Errorf("claims email_verified present = %v, want %v", ok, tc.wantEmail != "")
			}
			if n := gh.Hits("emails"); n != tc.wantHits {
				t.Errorf("/user/emails hits = %d, want %d", n, tc.wantHits)
			}

			strict, gh2 := newGitHub(t, u, func(c *Config) { c.Allow.RequireEmailVerified = true })
			gh2.SetGrantedScopes(tc.granted)
			_, err = signInGitHub(t, strict)
			var na *NotAllowedError
			if got := errors.As(err, &na); got != tc.wantRefuse {
				t.Fatalf("requireEmailVerified: Exchange = %v, want refusal %v", err, tc.wantRefuse)
			}
			if tc.wantRefuse && (na.Rule != "allow.require_email_verified" || na.Subject != "583231") {
				t.Errorf("refusal = %+v, want rule allow.require_email_verified for subject 583231", na)
			}
		})
	}
}

func TestGitHubGroups(t *testing.T) {
	many := func(n int) []string {
		orgs := make([]string, n)
		for i := range orgs {
			orgs[i] = fmt.Sprintf("org-%04d", i)
		}
		return orgs
	}
	tests := []struct {
		name      string
		orgs      []string
		teams     []fakegithub.Team
		pageSize  int
		granted   []string
		fail      map[string]int
		wantN     int    // groups; -1: nil (not read)
		wantLast  string // the last group
		wantHits  map[string]int64
		wantError bool
	}{
		{
			name: "pages followed", orgs: many(250), pageSize: 100,
			wantN: 250, wantLast: "org-0249", wantHits: map[string]int64{"orgs": 3, "teams": 1},
		},
		{
			name: "small pages", orgs: many(5), teams: []fakegithub.Team{{Org: "org-0000", Slug: "a"}, {Org: "org-0001", Slug: "b"}}, pageSize: 2,
			wantN: 7, wantLast: "org-0001:b", wantHits: map[string]int64{"orgs": 3, "teams": 1},
		},
		{
			name: "bounded at 10 pages", orgs: many(1500), pageSize: 100,
			wantN: 1000, wantLast: "org-0999", wantHits: map[string]int64{"orgs": 10, "teams": 1},
		},
		{
			name: "read:org not granted", orgs: many(3), granted: []string{"read:user", "user:email"},
			wantN: -1, wantHits: map[string]int64{"orgs": 0, "teams": 0},
		},
		{
			name: "github app without the members permission", orgs: many(2), granted: []string{},
			teams: []fakegithub.Team{{Org: "org-0000", Slug: "a"}}, fail: map[string]int{"teams": http.StatusForbidden},
			wantN: 2, wantLast: "org-0001", wantHits: map[string]int64{"orgs": 1, "teams": 1},
		},
		{
			name: "orgs failing", orgs: many(2), fail: map[string]int{"orgs": http.StatusBadGateway},
			wantError: true, wantHits: map[string]int64{"orgs": 1, "teams": 0},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := octocat()
			u.Orgs, u.Teams = tc.orgs, tc.teams
			up, gh := newGitHub(t, u, nil)
			gh.SetPageSize(tc.pageSize)
			gh.SetGrantedScopes(tc.granted)
			for ep, status := range tc.fail {
				gh.Fail(ep, status)
			}
			id, err := signInGitHub(t, up)
			if tc.wantError {
				if !errors.Is(err, ErrGitHubAPI) {
					t.Fatalf("Exchange = %v, want ErrGitHubAPI", err)
				}
			} else if err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			for ep, want := range tc.wantHits {
				if n := gh.Hits(ep); n != want {
					t.Errorf("%s hits = %d, want %d", ep, n, want)
				}
			}
			switch {
			case tc.wantError:
			case tc.wantN < 0:
				if id.Groups != nil {
					t.Errorf("groups = %q, want nil (not read)", id.Groups)
				}
			case len(id.Groups) != tc.wantN || id.Groups[len(id.Groups)-1] != tc.wantLast:
				t.Errorf("groups: %d, last %q; want %d, last %q", len(id.Groups), id.Groups[max(len(id.Groups)-1, 0):], tc.wantN, tc.wantLast)
			}
		})
	}
}

func TestGitHubSubjectIsTheID(t *testing.T) {
	up, gh := newGitHub(t, octocat(), nil)
	first, err := signInGitHub(t, up)
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	renamed := octocat()
	renamed.Login = "octocat-renamed"
	gh.SetUser(renamed)
	second, err := signInGitHub(t, up)
	if err != nil {
		t.Fatalf("Exchange after rename: %v", err)
	}
	if first.Subject != "583231" || second.Subject != first.Subject {
		t.Errorf("subjects = %q then %q, want the id 583231 both times", first.Subject, second.Subject)
	}
	if second.PreferredUsername != "octocat-renamed" {
		t.Errorf("preferred_username after rename = %q, want octocat-renamed", second.PreferredUsername)
	}
	other := octocat()
	other.ID = 9
	gh.SetUser(other)
	if third, err := signInGitHub(t, up); err != nil || third.Subject != "9" {
		t.Errorf("another account with the same login: subject = %q, %v; want 9", third.Subject, err)
	}
}

func TestGitHubAllow(t *testing.T) {
	tests := []struct {
		name     string
		allow    AllowRules
		wantRule string // "": allowed
	}{
		{"org member", AllowRules{Groups: []string{"acme"}}, ""},
		{"team member", AllowRules{Groups: []string{"acme:platform"}}, ""},
		{"not in the org", AllowRules{Groups: []string{"globex"}}, "allow.groups"},
		{"email domain", AllowRules{EmailDomains: []string{"example.com"}}, ""},
		{"other email domain", AllowRules{EmailDomains: []string{"example.org"}}, "allow.email_domains"},
		{"claim", AllowRules{Claims: map[string]config.StringList{"company": {"Globex"}}}, "allow.claims"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up, _ := newGitHub(t, octocat(), func(c *Config) { c.Allow = tc.allow })
			_, err := signInGitHub(t, up)
			var na *NotAllowedError
			switch {
			case tc.wantRule == "" && err != nil:
				t.Fatalf("Exchange = %v, want allowed", err)
			case tc.wantRule != "" && (!errors.As(err, &na) || na.Rule != tc.wantRule):
				t.Fatalf("Exchange = %v, want a refusal by %s", err, tc.wantRule)
			case tc.wantRule != "" && (na.Upstream != "gh" || !strings.Contains(na.Message, "GitHub")):
				t.Errorf("refusal %+v: want upstream gh and a message naming GitHub", na)
			}
		})
	}
}

func TestGitHubErrors(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, up *GitHub, gh *fakegithub.Server) error
		want error
		text string // part of the error
	}{
		{
			name: "token endpoint error",
			run: func(t *testing.T, up *GitHub, gh *fakegithub.Server) error {
				gh.SetTokenError("bad_verification_code")
				_, err := signInGitHub(t, up)
				return err
			},
			want: ErrTokenEndpoint, text: "bad_verification_code",
		},
		{
			name: "wrong PKCE verifier",
			run: func(t *testing.T, up *GitHub, _ *fakegithub.Server) error {
				code := authorizeGitHub(t, up, oauth2.GenerateVerifier())
				_, err := up.Exchange(t.Context(), code, oauth2.GenerateVerifier(), "n")
				return err
			},
			want: ErrTokenEndpoint,
		},
		{
			name: "code replayed",
			run: func(t *testing.T, up *GitHub, _ *fakegithub.Server) error {
				v := oauth2.GenerateVerifier()
				code := authorizeGitHub(t, up, v)
				if _, err := up.Exchange(t.Context(), code, v, "n"); err != nil {
					t.Fatalf("first Exchange: %v", err)
				}
				_, err := up.Exchange(t.Context(), code, v, "n")
				return err
			},
			want: ErrTokenEndpoint,
		},
		{
			name: "wrong client secret",
			run: func(t *testing.T, _ *GitHub, gh *fakegithub.Server) error {
				c := Config{Type: TypeGitHub, ID: "gh", GitHubURL: gh.URL(), ClientID: ghClientID, ClientSecret: "wrong", RedirectURL: redirectURL}
				up, err := c.OpenGitHub(t.Context(), nil, nil)
				if err != nil {
					t.Fatal(err)
				}
				_, err = signInGitHub(t, up)
				return err
			},
			want: ErrTokenEndpoint, text: "incorrect_client_credentials",
		},
		{
			name: "user failing",
			run: func(t *testing.T, up *GitHub, gh *fakegithub.Server) error {
				gh.Fail("user", http.StatusInternalServerError)
				_, err := signInGitHub(t, up)
				return err
			},
			want: ErrGitHubAPI, text: "GET /user: 500",
		},
		{
			name: "emails rate limited",
			run: func(t *testing.T, up *GitHub, gh *fakegithub.Server) error {
				gh.Fail("emails", http.StatusTooManyRequests)
				_, err := signInGitHub(t, up)
				return err
			},
			want: ErrGitHubAPI, text: "rate limit",
		},
		{
			name: "next page on another host",
			run: func(t *testing.T, up *GitHub, gh *fakegithub.Server) error {
				gh.SetPageSize(1)
				gh.SetForeignNextLink(true)
				_, err := signInGitHub(t, up)
				return err
			},
			want: ErrGitHubAPI, text: "not followed",
		},
		{
			name: "missing code",
			run: func(t *testing.T, up *GitHub, _ *fakegithub.Server) error {
				_, err := up.Exchange(t.Context(), "", oauth2.GenerateVerifier(), "n")
				return err
			},
			text: "required",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up, gh := newGitHub(t, octocat(), nil)
			err := tc.run(t, up, gh)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("error = %v, want %v containing %q", err, tc.want, tc.text)
			}
			if strings.Contains(err.Error(), "gho_") || strings.Contains(err.Error(), ghSecret) {
				t.Errorf("error %q holds a token or the client secret", err)
			}
		})
	}
}

func TestGitHubUnsupported(t *testing.T) {
	up, _ := newGitHub(t, octocat(), nil)
	if _, err := up.VerifyIDToken(t.Context(), "a.b.c"); !errors.Is(err, ErrNativeNotAccepted) {
		t.Errorf("VerifyIDToken = %v, want ErrNativeNotAccepted", err)
	}
	if up.NativePublicClients() {
		t.Error("NativePublicClients = true, want false")
	}
	if _, err := up.VerifyLogoutToken(t.Context(), "a.b.c"); !errors.Is(err, ErrInvalidLogoutToken) {
		t.Errorf("VerifyLogoutToken = %v, want ErrInvalidLogoutToken", err)
	}
	for iss, ok := range map[string]bool{"": true, up.Issuer(): true, "https://accounts.google.com": false, up.Issuer() + "/": false} {
		if err := up.CheckAuthorizationResponseIssuer(iss); (err == nil) != ok || (err != nil && !errors.Is(err, ErrIssuerMismatch)) {
			t.Errorf("CheckAuthorizationResponseIssuer(%q) = %v, want ok %v", iss, err, ok)
		}
	}
}

func TestGitHubConfig(t *testing.T) {
	valid := Config{Type: TypeGitHub, ID: "gh", ClientID: "id", ClientSecret: "secret", RedirectURL: redirectURL}
	tests := []struct {
		name string
		edit func(c *Config)
		want string // part of the error; "": valid
	}{
		{"valid", func(*Config) {}, ""},
		{"enterprise", func(c *Config) { c.GitHubURL = "https://github.example.com" }, ""},
		{"bad id", func(c *Config) { c.ID = "Git Hub" }, "id:"},
		{"http github url", func(c *Config) { c.GitHubURL = "http://github.example.com" }, "githubURL:"},
		{"api url with query", func(c *Config) { c.GitHubAPIURL = "https://api.example.com/?x=1" }, "githubAPIURL:"},
		{"no client id", func(c *Config) { c.ClientID = "" }, "clientID:"},
		{"no secret", func(c *Config) { c.ClientSecret = "" }, "clientSecretFile:"},
		{"no redirect", func(c *Config) { c.RedirectURL = "" }, "redirectURL:"},
		{"comma in a scope", func(c *Config) { c.Scopes = []string{"read:user,read:org"} }, "scopes[0]:"},
		{"spaced prefix", func(c *Config) { c.Claims.GroupsPrefix = "g h" }, "claimMapping.groupsPrefix:"},
		{"keyward claim", func(c *Config) { c.Claims.Claims = map[string]string{"email": "email"} }, `claimMapping.claims["email"]:`},
		{"bad domain", func(c *Config) { c.Allow.EmailDomains = []string{"not a domain"} }, "allow.emailDomains[0]:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := valid
			tc.edit(&c)
			c.SetDefaults()
			err := c.validateOpen()
			if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
	for in, want := range map[string]string{
		"": "https://api.github.com", "https://github.com": "https://api.github.com", "https://github.com/": "https://api.github.com",
		"https://github.example.com": "https://github.example.com/api/v3",
	} {
		if got := DefaultGitHubAPIURL(in); got != want {
			t.Errorf("DefaultGitHubAPIURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLinkNext(t *testing.T) {
	for h, want := range map[string]string{
		"": "",
		`<https://api.github.com/user/orgs?page=2>; rel="next", <https://api.github.com/user/orgs?page=5>; rel="last"`: "https://api.github.com/user/orgs?page=2",
		`<https://api.github.com/user/orgs?page=1>; rel="prev", <https://api.github.com/user/orgs?page=3>; rel=next`:   "https://api.github.com/user/orgs?page=3",
		`<https://x/a>; rel="last"`:                    "",
		`https://x/a; rel="next"`:                      "",
		`<https://x/a>; title="next"; rel="prev next"`: "https://x/a",
	} {
		if got := linkNext(h); got != want {
			t.Errorf("linkNext(%q) = %q, want %q", h, got, want)
		}
	}
}
