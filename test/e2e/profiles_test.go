package e2e

import (
	"encoding/base64"
	"encoding/json"
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
	"github.com/keyward/keyward/test/fakeidp"
)

// profileCase is one sign-in through an upstream configured with a
// profile, against a fake IdP showing that provider's quirks.
type profileCase struct {
	name     string
	quirks   fakeidp.Quirks
	user     fakeidp.User
	upstream func(c *federation.Config, idp *fakeidp.Server)
	// want are the identity claims of Keyward's ID token and userinfo;
	// wantSub is the upstream subject Keyward's sub derives from.
	want    map[string]any
	wantSub string
	// wantRefusal is part of the 403 page's text and wantRule the refusing
	// rule in the audit event; "" for a sign-in that succeeds.
	wantRefusal, wantRule string
	check                 func(t *testing.T, idp *fakeidp.Server)
}

func staff(name string, edit func(u *fakeidp.User)) fakeidp.User {
	u := fakeidp.User{
		Subject: "sub-" + name, Username: name, Email: name + "@example.com", EmailVerified: true,
		Name: strings.ToUpper(name[:1]) + name[1:], Groups: []string{"staff", "admins"},
	}
	if edit != nil {
		edit(&u)
	}
	return u
}

func TestProfiles(t *testing.T) {
	const tenant = "11111111-2222-3333-4444-555555555555"
	azure := func(name, tid string, groups ...string) fakeidp.User {
		return fakeidp.User{
			Subject: "pairwise-" + name, Username: name + "@corp.example", Email: name + "@corp.example", NoEmailVerified: true,
			Name: name, Groups: groups, TenantID: tid, ObjectID: "oid-" + name,
		}
	}
	azureUpstream := func(c *federation.Config, idp *fakeidp.Server) {
		c.Profile, c.Issuer, c.Tenants, c.GraphURL, c.Scopes = federation.ProfileAzureAD, idp.IssuerTemplate(), []string{tenant}, idp.GraphURL(), nil
		c.Claims.Subject = "oid"
	}
	// Entra ID sends no email_verified: a tenant whose administrators set
	// the addresses opts in with trustEmail.
	azureTrusted := func(c *federation.Config, idp *fakeidp.Server) {
		azureUpstream(c, idp)
		c.TrustEmail = true
	}
	tests := []profileCase{
		{
			name: "google",
			user: staff("alice", func(u *fakeidp.User) { u.Groups, u.Extra = nil, map[string]any{"hd": "example.com"} }),
			upstream: func(c *federation.Config, idp *fakeidp.Server) {
				// The fake stands in for https://accounts.google.com.
				c.Profile, c.Issuer, c.HostedDomains, c.Scopes = federation.ProfileGoogle, idp.URL(), []string{"example.com"}, nil
				c.Allow.RequireEmailVerified = true
			},
			want:    map[string]any{"email": "alice@example.com", "email_verified": true, "name": "Alice", "preferred_username": "alice"},
			wantSub: "sub-alice",
			check: func(t *testing.T, idp *fakeidp.Server) {
				if hd := idp.LastAuthorizeRequest().Get("hd"); hd != "example.com" {
					t.Errorf("upstream authorize hd = %q, want example.com", hd)
				}
			},
		},
		{
			name: "google account outside the hosted domain",
			user: staff("mallory", func(u *fakeidp.User) { u.Email, u.Extra = "mallory@gmail.com", nil }),
			upstream: func(c *federation.Config, idp *fakeidp.Server) {
				c.Profile, c.Issuer, c.HostedDomains = federation.ProfileGoogle, idp.URL(), []string{"example.com"}
			},
			wantRefusal: "Your account (mallory@gmail.com) is not part of an allowed Google Workspace domain for Corp SSO.",
			wantRule:    "hosted_domains",
		},
		{
			name:     "azuread multi-tenant",
			quirks:   fakeidp.Quirks{AzureMultiTenant: true},
			user:     azure("ann", tenant, "g-1", "g-2"),
			upstream: azureTrusted,
			want:     map[string]any{"email": "ann@corp.example", "email_verified": true, "name": "ann", "preferred_username": "ann@corp.example", "groups": []any{"g-1", "g-2"}},
			wantSub:  "oid-ann",
		},
		{
			// Entra ID sends no email_verified: without trustEmail its
			// email (and the upn fallback) stays out of Keyward's tokens.
			name:     "azuread without trustEmail has no email",
			quirks:   fakeidp.Quirks{AzureMultiTenant: true},
			user:     azure("ann", tenant, "g-1"),
			upstream: azureUpstream,
			want:     map[string]any{"email": nil, "email_verified": nil, "name": "ann", "preferred_username": "ann@corp.example", "groups": []any{"g-1"}},
			wantSub:  "oid-ann",
		},
		{
			name:     "azuread group overage through graph",
			quirks:   fakeidp.Quirks{AzureMultiTenant: true, GroupsOverage: true},
			user:     azure("ann", tenant, "g-1", "g-2", "g-3"),
			upstream: azureTrusted,
			want:     map[string]any{"email": "ann@corp.example", "email_verified": true, "name": "ann", "preferred_username": "ann@corp.example", "groups": []any{"g-1", "g-2", "g-3"}},
			wantSub:  "oid-ann",
			check: func(t *testing.T, idp *fakeidp.Server) {
				if n := idp.Hits("graph"); n != 1 {
					t.Errorf("graph hits = %d, want 1", n)
				}
			},
		},
		{
			name:   "azuread group overage refused",
			quirks: fakeidp.Quirks{AzureMultiTenant: true, GroupsOverage: true},
			user:   azure("ann", tenant, "g-1"),
			upstream: func(c *federation.Config, idp *fakeidp.Server) {
				azureUpstream(c, idp)
				c.GroupsOverage = federation.OverageRefuse
			},
			wantRefusal: "is a member of too many groups for Corp SSO",
			wantRule:    "groups_overage",
		},
		{
			name:        "azuread other tenant",
			quirks:      fakeidp.Quirks{AzureMultiTenant: true},
			user:        azure("eve", "99999999-0000-0000-0000-000000000000"),
			upstream:    azureUpstream,
			wantRefusal: "Your organization's directory is not one that may sign in through Corp SSO.",
			wantRule:    "tenants",
		},
		{
			name: "okta",
			user: staff("alice", nil),
			upstream: func(c *federation.Config, _ *fakeidp.Server) {
				c.Profile, c.Scopes, c.Allow.Groups = federation.ProfileOkta, nil, []string{"admins"}
			},
			want:    map[string]any{"email": "alice@example.com", "email_verified": true, "name": "Alice", "preferred_username": "alice", "groups": []any{"staff", "admins"}},
			wantSub: "sub-alice",
			check: func(t *testing.T, idp *fakeidp.Server) {
				if scope := idp.LastAuthorizeRequest().Get("scope"); scope != "openid email profile groups" {
					t.Errorf("upstream authorize scope = %q, want okta's preset", scope)
				}
			},
		},
		{
			name: "okta not in an allowed group",
			user: staff("bob", func(u *fakeidp.User) { u.Groups = []string{"staff"} }),
			upstream: func(c *federation.Config, _ *fakeidp.Server) {
				c.Profile, c.Allow.Groups = federation.ProfileOkta, []string{"admins"}
			},
			wantRefusal: "Your account (bob@example.com) is not in a group that may sign in through Corp SSO.",
			wantRule:    "allow.groups",
		},
		{
			name:   "auth0",
			quirks: fakeidp.Quirks{TrailingSlash: true, GroupsClaim: "https://example.com/roles"},
			user:   staff("alice", func(u *fakeidp.User) { u.Extra = map[string]any{"https://example.com/department": "research"} }),
			upstream: func(c *federation.Config, idp *fakeidp.Server) {
				if !strings.HasSuffix(idp.URL(), "/") {
					t.Fatalf("auth0 fake issuer %q has no trailing slash", idp.URL())
				}
				c.Profile, c.Issuer = federation.ProfileAuth0, idp.URL()
				c.Claims.Groups = []string{"https://example.com/roles"}
				c.Claims.Claims = map[string]string{"department": "https://example.com/department"}
			},
			want: map[string]any{
				"email": "alice@example.com", "email_verified": true, "name": "Alice", "preferred_username": "alice",
				"groups": []any{"staff", "admins"}, "department": "research",
			},
			wantSub: "sub-alice",
		},
		{
			name:   "cognito",
			quirks: fakeidp.Quirks{GroupsClaim: "cognito:groups", UsernameClaim: "cognito:username", NoEndSession: true},
			user:   staff("alice", nil),
			upstream: func(c *federation.Config, _ *fakeidp.Server) {
				c.Profile, c.LogoutURL = federation.ProfileCognito, "https://auth.example.com/logout?client_id=keyward"
			},
			want:    map[string]any{"email": "alice@example.com", "email_verified": true, "name": "Alice", "preferred_username": "alice", "groups": []any{"staff", "admins"}},
			wantSub: "sub-alice",
		},
		{
			name: "curity",
			user: staff("alice", nil),
			upstream: func(c *federation.Config, _ *fakeidp.Server) {
				c.Profile, c.Allow.EmailDomains = federation.ProfileCurity, []string{"example.com"}
			},
			want:    map[string]any{"email": "alice@example.com", "email_verified": true, "name": "Alice", "preferred_username": "alice", "groups": []any{"staff", "admins"}},
			wantSub: "sub-alice",
		},
		{
			name: "curity email domain refused",
			user: staff("alice", func(u *fakeidp.User) { u.Email = "alice@other.com" }),
			upstream: func(c *federation.Config, _ *fakeidp.Server) {
				c.Profile, c.Allow.EmailDomains = federation.ProfileCurity, []string{"example.com"}
			},
			wantRefusal: "Your account (alice@other.com) is not in an allowed email domain for Corp SSO.",
			wantRule:    "allow.email_domains",
		},
		{
			name:   "keycloak",
			quirks: fakeidp.Quirks{GroupsClaim: "realm_access.roles"},
			user: staff("alice", func(u *fakeidp.User) {
				u.Extra = map[string]any{"resource_access": map[string]any{"keyward": map[string]any{"roles": []any{"editor"}}}}
			}),
			upstream: func(c *federation.Config, _ *fakeidp.Server) {
				c.Profile, c.Claims.GroupsPrefix = federation.ProfileKeycloak, "kc:"
				c.Claims.Groups = []string{"realm_access.roles", "resource_access.keyward.roles"}
			},
			want:    map[string]any{"email": "alice@example.com", "email_verified": true, "name": "Alice", "preferred_username": "alice", "groups": []any{"kc:staff", "kc:admins", "kc:editor"}},
			wantSub: "sub-alice",
		},
		{
			name:    "generic with claims only in userinfo",
			quirks:  fakeidp.Quirks{UserinfoOnly: []string{"name", "groups"}},
			user:    staff("alice", nil),
			want:    map[string]any{"email": "alice@example.com", "email_verified": true, "name": "Alice", "preferred_username": "alice", "groups": []any{"staff", "admins"}},
			wantSub: "sub-alice",
			check: func(t *testing.T, idp *fakeidp.Server) {
				if n := idp.Hits("userinfo"); n != 1 {
					t.Errorf("upstream userinfo hits = %d, want 1", n)
				}
			},
		},
		{
			// An email the upstream does not mark verified is no identity:
			// Keyward's tokens and userinfo leave it out altogether.
			name:    "generic email_verified false leaves the email out",
			user:    staff("alice", func(u *fakeidp.User) { u.EmailVerified = false }),
			want:    map[string]any{"email": nil, "email_verified": nil, "name": "Alice", "preferred_username": "alice", "groups": []any{"staff", "admins"}},
			wantSub: "sub-alice",
		},
		{
			name:    "generic email_verified missing leaves the email out",
			user:    staff("alice", func(u *fakeidp.User) { u.NoEmailVerified = true }),
			want:    map[string]any{"email": nil, "email_verified": nil, "name": "Alice", "preferred_username": "alice", "groups": []any{"staff", "admins"}},
			wantSub: "sub-alice",
		},
		{
			// The ID token's email has no email_verified; userinfo (asked
			// for the name) verifies another address. That is no
			// verification of the ID token's.
			name:   "generic userinfo's email_verified is about its own address",
			quirks: fakeidp.Quirks{UserinfoOnly: []string{"name"}},
			user:   staff("alice", nil),
			upstream: func(_ *federation.Config, idp *fakeidp.Server) {
				idp.SetNextClaims(map[string]any{"email": "mallory@example.com", "email_verified": nil})
			},
			want:    map[string]any{"email": nil, "email_verified": nil, "name": "Alice", "preferred_username": "alice", "groups": []any{"staff", "admins"}},
			wantSub: "sub-alice",
		},
		{
			name:     "generic trustEmail vouches for an email marked unverified",
			user:     staff("alice", func(u *fakeidp.User) { u.EmailVerified = false }),
			upstream: func(c *federation.Config, _ *fakeidp.Server) { c.TrustEmail = true },
			want:     map[string]any{"email": "alice@example.com", "email_verified": true, "name": "Alice", "preferred_username": "alice", "groups": []any{"staff", "admins"}},
			wantSub:  "sub-alice",
		},
		{
			// An allowed domain proves nothing when anyone may claim it.
			name: "generic email domain of an unverified email refused",
			user: staff("alice", func(u *fakeidp.User) { u.EmailVerified = false }),
			upstream: func(c *federation.Config, _ *fakeidp.Server) {
				c.Allow.EmailDomains = []string{"example.com"}
			},
			wantRefusal: "Your email address (alice@example.com) is not verified at Corp SSO.",
			wantRule:    "allow.email_domains",
		},
		{
			name:        "generic email_verified false refused",
			user:        staff("alice", func(u *fakeidp.User) { u.EmailVerified = false }),
			upstream:    func(c *federation.Config, _ *fakeidp.Server) { c.Allow.RequireEmailVerified = true },
			wantRefusal: "Your email address (alice@example.com) is not verified at Corp SSO.",
			wantRule:    "allow.require_email_verified",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t)
		})
	}
}

