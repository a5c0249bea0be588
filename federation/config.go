package federation

import (
	"time"

	"github.com/keyward/keyward/cmd/config"
)

// Config describes one upstream identity provider: one entry of
// keyward.yaml's upstreams, which cmd decodes into it directly (keys are the
// yaml tags; examples/keyward.yaml documents each). Type selects the
// protocol: an OpenID Provider (Open, NewLazy) or GitHub (OpenGitHub).
// SetDefaults fills the defaults and Validate reports problems by field
// path (config_validate.go).
type Config struct {
	// ID is the stable upstream id, part of every subject Keyward derives,
	// so it must never change once in use. Pattern: [a-z0-9][a-z0-9-_.]*
	ID string `yaml:"id"`
	// Name is shown on the provider chooser. Default: ID.
	Name string `yaml:"name,omitempty"`
	// Type is TypeOIDC (an OpenID Provider) or TypeGitHub (GitHub's OAuth
	// 2.0 without OpenID Connect; it takes ID, Name, GitHubURL,
	// GitHubAPIURL, the client, Scopes, Claims.GroupsPrefix, Claims.Claims
	// and Allow). Default: TypeOIDC.
	Type string `yaml:"type,omitempty"`
	// GitHubURL (TypeGitHub) is GitHub's web base URL: DefaultGitHubURL
	// (the default), or a GitHub Enterprise Server's https://HOST. The
	// browser is sent to GitHubURL/login/oauth/authorize, codes are
	// redeemed at GitHubURL/login/oauth/access_token.
	GitHubURL string `yaml:"githubURL,omitempty"`
	// GitHubAPIURL (TypeGitHub) is the REST API's base URL. Default:
	// DefaultGitHubAPIURL(GitHubURL).
	GitHubAPIURL string `yaml:"githubAPIURL,omitempty"`
	// Profile presets defaults and switches on provider quirks; see the
	// Profile constants. Default: ProfileGeneric.
	Profile Profile `yaml:"profile,omitempty"`
	// Issuer is the exact issuer URL; discovery must report the same string.
	// With ProfileAzureAD it may be templated with {tenantid}
	// (https://login.microsoftonline.com/{tenantid}/v2.0): discovery is then
	// read at DiscoveryURL(Issuer), which must advertise the template, and
	// an ID token's iss must be the template with its own tid; Tenants is
	// then required. ProfileGoogle defaults it to GoogleIssuer.
	Issuer   string `yaml:"issuer"`
	ClientID string `yaml:"clientID"`
	// ClientSecret is Keyward's secret at the upstream: inline in YAML
	// (normally "${ENV_VAR}"), or the content of ClientSecretFile, which
	// cmd reads (secrets resolve in one place) and then clears. Exactly
	// one of the two.
	ClientSecret     string `yaml:"clientSecret,omitempty"`
	ClientSecretFile string `yaml:"clientSecretFile,omitempty"`
	// RedirectURL is Keyward's callback, e.g. https://sso.example.com/callback.
	// Not in YAML: cmd sets it from the broker's issuer.
	RedirectURL string `yaml:"-"`
	// Scopes requested upstream; must include openid.
	// Default: the profile's (openid email profile for most); GitHub:
	// read:user user:email read:org.
	Scopes []string `yaml:"scopes,omitempty"`
	// Claims names the upstream claims that carry the identity.
	Claims ClaimMapping `yaml:"claimMapping,omitempty"`
	// TrustEmail treats every email this upstream sends (an EmailFallbacks
	// one too) as verified, whatever its email_verified says: Keyward's
	// tokens then carry it with email_verified true, and the allow rules
	// count it as verified. Set it only for an IdP that verifies addresses
	// by policy (the directory's administrators set them). Default: false:
	// an email the upstream does not mark verified stays out of Keyward's
	// tokens. Each Profile says why its provider needs it or not.
	TrustEmail bool `yaml:"trustEmail,omitempty"`
	// Allow are conditions every identity must meet; a failing identity is
	// refused with a *NotAllowedError. Empty: everyone the upstream signs
	// in is allowed.
	Allow AllowRules `yaml:"allow,omitempty"`
	// Tenants (ProfileAzureAD) are the accepted tid values; required with a
	// templated issuer. An ID token of another tenant is refused with a
	// *NotAllowedError.
	Tenants []string `yaml:"tenants,omitempty"`
	// HostedDomains (ProfileGoogle) are the Google Workspace domains
	// accepted in the ID token's hd claim: one is sent as hd=<domain>,
	// several as hd=*. An account without hd (gmail.com) or with another hd
	// is refused with a *NotAllowedError.
	HostedDomains []string `yaml:"hostedDomains,omitempty"`
	// GroupsOverage (ProfileAzureAD) decides what happens when the ID token
	// says the groups did not fit (_claim_names/_claim_sources): read them
	// from Microsoft Graph with the upstream access token, or refuse the
	// sign-in. Default: OverageGraph.
	GroupsOverage Overage `yaml:"groupsOverage,omitempty"`
	// GraphURL (ProfileAzureAD) is Microsoft Graph's base URL, for tests
	// and national clouds. Default: GraphURL.
	GraphURL string `yaml:"graphURL,omitempty"`
	// LogoutURL is the upstream's logout page, used when discovery names
	// no end_session_endpoint (Cognito's /logout?client_id=…&logout_uri=…).
	// When set it wins over discovery's. It is used as given, except that
	// PostLogoutPlaceholder is replaced (see LogoutRequest).
	LogoutURL string `yaml:"logoutURL,omitempty"`
	// UpstreamLogout makes Keyward's RP-initiated logout sign the person
	// out at this upstream too: the browser goes to LogoutRequest's URL and
	// comes back to Keyward. Default: false (only Keyward's session ends).
	UpstreamLogout bool `yaml:"upstreamLogout,omitempty"`
	// Userinfo says when the userinfo endpoint is asked. Default:
	// UserinfoAuto.
	Userinfo UserinfoMode `yaml:"userinfo,omitempty"`
	// NativeClientIDs are the client IDs, at the upstream, of native apps
	// (mobile, desktop) whose upstream ID tokens may be exchanged for
	// Keyward tokens (native sign-in, RFC 8693 with subject_token_type
	// id_token): an ID token is accepted when its aud holds one of them.
	// Empty: native sign-in is off for this upstream. See VerifyIDToken.
	NativeClientIDs []string `yaml:"nativeClientIDs,omitempty"`
	// NativePublicClients lets Keyward clients without a secret (mobile
	// apps) exchange this upstream's ID tokens: the ID token is then the
	// only credential. Requires NativeClientIDs. Default: false.
	NativePublicClients bool `yaml:"nativePublicClients,omitempty"`
	// RecheckInterval, when positive, makes Keyward refresh the person's
	// upstream grant at a Keyward refresh once this long has passed since
	// the last check, ending the Keyward session if the upstream refuses
	// (see Refresh). Scopes must then include offline_access. 0: off.
	RecheckInterval config.Duration `yaml:"recheckInterval,omitempty"`
	// RecheckMaxAge bounds how long the upstream may go without vouching
	// for a person (no accepted re-check: outage, error answers, its
	// credentials refused) before Keyward ends the session anyway. At
	// least RecheckInterval; only with it. Default: DefaultRecheckMaxAge.
	RecheckMaxAge config.Duration `yaml:"recheckMaxAge,omitempty"`
	// MaxConcurrentCalls bounds Keyward's calls to this upstream in flight
	// at once (code exchanges, userinfo, re-check refreshes); more are
	// refused at once, so a slow or hanging upstream cannot hold the token
	// endpoint's slots. Default: DefaultMaxConcurrentCalls (16); -1: no
	// limit.
	MaxConcurrentCalls int `yaml:"maxConcurrentCalls,omitempty"`
	// Now is the clock for token checks. Default: time.Now.
	Now func() time.Time `yaml:"-"`
}

