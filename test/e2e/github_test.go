package e2e

import (
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/federation"
	"github.com/keyward/keyward/test/brokertest"
	"github.com/keyward/keyward/test/fakegithub"
)

// githubEnv is a broker whose only upstream is a GitHub upstream (id
// github) on a fake GitHub.
type githubEnv struct {
	b  *brokertest.Env
	gh *fakegithub.Server
	p  *oidc.Provider
	oc oauth2.Config
}

func githubUser() fakegithub.User {
	return fakegithub.User{
		ID: 583231, Login: "octocat", Name: "The Octocat", PublicEmail: "public@elsewhere.example",
		Emails: []fakegithub.Email{
			{Email: "octo@example.com", Primary: true, Verified: true},
			{Email: "old@example.org", Verified: true},
		},
		Orgs:  []string{"Acme", "tools"},
		Teams: []fakegithub.Team{{Org: "Acme", Slug: "platform"}},
	}
}

func newGitHubEnv(t *testing.T, allow federation.AllowRules) *githubEnv {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String()
	gh := fakegithub.NewTest(t, fakegithub.Config{
		ClientID: brokertest.UpstreamClientID, ClientSecret: brokertest.UpstreamSecret,
		CallbackURL: issuer + "/callback", User: githubUser(),
	})
	e := brokertest.New(t, brokertest.Options{
		Dir: t.TempDir(), NoSync: true, Listener: ln,
		Clients: []broker.Client{{ID: appID, Name: "The App", Secret: appSecret, RedirectURIs: []string{appRedir}}},
		Broker: func(bc *broker.Config) {
			// GitHub is not OIDC: it replaces the fake OIDC upstream.
			up, err := federation.Config{
				Type: federation.TypeGitHub, ID: "github", Name: "GitHub", GitHubURL: gh.URL(),
				ClientID: brokertest.UpstreamClientID, ClientSecret: brokertest.UpstreamSecret,
				RedirectURL: bc.Issuer + "/callback", Allow: allow,
			}.OpenGitHub(t.Context(), nil, brokertest.TestLogger())
			if err != nil {
				t.Fatalf("open the GitHub upstream: %v", err)
			}
			bc.Upstreams = []broker.Upstream{up}
		},
	})
	p, err := oidc.NewProvider(oidc.ClientContext(t.Context(), http.DefaultClient), e.Issuer)
	if err != nil {
		t.Fatalf("oidc.NewProvider: %v", err)
	}
	return &githubEnv{b: e, gh: gh, p: p, oc: oauth2.Config{
		ClientID: appID, ClientSecret: appSecret, RedirectURL: appRedir, Endpoint: p.Endpoint(),
		Scopes: []string{oidc.ScopeOpenID, "email", "profile", "groups"},
	}}
}

// authorize runs a new browser through Keyward and the fake GitHub and
// returns the final response and its body.
func (g *githubEnv) authorize(t *testing.T, verifier string) (*http.Response, string) {
	t.Helper()
	u := g.oc.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(verifier), oidc.Nonce("nonce-0123456789"))
	resp, err := newBrowser(t).Get(u)
	if err != nil {
		t.Fatalf("authorize: %v", err)
	}
	return resp, readAll(t, resp)
}

// signIn signs in and returns the verified ID token's claims and the
// access token's.
func (g *githubEnv) signIn(t *testing.T) (id, at map[string]any) {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	resp, body := g.authorize(t, verifier)
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("sign-in = %d Location %q, want a code; body: %.600s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	tok, err := g.oc.Exchange(t.Context(), loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := g.p.Verifier(&oidc.Config{ClientID: appID}).Verify(t.Context(), raw)
	if err != nil {
		t.Fatalf("verify Keyward's ID token: %v", err)
	}
	if err := idt.Claims(&id); err != nil {
		t.Fatal(err)
	}
	return id, jwtPayload(t, tok.AccessToken)
}

func TestGitHubSignIn(t *testing.T) {
	g := newGitHubEnv(t, federation.AllowRules{Groups: []string{"acme"}, RequireEmailVerified: true})
	id, at := g.signIn(t)
	want := map[string]any{
		"sub":   broker.SubjectID("github", "583231"),
		"email": "octo@example.com", "email_verified": true, "name": "The Octocat", "preferred_username": "octocat",
		"groups": []any{"acme", "tools", "acme:platform"},
	}
	for name, w := range want {
		if diff := cmp.Diff(w, id[name]); diff != "" {
			t.Errorf("ID token %s (-want +got):\n%s", name, diff)
		}
	}
	if diff := cmp.Diff(want["groups"], at["groups"]); diff != "" {
		t.Errorf("access token groups (-want +got):\n%s", diff)
	}
	if q := g.gh.LastAuthorizeRequest(); q.Get("code_challenge_method") != "S256" || q.Get("scope") != "read:user user:email read:org" {
		t.Errorf("GitHub authorize query = %v, want PKCE S256 and the default scopes", q)
	}
	sessions, err := g.b.Store.ListSessions(t.Context(), "")
	if err != nil || len(sessions) != 1 || sessions[0].UpstreamID != "github" || sessions[0].UpstreamSubject != "583231" {
		t.Fatalf("sessions = %+v, %v; want one github session of upstream subject 583231", sessions, err)
	}

	// A renamed login is the same person: the subject comes from the id.
	renamed := githubUser()
	renamed.Login = "octocat-2"
	g.gh.SetUser(renamed)
	id2, _ := g.signIn(t)
	if id2["sub"] != id["sub"] || id2["preferred_username"] != "octocat-2" {
		t.Errorf("after a login change: sub %v (want %v), preferred_username %v (want octocat-2)", id2["sub"], id["sub"], id2["preferred_username"])
	}
}

func TestGitHubSignInRefused(t *testing.T) {
	g := newGitHubEnv(t, federation.AllowRules{Groups: []string{"globex", "acme:security"}})
	resp, body := g.authorize(t, oauth2.GenerateVerifier())
	const msg = "Your account (octo@example.com) is not in a group that may sign in through GitHub."
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, htmlEscape(msg)) {
		t.Fatalf("refused sign-in = %d, want 403 with %q; body: %.600s", resp.StatusCode, msg, body)
	}
	events, err := g.b.Store.ListAudit(t.Context(), 10)
	if err != nil {
		t.Fatalf("ListAudit: %v", err)
	}
	if len(events) != 1 || events[0].Action != broker.ActionLoginRefused || events[0].Actor != broker.ActorSignIn ||
		!strings.Contains(events[0].Reason, "github: allow.groups: ") {
		t.Errorf("audit events = %+v, want one %s by %s for rule allow.groups", events, broker.ActionLoginRefused, broker.ActorSignIn)
	}
	if sessions, err := g.b.Store.ListSessions(t.Context(), ""); err != nil || len(sessions) != 0 {
		t.Errorf("sessions after a refusal = %d, %v; want none", len(sessions), err)
	}
	if n := g.gh.Hits("teams"); n != 1 {
		t.Errorf("teams hits = %d, want 1 (groups read before the allow rules)", n)
	}
}
