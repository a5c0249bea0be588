package federation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/oauth2"
)

// GitHub upstreams. GitHub (github.com and GitHub Enterprise Server) speaks
// OAuth 2.0, not OpenID Connect: there is no discovery, no ID token, no
// nonce, no logout and no refresh worth checking. The person is read from
// the REST API with the access token of the code exchange, and mapped and
// admitted exactly as an OIDC upstream's claims are (claims.go, allow.go).

// DefaultGitHubURL is github.com's web base URL (Config.GitHubURL).
const DefaultGitHubURL = "https://github.com"

// ErrGitHubAPI: a GitHub REST API request made after the code exchange
// failed (network, 5xx, rate limit, bad credentials, an unusable answer).
var ErrGitHubAPI = errors.New("github api request failed")

// A GitHub upstream is a Config with Type TypeGitHub. Of its fields it reads
// ID, Name, GitHubURL, GitHubAPIURL, ClientID, ClientSecret, RedirectURL,
// Scopes (default, also for an empty list: read:user user:email read:org;
// without user:email or user no email is read, without read:org, write:org
// or admin:org no groups are), Claims.GroupsPrefix ("gh:"), Claims.Claims
// (fields of the person's GET /user document copied into Identity.Extra:
// new name → path, e.g. "company", "plan.name") and Allow (as for OIDC
// upstreams; groups are the organisation logins and "org:team-slug"
// values, lower case, after GroupsPrefix). Validate refuses every other
// field by name.

// githubScopes are the default scopes of a GitHub upstream.
var githubScopes = []string{"read:user", "user:email", "read:org"}

// DefaultGitHubAPIURL is the REST API base URL of the GitHub at githubURL:
// https://api.github.com for github.com, githubURL/api/v3 otherwise.
func DefaultGitHubAPIURL(githubURL string) string {
	githubURL = strings.TrimRight(githubURL, "/")
	if githubURL == "" || githubURL == DefaultGitHubURL {
		return "https://api.github.com"
	}
	return githubURL + "/api/v3"
}

// githubDefaults fills what opening a GitHub upstream needs beyond
// SetDefaults: the API URL and the scopes.
func (c Config) githubDefaults() Config {
	if c.GitHubAPIURL == "" {
		c.GitHubAPIURL = DefaultGitHubAPIURL(c.GitHubURL)
	}
	c.GitHubAPIURL = strings.TrimRight(c.GitHubAPIURL, "/")
	if len(c.Scopes) == 0 { // none at all would read as a GitHub App's grant
		c.Scopes = githubScopes
	}
	return c
}

// GitHub is one opened GitHub upstream. It implements the broker's
// Upstream; native sign-in, back-channel logout, upstream logout and the
// upstream re-check are not available (GitHub has no ID tokens, logout
// tokens or logout endpoint). It is safe for concurrent use.
type GitHub struct {
	cfg     Config
	rules   Config       // ID, Name and Allow: the shared allow rules and refusals
	mapping ClaimMapping // fixed paths into the claims Exchange builds
	client  *http.Client
	oauth2  oauth2.Config
	api     *url.URL
	logger  *slog.Logger
}

