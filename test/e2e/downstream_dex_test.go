package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/federation"
	"github.com/keyward/keyward/test/brokertest"
)

// dexConnector is a relying party of Keyward shaped like the oidc
// connector of Dex v2.45.1 (connector/oidc/oidc.go: LoginURL,
// HandleCallback, Refresh, createIdentity), which docs/behind-another-
// broker.md configures. Real Dex cannot be built here (go install refuses
// its module version), so the test holds the connector's logic that the
// recipe relies on: the prompt it sends with offline access, PKCE S256
// picked from discovery, the name claim it requires (userNameKey), email
// and email_verified required with the email scope, userinfo replacing the
// ID token's claims (getUserInfo), groups only with insecureEnableGroups,
// and refresh through the refresh_token grant with a stored refresh token.
type dexConnector struct {
	t        *testing.T
	oauth    oauth2.Config
	provider *oidc.Provider
	verifier *oidc.IDTokenVerifier
	browser  *http.Client

	promptType           *string // nil: Dex's default, consent
	userNameKey          string  // "": name
	getUserInfo          bool
	insecureEnableGroups bool
}

// dexIdentity is Dex's connector.Identity, with the connector data (the
// upstream refresh token) unpacked.
type dexIdentity struct {
	UserID, Username, PreferredUsername, Email string
	EmailVerified                              bool
	Groups                                     []string
	RefreshToken                               string
}

func newDexConnector(t *testing.T, e *env, scopes []string) *dexConnector {
	t.Helper()
	ctx := oidc.ClientContext(t.Context(), http.DefaultClient)
	p, err := oidc.NewProvider(ctx, e.issuer)
	if err != nil {
		t.Fatalf("oidc.NewProvider: %v", err)
	}
	return &dexConnector{
		t: t, provider: p, browser: newBrowser(t),
		oauth: oauth2.Config{
			ClientID: appID, ClientSecret: appSecret, RedirectURL: appRedir, Endpoint: p.Endpoint(),
			Scopes: append([]string{oidc.ScopeOpenID}, scopes...), // Dex prepends openid
		},
		verifier: p.Verifier(&oidc.Config{ClientID: appID}),
	}
}