// ClaimMapping names the upstream claims read into an Identity; an empty
// field takes the profile's default (Profile.Preset). Every name is a path:
// first looked up as one top-level claim name (so namespaced claims such as
// "https://example.com/roles" or "cognito:groups" work as is), and, when no
// such claim exists, split on "." and walked through nested objects
// ("realm_access.roles", "resource_access.keyward.roles").
type ClaimMapping struct {
	// Subject is the stable upstream subject (Identity.Subject). Keyward's
	// subject is derived from the upstream id and this value, so changing
	// it changes every person's Keyward subject. Default: sub.
	Subject string `yaml:"subject,omitempty"`
	// Email: Default email. EmailFallbacks are tried in order when it is
	// missing; a fallback counts only when it holds an "@".
	Email          string   `yaml:"email,omitempty"`
	EmailFallbacks []string `yaml:"emailFallbacks,omitempty"`
	// EmailVerified is read only for an email from Email (not a fallback).
	// A missing claim means unknown, not false. Default: email_verified.
	EmailVerified string `yaml:"emailVerified,omitempty"`
	Name          string `yaml:"name,omitempty"` // Default: name
	// PreferredUsername: Default preferred_username; the fallbacks are
	// tried in order when it is missing.
	PreferredUsername          string   `yaml:"preferredUsername,omitempty"`
	PreferredUsernameFallbacks []string `yaml:"preferredUsernameFallbacks,omitempty"`
	// Groups are paths (in YAML one path or a list) whose values (a string
	// or a list of strings) are merged and deduplicated. Default: the
	// profile's ([groups] for most).
	Groups config.StringList `yaml:"groups,omitempty"`
	// GroupsPrefix is added to every group value, e.g. "kc:".
	GroupsPrefix string `yaml:"groupsPrefix,omitempty"`
	// Claims copies further claims into Identity.Extra: new name → path.
	// Only string, boolean and number values are copied (as strings).
	// A name may not be one Keyward sets itself.
	Claims map[string]string `yaml:"claims,omitempty"`
}