// OpenGitHub validates c, a Config of Type TypeGitHub (an empty Type is
// taken as it), and builds the upstream. It does no I/O, so the upstream is
// ready at once; httpClient (nil: a client with a 10s timeout) is kept for
// the token and REST API requests.
func (c Config) OpenGitHub(ctx context.Context, httpClient *http.Client, logger *slog.Logger) (*GitHub, error) {
	c.Type = TypeGitHub
	c.SetDefaults()
	if err := c.validateOpen(); err != nil {
		return nil, fmt.Errorf("federation: upstream %q: %w", c.ID, err)
	}
	c = c.withDefaults().githubDefaults()
	api, err := url.Parse(c.GitHubAPIURL)
	if err != nil {
		return nil, fmt.Errorf("federation: upstream %q: githubAPIURL: %w", c.ID, err)
	}
	if httpClient == nil {
		httpClient = &http.Client{Timeout: defaultTimeout}
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "federation", "upstream", c.ID)
	g := &GitHub{
		cfg:   c,
		rules: Config{ID: c.ID, Name: c.Name, Allow: c.Allow},
		mapping: ClaimMapping{
			Subject: "sub", Email: "email", EmailVerified: "email_verified", Name: "name",
			PreferredUsername: "login", Groups: []string{"groups"}, GroupsPrefix: c.Claims.GroupsPrefix,
			Claims: c.Claims.Claims,
		},
		client: httpClient,
		oauth2: oauth2.Config{
			ClientID:     c.ClientID,
			ClientSecret: c.ClientSecret,
			Endpoint: oauth2.Endpoint{
				AuthURL:  c.GitHubURL + "/login/oauth/authorize",
				TokenURL: c.GitHubURL + "/login/oauth/access_token",
				// GitHub documents the client secret as a form parameter;
				// fixed, so a code is never posted twice as auto-detection would.
				AuthStyle: oauth2.AuthStyleInParams,
			},
			RedirectURL: c.RedirectURL,
			Scopes:      c.Scopes,
		},
		api:    api,
		logger: logger,
	}
	logger.InfoContext(ctx, "upstream ready", "type", "github", "github_url", c.GitHubURL, "api_url", c.GitHubAPIURL,
		"allow_rules", !c.Allow.empty())
	return g, nil
}

// ID returns the stable upstream id.
func (g *GitHub) ID() string { return g.cfg.ID }

// Name returns the display name.
func (g *GitHub) Name() string { return g.cfg.Name }

// Issuer returns GitHubURL. GitHub issues no ID tokens, so no token ever
// names it; it identifies the upstream in logs and authorization responses.
func (g *GitHub) Issuer() string { return g.cfg.GitHubURL }

// AuthCodeURL returns GitHub's authorization URL for one login: state and
// PKCE S256 from pkceVerifier. GitHub has no nonce (no ID token), so nonce
// is not sent. Of opts, only prompt=select_account and a login hint that
// is a GitHub login (no "@") are passed on (as prompt and login); GitHub
// cannot be made to ask for the password again, so prompt=login and
// max_age are not.
func (g *GitHub) AuthCodeURL(state, _, pkceVerifier string, opts AuthOptions) string {
	params := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(pkceVerifier)}
	if opts.Prompt == "select_account" {
		params = append(params, oauth2.SetAuthURLParam("prompt", "select_account"))
	}
	if h := opts.LoginHint; h != "" && !strings.Contains(h, "@") {
		params = append(params, oauth2.SetAuthURLParam("login", h))
	}
	return g.oauth2.AuthCodeURL(state, params...)
}

// CheckAuthorizationResponseIssuer checks an authorization response's iss
// (RFC 9207). GitHub sends none, so "" is accepted; a present iss must be
// GitHubURL, because any other is another provider's answer (a mix-up).
// Errors wrap ErrIssuerMismatch. It does no I/O.
func (g *GitHub) CheckAuthorizationResponseIssuer(iss string) error {
	if iss == "" || iss == g.cfg.GitHubURL {
		return nil
	}
	return fmt.Errorf("federation: check authorization response iss: %w: iss %q is not upstream %q (GitHub sends none)",
		ErrIssuerMismatch, clean(iss, 100), g.cfg.ID)
}

// VerifyIDToken always refuses with ErrNativeNotAccepted: GitHub issues no
// ID tokens, so native sign-in is not available. It does no I/O.
func (g *GitHub) VerifyIDToken(context.Context, string) (Identity, error) {
	return Identity{}, fmt.Errorf("federation: verify native id token: %w: upstream %q is GitHub, which issues no ID tokens",
		ErrNativeNotAccepted, g.cfg.ID)
}

// NativePublicClients is false: native sign-in is not available.
func (g *GitHub) NativePublicClients() bool { return false }

// VerifyLogoutToken always refuses with ErrInvalidLogoutToken: GitHub has
// no back-channel logout.
func (g *GitHub) VerifyLogoutToken(context.Context, string) (LogoutClaims, error) {
	return LogoutClaims{}, fmt.Errorf("federation: verify logout token: %w: upstream %q is GitHub, which sends no logout tokens",
		ErrInvalidLogoutToken, g.cfg.ID)
}