// login is Dex's LoginURL and HandleCallback for a Dex client that asked
// Dex for offline access (offline) or not.
func (d *dexConnector) login(offline bool) (dexIdentity, error) {
	d.t.Helper()
	var metadata struct {
		Methods []string `json:"code_challenge_methods_supported"`
	}
	if err := d.provider.Claims(&metadata); err != nil || !slices.Contains(metadata.Methods, "S256") {
		d.t.Fatalf("discovery code_challenge_methods_supported = %v (%v); Dex would send no PKCE", metadata.Methods, err)
	}
	promptType := "consent"
	if d.promptType != nil {
		promptType = *d.promptType
	}
	verifier := oauth2.GenerateVerifier()
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier)}
	if offline {
		opts = append(opts, oauth2.AccessTypeOffline, oauth2.SetAuthURLParam("prompt", promptType))
	}
	state := randomString()
	resp, err := d.browser.Get(d.oauth.AuthCodeURL(state, opts...))
	if err != nil {
		d.t.Fatalf("GET authorize: %v", err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(resp.Header.Get("Location"), appRedir) {
		// A page for the person (such as "Access removed"): Dex's
		// callback is never reached.
		return dexIdentity{}, fmt.Errorf("keyward answered %d, not a redirect to Dex", resp.StatusCode)
	}
	q := loc.Query()
	if q.Get("state") != state {
		d.t.Fatalf("callback state = %q, want %q", q.Get("state"), state)
	}
	if e := q.Get("error"); e != "" {
		return dexIdentity{}, fmt.Errorf("%s: %s", e, q.Get("error_description"))
	}
	tok, err := d.oauth.Exchange(d.t.Context(), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		return dexIdentity{}, fmt.Errorf("oidc: failed to get token: %w", err)
	}
	return d.createIdentity(d.t.Context(), tok, false)
}

// refresh is Dex's Refresh: the refresh_token grant with the stored token.
func (d *dexConnector) refresh(id dexIdentity) (dexIdentity, error) {
	t := &oauth2.Token{RefreshToken: id.RefreshToken}
	tok, err := d.oauth.TokenSource(d.t.Context(), t).Token()
	if err != nil {
		return id, fmt.Errorf("oidc: failed to get refresh token: %w", err)
	}
	return d.createIdentity(d.t.Context(), tok, true)
}

// createIdentity is Dex's createIdentity, minus claim mutations.
func (d *dexConnector) createIdentity(ctx context.Context, tok *oauth2.Token, refresh bool) (dexIdentity, error) {
	var claims map[string]any
	if raw, ok := tok.Extra("id_token").(string); ok {
		idt, err := d.verifier.Verify(ctx, raw)
		if err != nil {
			return dexIdentity{}, fmt.Errorf("oidc: failed to verify ID Token: %w", err)
		}
		if err := idt.Claims(&claims); err != nil {
			return dexIdentity{}, err
		}
	} else if !refresh {
		return dexIdentity{}, errors.New("oidc: no id_token in token response")
	}
	if d.getUserInfo {
		ui, err := d.provider.UserInfo(ctx, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: tok.AccessToken, TokenType: "Bearer"}))
		if err != nil {
			return dexIdentity{}, fmt.Errorf("oidc: error loading userinfo: %w", err)
		}
		if err := ui.Claims(&claims); err != nil {
			return dexIdentity{}, err
		}
	}
	var id dexIdentity
	var found bool
	if id.UserID, found = claims["sub"].(string); !found {
		return dexIdentity{}, errors.New(`missing "sub" claim`)
	}
	nameKey := "name"
	if d.userNameKey != "" {
		nameKey = d.userNameKey
	}
	if id.Username, found = claims[nameKey].(string); !found {
		return dexIdentity{}, fmt.Errorf("missing %q claim", nameKey)
	}
	id.PreferredUsername, _ = claims["preferred_username"].(string)
	hasEmailScope := slices.Contains(d.oauth.Scopes, "email")
	if id.Email, found = claims["email"].(string); !found && hasEmailScope {
		return dexIdentity{}, errors.New(`missing email claim, not found "email" key`)
	}
	if id.EmailVerified, found = claims["email_verified"].(bool); !found && hasEmailScope {
		return dexIdentity{}, errors.New(`missing "email_verified" claim`)
	}
	if d.insecureEnableGroups {
		vs, _ := claims["groups"].([]any)
		for _, v := range vs {
			if s, ok := v.(string); ok {
				id.Groups = append(id.Groups, s)
			}
		}
	}
	id.RefreshToken = tok.RefreshToken
	return id, nil
}

// newDexChainEnv is a broker whose upstream sends no name for anyone (as
// many company IdPs configured for Keyward do), for a Dex in front of it.
func newDexChainEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, clock: &clock{}}
	e.b = brokertest.New(t, brokertest.Options{
		Dir:       t.TempDir(),
		NoSync:    true,
		AutoLogin: "alice",
		Clients:   []broker.Client{{ID: appID, Name: "Dex", Secret: appSecret, RedirectURIs: []string{appRedir}}},
		Now:       e.clock.Now,
		Upstream:  func(_ int, c *federation.Config) { c.Claims.Name = "no_such_claim" },
	})
	e.idps, e.issuer = e.b.IdPs, e.b.Issuer
	e.store, e.keys = e.b.Store, e.b.Keys
	return e
}

var recipeScopes = []string{"profile", "email", "groups", "offline_access"}

// recipe is the connector configuration of docs/behind-another-broker.md.
func recipe(t *testing.T, e *env) *dexConnector {
	d := newDexConnector(t, e, recipeScopes)
	noPrompt := ""
	d.promptType, d.userNameKey, d.getUserInfo, d.insecureEnableGroups = &noPrompt, "email", true, true
	return d
}