// AllowRules are conditions on a mapped identity; every configured one
// must hold.
type AllowRules struct {
	// EmailDomains: the email's domain, case-insensitively and exactly;
	// "*.example.com" accepts subdomains of example.com (not example.com
	// itself). The email must be verified (or Config.TrustEmail set): an
	// unverified address proves nothing about the domain.
	EmailDomains []string `yaml:"emailDomains,omitempty"`
	// Groups: the identity must be in at least one (after GroupsPrefix).
	Groups []string `yaml:"groups,omitempty"`
	// RequireEmailVerified: email_verified must be present and true (with
	// Config.TrustEmail: an email must be present).
	RequireEmailVerified bool `yaml:"requireEmailVerified,omitempty"`
	// Claims: path → accepted values (in YAML one value or a list); the
	// claim (a string, boolean or number, or a list of them) must hold one
	// of them.
	Claims map[string]config.StringList `yaml:"claims,omitempty"`
}

// empty reports whether no rule is configured.
func (a AllowRules) empty() bool {
	return len(a.EmailDomains) == 0 && len(a.Groups) == 0 && !a.RequireEmailVerified && len(a.Claims) == 0
}

// Upstream types (Config.Type).
const (
	TypeOIDC   = "oidc"
	TypeGitHub = "github"
)

// Overage is what to do about an Azure AD group overage.
type Overage string

// The overage policies.
const (
	// OverageGraph reads the groups from Microsoft Graph
	// (POST {GraphURL}/v1.0/me/getMemberObjects with the upstream access
	// token; the app registration needs GroupMember.Read.All or
	// Directory.Read.All).
	OverageGraph Overage = "graph"
	// OverageRefuse refuses the sign-in with a *NotAllowedError.
	OverageRefuse Overage = "refuse"
)

// UserinfoMode says when the userinfo endpoint is asked.
type UserinfoMode string

// The userinfo modes.
const (
	// UserinfoAuto asks when the mapped email, name or groups are missing
	// from the ID token (and the provider has a userinfo endpoint).
	UserinfoAuto UserinfoMode = "auto"
	// UserinfoAlways asks at every browser sign-in.
	UserinfoAlways UserinfoMode = "always"
	// UserinfoNever never asks.
	UserinfoNever UserinfoMode = "never"
)
