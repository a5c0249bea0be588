package main

import (
	"context"
	"log/slog"
	"net/http"
	"strings"

	"github.com/keyward/keyward/federation"
)

// Upstream types (UpstreamConfig.Type).
const (
	upstreamOIDC   = "oidc"
	upstreamGitHub = "github"
)

// A GitHub upstream (type: github) takes id, name, githubURL,
// githubAPIURL, clientID, clientSecret(File), scopes,
// claimMapping.groupsPrefix, claimMapping.claims and allow. GitHub is
// OAuth 2.0 without OpenID Connect: no discovery, no ID token, no logout,
// no refresh tokens to re-check, so every OIDC-only field is refused by
// name, and the claim mapping is fixed (the numeric user id is the
// subject; see federation.GitHub.Exchange).

// validateUpstreamType reports an unknown type, the GitHub fields on an
// OIDC upstream, and checks a GitHub upstream's own fields. It reports
// whether u is an OIDC upstream, whose fields the caller checks.
func validateUpstreamType(p *problems, path string, u UpstreamConfig) bool {
	switch u.Type {
	case "", upstreamOIDC:
		for _, f := range []struct{ name, v string }{{"githubURL", u.GitHubURL}, {"githubAPIURL", u.GitHubAPIURL}} {
			if f.v != "" {
				p.Add(path+"."+f.name, "only for type: github; remove it (an OpenID Provider is found by its issuer)")
			}
		}
		return true
	case upstreamGitHub:
		validateGitHub(p, path, u)
	default:
		p.Add(path+".type", "%q is not an upstream type; use oidc (the default, any OpenID Provider) or github", u.Type)
	}
	return false
}

// validateGitHub checks a type: github upstream (path is upstreams[i]);
// clientID and the secret are checked with every upstream's.
func validateGitHub(p *problems, path string, u UpstreamConfig) {
	notForGitHub := func(field string, set bool, why string) {
		if set {
			p.Add(path+"."+field, "not available with type: github (%s); remove it", why)
		}
	}
	const noOIDC = "GitHub is OAuth 2.0 without OpenID Connect"
	notForGitHub("profile", u.Profile != "", noOIDC+": profiles preset OpenID Providers")
	notForGitHub("issuer", u.Issuer != "", "GitHub has no issuer; use githubURL, e.g. https://github.example.com for GitHub Enterprise Server")
	notForGitHub("tenants", len(u.Tenants) > 0, "only for profile: azuread")
	notForGitHub("hostedDomains", len(u.HostedDomains) > 0, "only for profile: google; use allow.emailDomains")
	notForGitHub("groupsOverage", u.GroupsOverage != "", "only for profile: azuread")
	notForGitHub("graphURL", u.GraphURL != "", "only for profile: azuread")
	notForGitHub("logoutURL", u.LogoutURL != "", "GitHub has no logout endpoint for applications")
	notForGitHub("upstreamLogout", u.UpstreamLogout, "GitHub has no logout endpoint for applications")
	notForGitHub("userinfo", u.Userinfo != "", "Keyward always reads the GitHub user from the REST API")
	notForGitHub("nativeClientIDs", len(u.NativeClientIDs) > 0, "GitHub issues no ID tokens, so native sign-in cannot work")
	notForGitHub("nativePublicClients", u.NativePublicClients, "GitHub issues no ID tokens, so native sign-in cannot work")
	notForGitHub("trustEmail", u.TrustEmail, "the GitHub email is always the primary verified address, or none")
	notForGitHub("recheckInterval", u.RecheckInterval != 0, "the re-check refreshes the upstream grant, and GitHub OAuth App tokens have no refresh token")
	notForGitHub("recheckMaxAge", u.RecheckMaxAge != 0, "it bounds the re-check, which GitHub upstreams do not have")
	m := u.ClaimMapping
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"subject", m.Subject != ""}, {"email", m.Email != ""}, {"emailFallbacks", len(m.EmailFallbacks) > 0},
		{"emailVerified", m.EmailVerified != ""}, {"name", m.Name != ""}, {"preferredUsername", m.PreferredUsername != ""},
		{"preferredUsernameFallbacks", len(m.PreferredUsernameFallbacks) > 0}, {"groups", len(m.Groups) > 0},
	} {
		notForGitHub("claimMapping."+f.name, f.set,
			"the GitHub mapping is fixed: the numeric user id is the subject, the primary verified email the email, login the preferred_username, organisations and teams the groups; only groupsPrefix and claims may be set")
	}
	checkIssuer(p, path+".githubURL", u.GitHubURL)
	if u.GitHubAPIURL != "" {
		checkIssuer(p, path+".githubAPIURL", u.GitHubAPIURL)
	}
	checkStrings(p, path+".scopes", u.Scopes, func(s string) string {
		if strings.ContainsAny(s, " ,\t\r\n\"\\") {
			return "is not a GitHub scope; write one scope per entry, e.g. read:org"
		}
		return ""
	})
	validateClaimMapping(p, path+".claimMapping", m)
	validateAllow(p, path+".allow", u.Allow)
}

// openGitHub opens a type: github upstream. It does no I/O: the upstream
// is ready at once.
func openGitHub(ctx context.Context, cfg *Config, sec Secrets, u UpstreamConfig, client *http.Client, log *slog.Logger) (*federation.GitHub, error) {
	return federation.GitHubConfig{
		ID:           u.ID,
		Name:         u.Name,
		GitHubURL:    u.GitHubURL,
		APIURL:       u.GitHubAPIURL,
		ClientID:     u.ClientID,
		ClientSecret: sec.UpstreamClientSecrets[u.ID],
		RedirectURL:  cfg.Issuer + "/callback",
		Scopes:       u.Scopes,
		GroupsPrefix: u.ClaimMapping.GroupsPrefix,
		Claims:       u.ClaimMapping.Claims,
		Allow:        u.Allow.rules(),
	}.Open(ctx, client, log)
}