// TestDexConnectorRecipe: Dex's oidc connector configured as
// docs/behind-another-broker.md says signs in through Keyward without a
// name claim, refreshes, and stops refreshing once Keyward deprovisions
// the person; each setting the recipe names is needed.
func TestDexConnectorRecipe(t *testing.T) {
	e := newDexChainEnv(t)

	d := recipe(t, e)
	id, err := d.login(true)
	if err != nil {
		t.Fatalf("sign-in with the recipe: %v", err)
	}
	want := dexIdentity{Username: "alice@example.com", PreferredUsername: "alice", Email: "alice@example.com", EmailVerified: true, Groups: []string{"staff", "admins"}}
	if got := (dexIdentity{Username: id.Username, PreferredUsername: id.PreferredUsername, Email: id.Email, EmailVerified: id.EmailVerified, Groups: id.Groups}); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("identity = %+v, want %+v", got, want)
	}
	if id.RefreshToken == "" {
		t.Fatal("no refresh token for the connector: Dex could not refresh")
	}
	for i := range 2 {
		if id, err = d.refresh(id); err != nil || id.Username != "alice@example.com" {
			t.Fatalf("refresh %d = %q, %v; want alice@example.com", i+1, id.Username, err)
		}
	}

	// Deprovisioning in Keyward: Dex's next refresh of this person fails
	// with invalid_grant (Dex then answers its own client's refresh with an
	// error, and the person must sign in again, which Keyward refuses).
	if _, err := e.b.Broker.Deprovision(t.Context(), id.UserID, "left the company", "test"); err != nil {
		t.Fatalf("Deprovision: %v", err)
	}
	_, err = d.refresh(id)
	if re := (*oauth2.RetrieveError)(nil); !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
		t.Errorf("refresh after deprovisioning = %v, want invalid_grant", err)
	}
	if _, err := recipe(t, e).login(true); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("sign-in after deprovisioning = %v, want Keyward's 403 page", err)
	}
}

// TestDexConnectorWithoutRecipe: what each recipe setting prevents.
func TestDexConnectorWithoutRecipe(t *testing.T) {
	e := newDexChainEnv(t)
	noPrompt := ""

	// Dex's default prompt with offline access is consent, which Keyward
	// refuses: promptType: "".
	d := recipe(t, e)
	d.promptType = nil
	if _, err := d.login(true); err == nil || !strings.Contains(err.Error(), "consent_required") {
		t.Errorf("sign-in with promptType unset = %v, want consent_required", err)
	}

	// Without userNameKey Dex requires name, which the upstream lacks.
	d = recipe(t, e)
	d.userNameKey = ""
	if _, err := d.login(true); err == nil || !strings.Contains(err.Error(), `missing "name" claim`) {
		t.Errorf("sign-in without userNameKey = %v, want missing \"name\" claim", err)
	}

	// Without offline_access in the connector's scopes Keyward issues no
	// refresh token, and every Dex refresh fails.
	d = newDexConnector(t, e, []string{"profile", "email", "groups"})
	d.promptType, d.userNameKey, d.getUserInfo, d.insecureEnableGroups = &noPrompt, "email", true, true
	id, err := d.login(true)
	if err != nil {
		t.Fatalf("sign-in without offline_access: %v", err)
	}
	if id.RefreshToken != "" {
		t.Errorf("refresh token without offline_access = %q, want none", id.RefreshToken)
	}
	if _, err := d.refresh(id); err == nil {
		t.Error("refresh without offline_access succeeded, want an error")
	}

	// Without insecureEnableGroups Dex drops the groups.
	d = recipe(t, e)
	d.insecureEnableGroups = false
	if id, err := d.login(true); err != nil || id.Groups != nil {
		t.Errorf("sign-in without insecureEnableGroups = groups %q, %v; want none", id.Groups, err)
	}
}
