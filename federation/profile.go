package federation

import (
	"slices"
	"strings"
)

// Profile names a set of defaults for one kind of identity provider
// (Config.Profile). A profile only fills fields the config leaves empty;
// every field can be set explicitly instead. The provider quirks that are
// not plain defaults (Azure AD's templated issuer and group overage,
// Google's hd) are switched on by the profile too.
//
// No profile turns Config.TrustEmail on: an email reaches Keyward's tokens
// only when the provider marks it verified, unless the operator decides
// that the provider verifies addresses by policy. Each constant says what
// its provider sends.
type Profile string

// The profiles.
const (
	// ProfileGeneric: today's defaults (scopes openid email profile, the
	// standard claims, groups from "groups"). TrustEmail off: OIDC Core
	// §5.1 has email_verified for this; set TrustEmail only for a provider
	// that omits it but verifies addresses by policy.
	ProfileGeneric Profile = "generic"
	// ProfileGoogle: issuer https://accounts.google.com, no groups;
	// Config.HostedDomains is sent as hd and checked in the hd claim.
	// TrustEmail off: Google sends email_verified (true for Gmail and
	// Workspace addresses, false for a Google account made with another
	// address that was never confirmed).
	ProfileGoogle Profile = "google"
	// ProfileAzureAD: Microsoft Entra ID (Azure AD) v2.0. The issuer may be
	// templated with {tenantid} (multi-tenant; Config.Tenants required);
	// email falls back to upn then preferred_username; group overage is
	// resolved through Microsoft Graph (Config.GroupsOverage).
	// TrustEmail off: Entra ID sends no email_verified, and its email (the
	// mail attribute) and upn are set by the tenant's administrators and
	// are not verified in general, so Entra users get no email in
	// Keyward's tokens until TrustEmail is set (for tenants whose
	// administrators are trusted with the addresses) or EmailVerified
	// names the optional xms_edov claim (the email's domain is one the
	// tenant verified).
	ProfileAzureAD Profile = "azuread"
	// ProfileOkta: org or custom authorization server; asks for the groups
	// scope and reads groups from "groups". TrustEmail off: Okta sends
	// email_verified with the email scope (false until the person confirms
	// the address, e.g. after self-service registration).
	ProfileOkta Profile = "okta"
	// ProfileAuth0: the issuer keeps its trailing slash; custom claims are
	// namespaced URLs, so no groups claim is assumed (set
	// ClaimMapping.Groups to e.g. "https://example.com/roles").
	// TrustEmail off: Auth0 sends email_verified, false for a database
	// sign-up that has not clicked the verification link.
	ProfileAuth0 Profile = "auth0"
	// ProfileCognito: groups from "cognito:groups", the username from
	// "cognito:username"; Cognito has no end_session_endpoint, so set
	// Config.LogoutURL. TrustEmail off: Cognito sends email_verified, false
	// for a user whose address was never confirmed (an administrator may
	// create users without confirming it).
	ProfileCognito Profile = "cognito"
	// ProfileCurity: the Curity Identity Server; groups from "groups".
	// TrustEmail off: Curity sends email_verified when its claims mapper
	// has it for the email scope; map it there rather than trust.
	ProfileCurity Profile = "curity"
	// ProfileKeycloak: issuer https://host/realms/{realm}; groups from the
	// realm roles ("realm_access.roles"; add
	// "resource_access.<client>.roles" for client roles). TrustEmail off:
	// Keycloak sends email_verified, the user's "Email verified" flag
	// (off for users an administrator created or imported, unless set).
	ProfileKeycloak Profile = "keycloak"
)

// Profiles lists every profile, generic first.
func Profiles() []Profile {
	return []Profile{ProfileGeneric, ProfileGoogle, ProfileAzureAD, ProfileOkta, ProfileAuth0, ProfileCognito, ProfileCurity, ProfileKeycloak}
}

// Known reports whether p is a profile; "" is generic.
func (p Profile) Known() bool { return p == "" || slices.Contains(Profiles(), p) }

// Fixed issuers and service URLs of the profiles.
const (
	GoogleIssuer = "https://accounts.google.com"
	// GraphURL is Microsoft Graph's global endpoint (Config.GraphURL).
	GraphURL = "https://graph.microsoft.com"
	// TenantPlaceholder is the template in an Azure AD multi-tenant issuer,
	// e.g. https://login.microsoftonline.com/{tenantid}/v2.0.
	TenantPlaceholder = "{tenantid}"
)

// Preset is what a profile fills in where the config leaves a field empty.
type Preset struct {
	Issuer        string // "" when the profile has no fixed issuer
	Scopes        []string
	Claims        ClaimMapping
	GroupsOverage Overage // "" when the profile has no overage
	GraphURL      string
}

// Preset returns p's defaults, fresh on every call; an unknown profile
// gets generic's.
func (p Profile) Preset() Preset {
	std := func() ClaimMapping {
		return ClaimMapping{
			Subject: "sub", Email: "email", EmailVerified: "email_verified", Name: "name",
			PreferredUsername: "preferred_username", Groups: []string{"groups"},
		}
	}
	ps := Preset{Scopes: []string{"openid", "email", "profile"}, Claims: std()}
	switch p {
	case ProfileGoogle:
		ps.Issuer = GoogleIssuer
		ps.Claims.Groups = nil
	case ProfileAzureAD:
		ps.Claims.EmailFallbacks = []string{"upn", "preferred_username"}
		ps.GroupsOverage = OverageGraph
		ps.GraphURL = GraphURL
	case ProfileOkta:
		ps.Scopes = append(ps.Scopes, "groups")
	case ProfileAuth0:
		ps.Claims.Groups = nil
	case ProfileCognito:
		ps.Claims.Groups = []string{"cognito:groups"}
		ps.Claims.PreferredUsername = "cognito:username"
	case ProfileKeycloak:
		ps.Claims.Groups = []string{"realm_access.roles"}
	}
	return ps
}

// templated reports whether issuer holds the tenant placeholder.
func templated(issuer string) bool { return strings.Contains(issuer, TenantPlaceholder) }

// DiscoveryURL is where Keyward reads issuer's discovery document (without
// the /.well-known suffix): the issuer itself, or for a templated Azure AD
// issuer the same URL with "organizations" for {tenantid}, whose
// discovery advertises the template as its issuer.
func DiscoveryURL(issuer string) string {
	return strings.Replace(issuer, TenantPlaceholder, "organizations", 1)
}

// checkHostedDomain checks a Google ID token's hd claim against
// HostedDomains (claims are the verified ID token's).
func (c Config) checkHostedDomain(id Identity, claims map[string]any) error {
	if len(c.HostedDomains) == 0 {
		return nil
	}
	hd, _ := claims["hd"].(string)
	if slices.Contains(c.HostedDomains, strings.ToLower(hd)) {
		return nil
	}
	reason := "no hd claim (not a Google Workspace account)"
	if hd != "" {
		reason = "hd " + hd + " is not listed"
	}
	return c.refusal(id.Subject, "hosted_domains", reason,
		account(id)+" is not part of an allowed Google Workspace domain for "+c.Name+". Sign in with your organization's account.")
}

// hostedDomainParam is the hd authorization parameter: the one domain, or
// "*" (any Workspace account) for several; "" for none.
func (c Config) hostedDomainParam() string {
	switch len(c.HostedDomains) {
	case 0:
		return ""
	case 1:
		return c.HostedDomains[0]
	}
	return "*"
}