func (tc profileCase) run(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String()
	idp := fakeidp.NewTest(t, fakeidp.Config{
		Users:     []fakeidp.User{tc.user},
		Clients:   []fakeidp.Client{{ID: brokertest.UpstreamClientID, Secret: brokertest.UpstreamSecret, RedirectURIs: []string{issuer + "/callback"}}},
		AutoLogin: tc.user.Username,
		Quirks:    tc.quirks,
	})
	e := brokertest.New(t, brokertest.Options{
		Dir: t.TempDir(), NoSync: true, Listener: ln, IdPs: []*fakeidp.Server{idp},
		Clients: []broker.Client{{ID: appID, Name: "The App", Secret: appSecret, RedirectURIs: []string{appRedir}}},
		Upstream: func(_ int, c *federation.Config) {
			if tc.upstream != nil {
				tc.upstream(c, idp)
			}
		},
		Broker: func(bc *broker.Config) {
			bc.AccessTokenClaims = []string{"email", "name", "groups", "preferred_username", "department"}
		},
	})
	p, err := oidc.NewProvider(oidc.ClientContext(t.Context(), http.DefaultClient), e.Issuer)
	if err != nil {
		t.Fatalf("oidc.NewProvider: %v", err)
	}
	oc := oauth2.Config{
		ClientID: appID, ClientSecret: appSecret, RedirectURL: appRedir, Endpoint: p.Endpoint(),
		Scopes: []string{oidc.ScopeOpenID, "email", "profile", "groups"},
	}
	verifier := oauth2.GenerateVerifier()
	resp := newBrowser(t).Do
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet,
		oc.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(verifier), oidc.Nonce("nonce-0123456789")), nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := resp(req)
	if err != nil {
		t.Fatalf("authorize: %v", err)
	}
	body := readAll(t, r)
	if tc.check != nil {
		defer tc.check(t, idp)
	}

	if tc.wantRefusal != "" {
		if r.StatusCode != http.StatusForbidden || !strings.Contains(body, htmlEscape(tc.wantRefusal)) {
			t.Fatalf("refused sign-in = %d, want 403 with %q; body: %.600s", r.StatusCode, tc.wantRefusal, body)
		}
		events, err := e.Store.ListAudit(t.Context(), 10)
		if err != nil {
			t.Fatalf("ListAudit: %v", err)
		}
		if len(events) != 1 || events[0].Action != broker.ActionLoginRefused || events[0].Actor != broker.ActorSignIn ||
			!strings.Contains(events[0].Reason, "corp: "+tc.wantRule+": ") {
			t.Errorf("audit events = %+v, want one %s by %s for rule %s", events, broker.ActionLoginRefused, broker.ActorSignIn, tc.wantRule)
		}
		if sessions, err := e.Store.ListSessions(t.Context(), ""); err != nil || len(sessions) != 0 {
			t.Errorf("sessions after a refusal = %d, %v; want none", len(sessions), err)
		}
		return
	}

	loc, err := url.Parse(r.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("sign-in = %d Location %q, want a code; body: %.600s", r.StatusCode, r.Header.Get("Location"), body)
	}
	tok, err := oc.Exchange(t.Context(), loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	rawID, _ := tok.Extra("id_token").(string)
	idt, err := p.Verifier(&oidc.Config{ClientID: appID}).Verify(t.Context(), rawID)
	if err != nil {
		t.Fatalf("verify Keyward's ID token: %v", err)
	}
	if want := broker.SubjectID("corp", tc.wantSub); idt.Subject != want {
		t.Errorf("ID token sub = %q, want SubjectID(corp, %s) = %q", idt.Subject, tc.wantSub, want)
	}
	var idClaims map[string]any
	if err := idt.Claims(&idClaims); err != nil {
		t.Fatal(err)
	}
	info, err := p.UserInfo(t.Context(), oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatalf("UserInfo: %v", err)
	}
	var infoClaims map[string]any
	if err := info.Claims(&infoClaims); err != nil {
		t.Fatal(err)
	}
	atClaims := jwtPayload(t, tok.AccessToken)
	for name, want := range tc.want {
		if diff := cmp.Diff(want, idClaims[name]); diff != "" {
			t.Errorf("ID token %s (-want +got):\n%s", name, diff)
		}
		if diff := cmp.Diff(want, infoClaims[name]); diff != "" {
			t.Errorf("userinfo %s (-want +got):\n%s", name, diff)
		}
		// email_verified travels with email, though tokens.claims names
		// only email.
		if diff := cmp.Diff(want, atClaims[name]); diff != "" {
			t.Errorf("access token %s (-want +got):\n%s", name, diff)
		}
	}
	if _, ok := tc.want["groups"]; !ok && idClaims["groups"] != nil {
		t.Errorf("ID token groups = %v, want none", idClaims["groups"])
	}
}

// jwtPayload decodes a JWT's claims; the signature is checked elsewhere.
func jwtPayload(t *testing.T, raw string) map[string]any {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("access token is not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// htmlEscape is the text as html/template writes it in the page.
func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "'", "&#39;", "<", "&lt;", ">", "&gt;", `"`, "&#34;").Replace(s)
}