// Exchange redeems code with pkceVerifier at GitHub's token endpoint and
// reads the person from the REST API with the access token:
//   - GET /user: the numeric id is the subject (as a decimal string; the
//     login can change, the id cannot), login the preferred_username,
//     name the name;
//   - GET /user/emails (with user:email or user granted): the primary
//     email, only when verified, with email_verified true; the public email
//     of /user is never used;
//   - GET /user/orgs and /user/teams (with read:org, write:org or admin:org
//     granted): the organisation logins and "org:team-slug", lower case,
//     as groups, at most 10 pages of 100 each (more are left out, logged
//     at Warn).
//
// A GitHub App's user token names no scopes; its permissions decide, and
// a 403 or 404 from an endpoint it may not read leaves that part out. The
// nonce is not used (GitHub has no ID token). Identity.Claims are the
// /user document with sub, email, email_verified and groups set as above;
// AuthTime is zero and RefreshToken empty.
//
// Errors wrap ErrTokenEndpoint or ErrGitHubAPI with a cause fit for logs
// (no token, upstream bodies cut off). An identity the allow rules refuse
// is a *NotAllowedError, returned once everything else worked.
func (g *GitHub) Exchange(ctx context.Context, code, pkceVerifier, _ string) (Identity, error) {
	if code == "" || pkceVerifier == "" {
		return Identity{}, errors.New("federation: exchange code: code and PKCE verifier are required")
	}
	tok, err := g.oauth2.Exchange(context.WithValue(ctx, oauth2.HTTPClient, g.client), code, oauth2.VerifierOption(pkceVerifier))
	if err != nil {
		return Identity{}, fmt.Errorf("federation: exchange code: %w: %w", ErrTokenEndpoint, redact(err))
	}
	if tok.Type() != "Bearer" {
		return Identity{}, fmt.Errorf("federation: exchange code: %w: token type %q is not bearer", ErrTokenEndpoint, clean(tok.TokenType, 20))
	}
	granted := grantedScopes(tok)
	claims, err := g.user(ctx, tok.AccessToken)
	if err != nil {
		return Identity{}, err
	}
	delete(claims, "email") // /user's is the public one, maybe unverified
	delete(claims, "email_verified")
	if granted.has("user:email", "user") {
		email, err := g.primaryEmail(ctx, tok.AccessToken)
		if err != nil {
			return Identity{}, err
		}
		if email != "" {
			claims["email"], claims["email_verified"] = email, true
		}
	}
	delete(claims, "groups")
	if granted.has("read:org", "write:org", "admin:org") {
		groups, err := g.groups(ctx, tok.AccessToken)
		if err != nil {
			return Identity{}, err
		}
		if groups != nil {
			claims["groups"] = groups
		}
	}
	m, err := g.mapping.identity(claims, false) // the email is the primary verified one, or none
	if err != nil {
		return Identity{}, fmt.Errorf("federation: read github user: %w: %w", ErrGitHubAPI, err)
	}
	if err := g.rules.allow(m, claims); err != nil {
		return Identity{}, err
	}
	g.logger.DebugContext(ctx, "upstream identity verified", "sub", m.Subject, "groups", len(m.Groups))
	return m.Identity, nil
}

// githubGrant is what the token response says was granted: GitHub's scope
// is comma-separated; a GitHub App's user token has an empty one (its
// permissions decide, not scopes).
type githubGrant struct {
	app    bool
	scopes []string
}

func grantedScopes(tok *oauth2.Token) githubGrant {
	s, _ := tok.Extra("scope").(string)
	scopes := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
	return githubGrant{app: len(scopes) == 0, scopes: scopes}
}

// has reports whether one of scopes was granted (always, for a GitHub
// App's token: its permissions are checked by the API instead).
func (g githubGrant) has(scopes ...string) bool {
	return g.app || slices.ContainsFunc(g.scopes, func(s string) bool { return slices.Contains(scopes, s) })
}

// subjectOf is the subject of a GitHub user id: its decimal string.
func subjectOf(id int64) string { return strconv.FormatInt(id, 10) }
