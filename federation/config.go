package federation

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/keyward/keyward/web/loopback"
)

// Config describes one upstream identity provider. It is tagless; cmd
// converts the YAML shape into it.
type Config struct {
	// ID is the stable upstream id, part of every subject Keyward derives,
	// so it must never change once in use. Pattern: [a-z0-9-]+
	ID string
	// Name is shown on the provider chooser. Default: ID.
	Name string
	// Profile presets defaults and switches on provider quirks; see the
	// Profile constants. Default: ProfileGeneric.
	Profile Profile
	// Issuer is the exact issuer URL; discovery must report the same string.
	// With ProfileAzureAD it may be templated with {tenantid}
	// (https://login.microsoftonline.com/{tenantid}/v2.0): discovery is then
	// read at DiscoveryURL(Issuer), which must advertise the template, and
	// an ID token's iss must be the template with its own tid; Tenants is
	// then required. ProfileGoogle defaults it to GoogleIssuer.
	Issuer       string
	ClientID     string
	ClientSecret string
	// RedirectURL is Keyward's callback, e.g. https://sso.example.com/callback.
	RedirectURL string
	// Scopes requested upstream; must include openid.
	// Default: openid email profile.
	Scopes []string
	// Claims names the upstream claims that carry the identity.
	Claims ClaimMapping
	// TrustEmail treats every email this upstream sends (an EmailFallbacks
	// one too) as verified, whatever its email_verified says: Keyward's
	// tokens then carry it with email_verified true, and the allow rules
	// count it as verified. Set it only for an IdP that verifies addresses
	// by policy (the directory's administrators set them). Default: false:
	// an email the upstream does not mark verified stays out of Keyward's
	// tokens. Each Profile says why its provider needs it or not.
	TrustEmail bool
	// Allow are conditions every identity must meet; a failing identity is
	// refused with a *NotAllowedError. Empty: everyone the upstream signs
	// in is allowed.
	Allow AllowRules
	// Tenants (ProfileAzureAD) are the accepted tid values; required with a
	// templated issuer. An ID token of another tenant is refused with a
	// *NotAllowedError.
	Tenants []string
	// HostedDomains (ProfileGoogle) are the Google Workspace domains
	// accepted in the ID token's hd claim: one is sent as hd=<domain>,
	// several as hd=*. An account without hd (gmail.com) or with another hd
	// is refused with a *NotAllowedError.
	HostedDomains []string
	// GroupsOverage (ProfileAzureAD) decides what happens when the ID token
	// says the groups did not fit (_claim_names/_claim_sources): read them
	// from Microsoft Graph with the upstream access token, or refuse the
	// sign-in. Default: OverageGraph.
	GroupsOverage Overage
	// GraphURL (ProfileAzureAD) is Microsoft Graph's base URL, for tests
	// and national clouds. Default: GraphURL.
	GraphURL string
	// LogoutURL is the upstream's logout page, used when discovery names
	// no end_session_endpoint (Cognito's /logout?client_id=…&logout_uri=…).
	// When set it wins over discovery's. It is used as given, except that
	// PostLogoutPlaceholder is replaced (see LogoutRequest).
	LogoutURL string
	// UpstreamLogout makes Keyward's RP-initiated logout sign the person
	// out at this upstream too: the browser goes to LogoutRequest's URL and
	// comes back to Keyward. Default: false (only Keyward's session ends).
	UpstreamLogout bool
	// Userinfo says when the userinfo endpoint is asked. Default:
	// UserinfoAuto.
	Userinfo UserinfoMode
	// NativeClientIDs are the client IDs, at the upstream, of native apps
	// (mobile, desktop) whose upstream ID tokens may be exchanged for
	// Keyward tokens (native sign-in, RFC 8693 with subject_token_type
	// id_token): an ID token is accepted when its aud holds one of them.
	// Empty: native sign-in is off for this upstream. See VerifyIDToken.
	NativeClientIDs []string
	// NativePublicClients lets Keyward clients without a secret (mobile
	// apps) exchange this upstream's ID tokens: the ID token is then the
	// only credential. Requires NativeClientIDs. Default: false.
	NativePublicClients bool
	// RecheckInterval, when positive, makes Keyward refresh the person's
	// upstream grant at a Keyward refresh once this long has passed since
	// the last check, ending the Keyward session if the upstream refuses
	// (see Refresh). Scopes must then include offline_access. 0: off.
	RecheckInterval time.Duration
	// RecheckMaxAge bounds how long the upstream may go without vouching
	// for a person (no accepted re-check: outage, error answers, its
	// credentials refused) before Keyward ends the session anyway. At
	// least RecheckInterval; only with it. Default: DefaultRecheckMaxAge.
	RecheckMaxAge time.Duration
	// Now is the clock for token checks. Default: time.Now.
	Now func() time.Time
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
	Subject string
	// Email: Default email. EmailFallbacks are tried in order when it is
	// missing; a fallback counts only when it holds an "@".
	Email          string
	EmailFallbacks []string
	// EmailVerified is read only for an email from Email (not a fallback).
	// A missing claim means unknown, not false. Default: email_verified.
	EmailVerified string
	Name          string // Default: name
	// PreferredUsername: Default preferred_username; the fallbacks are
	// tried in order when it is missing.
	PreferredUsername          string
	PreferredUsernameFallbacks []string
	// Groups are paths whose values (a string or a list of strings) are
	// merged and deduplicated. Default: the profile's ([groups] for most).
	Groups []string
	// GroupsPrefix is added to every group value, e.g. "kc:".
	GroupsPrefix string
	// Claims copies further claims into Identity.Extra: new name → path.
	// Only string, boolean and number values are copied (as strings).
	Claims map[string]string
}

// AllowRules are conditions on a mapped identity; every configured one
// must hold.
type AllowRules struct {
	// EmailDomains: the email's domain, case-insensitively and exactly;
	// "*.example.com" accepts subdomains of example.com (not example.com
	// itself). The email must be verified (or Config.TrustEmail set): an
	// unverified address proves nothing about the domain.
	EmailDomains []string
	// Groups: the identity must be in at least one (after GroupsPrefix).
	Groups []string
	// RequireEmailVerified: email_verified must be present and true (with
	// Config.TrustEmail: an email must be present).
	RequireEmailVerified bool
	// Claims: path → accepted values; the claim (a string, boolean or
	// number, or a list of them) must hold one of them.
	Claims map[string][]string
}

// empty reports whether no rule is configured.
func (a AllowRules) empty() bool {
	return len(a.EmailDomains) == 0 && len(a.Groups) == 0 && !a.RequireEmailVerified && len(a.Claims) == 0
}

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

var idPattern = regexp.MustCompile(`^[a-z0-9-]+$`)

// validateID checks an upstream's id, which every upstream type has.
func validateID(id string) []error {
	switch {
	case id == "":
		return []error{errors.New("id: must not be empty")}
	case !idPattern.MatchString(id):
		return []error{fmt.Errorf("id: %q must match [a-z0-9-]+", id)}
	}
	return nil
}

// validateClient checks Keyward's registration at an upstream, which
// every upstream type has: client_id, client_secret and redirect_url.
func validateClient(clientID, clientSecret, redirectURL string) []error {
	var errs []error
	if clientID == "" {
		errs = append(errs, errors.New("client_id: must not be empty"))
	}
	if clientSecret == "" {
		errs = append(errs, errors.New("client_secret: must not be empty"))
	}
	if err := checkURL(redirectURL); err != nil {
		errs = append(errs, fmt.Errorf("redirect_url: %w", err))
	}
	return errs
}

// Validate reports every problem with c, each naming its field. It does no
// I/O.
func (c Config) Validate() error {
	errs := validateID(c.ID)
	if !c.Profile.Known() {
		errs = append(errs, fmt.Errorf("profile: %q is not a profile; use one of %s", c.Profile, profileList()))
	}
	issuer := c.Issuer
	if issuer == "" {
		issuer = c.Profile.Preset().Issuer
	}
	if err := checkURL(DiscoveryURL(issuer)); err != nil {
		errs = append(errs, fmt.Errorf("issuer: %w", err))
	}
	errs = append(errs, c.validateQuirks(issuer)...)
	errs = append(errs, c.Claims.validate()...)
	errs = append(errs, c.Allow.validate()...)
	errs = append(errs, validateClient(c.ClientID, c.ClientSecret, c.RedirectURL)...)
	if c.Scopes != nil {
		if !slices.Contains(c.Scopes, "openid") {
			errs = append(errs, errors.New("scopes: must include openid"))
		}
		for _, s := range c.Scopes {
			if s == "" || strings.ContainsAny(s, " \t\r\n\"\\") {
				errs = append(errs, fmt.Errorf("scopes: %q is not a valid scope token", s))
			}
		}
	}
	for i, id := range c.NativeClientIDs {
		switch {
		case id == "" || strings.TrimSpace(id) != id:
			errs = append(errs, fmt.Errorf("native_client_ids[%d]: %q must be non-empty without surrounding space", i, id))
		case slices.Index(c.NativeClientIDs, id) < i:
			errs = append(errs, fmt.Errorf("native_client_ids[%d]: %q is listed twice", i, id))
		}
	}
	switch {
	case c.RecheckInterval < 0:
		errs = append(errs, fmt.Errorf("recheck_interval: %s must not be negative (0 turns the re-check off)", c.RecheckInterval))
	case c.RecheckInterval > 0 && !slices.Contains(c.Scopes, "offline_access"):
		errs = append(errs, errors.New("scopes: must include offline_access when recheck_interval is set (the re-check needs the upstream's refresh token)"))
	}
	if msg := RecheckMaxAgeProblem(c.RecheckInterval, c.RecheckMaxAge); msg != "" {
		errs = append(errs, errors.New("recheck_max_age: "+msg))
	}
	if c.NativePublicClients && len(c.NativeClientIDs) == 0 {
		errs = append(errs, errors.New("native_public_clients: needs native_client_ids (native sign-in is off without them)"))
	}
	if len(c.NativeClientIDs) > 0 && templated(issuer) {
		errs = append(errs, errors.New("native_client_ids: native sign-in needs a single-tenant issuer; use the tenant's own issuer (https://login.microsoftonline.com/<tenant id>/v2.0) for this upstream"))
	}
	return errors.Join(errs...)
}

func profileList() string {
	names := make([]string, 0, len(Profiles()))
	for _, p := range Profiles() {
		names = append(names, string(p))
	}
	return strings.Join(names, ", ")
}

// validateQuirks checks the provider-specific fields against the profile.
func (c Config) validateQuirks(issuer string) []error {
	var errs []error
	azure := c.Profile == ProfileAzureAD
	switch {
	case templated(issuer) && !azure:
		errs = append(errs, fmt.Errorf("issuer: %s is only understood with profile azuread", TenantPlaceholder))
	case templated(issuer) && strings.Count(issuer, TenantPlaceholder) != 1:
		errs = append(errs, fmt.Errorf("issuer: must hold %s once", TenantPlaceholder))
	case templated(issuer) && len(c.Tenants) == 0:
		errs = append(errs, errors.New("tenants: required with a templated issuer (any Azure AD tenant could sign in otherwise); list the tenant ids (tid) to accept"))
	}
	if len(c.Tenants) > 0 && !azure {
		errs = append(errs, errors.New("tenants: only for profile azuread; remove it"))
	}
	errs = append(errs, checkList("tenants", c.Tenants, func(s string) error {
		if !tenantPattern.MatchString(s) {
			return errors.New("must be a tenant id (letters, digits and dashes)")
		}
		return nil
	})...)
	if len(c.HostedDomains) > 0 && c.Profile != ProfileGoogle {
		errs = append(errs, errors.New("hosted_domains: only for profile google; use allow.email_domains for other providers"))
	}
	errs = append(errs, checkList("hosted_domains", c.HostedDomains, func(s string) error {
		if strings.HasPrefix(s, "*.") {
			return errors.New("must be a Google Workspace domain such as example.com (no wildcard)")
		}
		return checkDomain(s)
	})...)
	if c.GroupsOverage != "" && !azure {
		errs = append(errs, errors.New("groups_overage: only for profile azuread; remove it"))
	}
	if c.GroupsOverage != "" && c.GroupsOverage != OverageGraph && c.GroupsOverage != OverageRefuse {
		errs = append(errs, fmt.Errorf("groups_overage: %q is not graph or refuse", c.GroupsOverage))
	}
	if c.GraphURL != "" {
		if !azure {
			errs = append(errs, errors.New("graph_url: only for profile azuread; remove it"))
		}
		if err := checkURL(c.GraphURL); err != nil {
			errs = append(errs, fmt.Errorf("graph_url: %w", err))
		}
	}
	if c.LogoutURL != "" {
		if err := checkURL(strings.SplitN(c.LogoutURL, "?", 2)[0]); err != nil || strings.Contains(c.LogoutURL, "#") {
			errs = append(errs, errors.New("logout_url: must be an absolute https URL (http only for loopback) without a fragment; a query is fine"))
		}
	}
	switch c.Userinfo {
	case "", UserinfoAuto, UserinfoAlways, UserinfoNever:
	default:
		errs = append(errs, fmt.Errorf("userinfo: %q is not auto, always or never", c.Userinfo))
	}
	return errs
}

var (
	tenantPattern = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)
	domainPattern = regexp.MustCompile(`^(\*\.)?([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
	// keywardClaims may not be the name of a copied claim: Keyward sets
	// them itself.
	keywardClaims = []string{
		"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "auth_time", "nonce", "acr", "amr", "azp",
		"at_hash", "c_hash", "sid", "idp", "client_id", "scope", "act", "cnf", "typ",
		"email", "email_verified", "name", "preferred_username", "groups",
	}
)

// checkDomain accepts a lower-case DNS name, optionally "*."-prefixed.
func checkDomain(s string) error {
	if !domainPattern.MatchString(s) {
		return errors.New("must be a lower-case domain such as example.com (or *.example.com for its subdomains)")
	}
	return nil
}

// checkList reports empty, duplicate and invalid entries of list.
func checkList(field string, list []string, check func(string) error) []error {
	var errs []error
	for i, s := range list {
		switch {
		case s == "" || strings.TrimSpace(s) != s:
			errs = append(errs, fmt.Errorf("%s[%d]: %q must be non-empty without surrounding space", field, i, s))
		case slices.Index(list, s) < i:
			errs = append(errs, fmt.Errorf("%s[%d]: %q is listed twice", field, i, s))
		case check != nil:
			if err := check(s); err != nil {
				errs = append(errs, fmt.Errorf("%s[%d]: %q %w", field, i, s, err))
			}
		}
	}
	return errs
}

// validate checks the paths and copied claim names of a mapping.
func (m ClaimMapping) validate() []error {
	var errs []error
	for _, p := range []struct{ field, path string }{
		{"subject", m.Subject}, {"email", m.Email}, {"email_verified", m.EmailVerified},
		{"name", m.Name}, {"preferred_username", m.PreferredUsername},
	} {
		if strings.TrimSpace(p.path) != p.path {
			errs = append(errs, fmt.Errorf("claims.%s: %q must not have surrounding space", p.field, p.path))
		}
	}
	errs = append(errs, checkList("claims.email_fallbacks", m.EmailFallbacks, nil)...)
	errs = append(errs, checkList("claims.preferred_username_fallbacks", m.PreferredUsernameFallbacks, nil)...)
	errs = append(errs, checkList("claims.groups", m.Groups, nil)...)
	if strings.ContainsFunc(m.GroupsPrefix, unicode.IsSpace) {
		errs = append(errs, fmt.Errorf("claims.groups_prefix: %q must not contain spaces", m.GroupsPrefix))
	}
	for _, name := range slices.Sorted(maps.Keys(m.Claims)) {
		path := m.Claims[name]
		switch {
		case name == "" || strings.ContainsFunc(name, unicode.IsSpace):
			errs = append(errs, fmt.Errorf("claims.claims: %q is not a claim name (non-empty, no spaces)", name))
		case slices.Contains(keywardClaims, name):
			errs = append(errs, fmt.Errorf("claims.claims.%s: Keyward sets this claim itself; pick another name", name))
		}
		if path == "" || strings.TrimSpace(path) != path {
			errs = append(errs, fmt.Errorf("claims.claims.%s: the path %q must be non-empty without surrounding space", name, path))
		}
	}
	return errs
}

// validate checks the allow rules.
func (a AllowRules) validate() []error {
	errs := checkList("allow.email_domains", a.EmailDomains, func(s string) error { return checkDomain(strings.ToLower(s)) })
	errs = append(errs, checkList("allow.groups", a.Groups, nil)...)
	for _, path := range slices.Sorted(maps.Keys(a.Claims)) {
		if path == "" || strings.TrimSpace(path) != path {
			errs = append(errs, fmt.Errorf("allow.claims: the path %q must be non-empty without surrounding space", path))
		}
		if len(a.Claims[path]) == 0 {
			errs = append(errs, fmt.Errorf("allow.claims.%s: list at least one accepted value", path))
		}
	}
	return errs
}

// checkURL accepts an absolute https URL, or http for a loopback host,
// without query or fragment.
func checkURL(raw string) error {
	bad := errors.New("must be an absolute https URL (http only for loopback)")
	if raw == "" {
		return errors.New("must not be empty")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil {
		return bad
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !loopback.Host(u.Hostname()) {
			return bad
		}
	default:
		return bad
	}
	if u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(raw, "#") || strings.HasSuffix(raw, "?") {
		return errors.New("must not have a query or fragment")
	}
	return nil
}

// withDefaults fills the documented defaults: the profile's preset where a
// field is empty.
func (c Config) withDefaults() Config {
	if c.Profile == "" {
		c.Profile = ProfileGeneric
	}
	ps := c.Profile.Preset()
	if c.Name == "" {
		c.Name = c.ID
	}
	if c.Issuer == "" {
		c.Issuer = ps.Issuer
	}
	if c.Scopes == nil {
		c.Scopes = ps.Scopes
	} else {
		c.Scopes = slices.Clone(c.Scopes)
	}
	c.NativeClientIDs = slices.Clone(c.NativeClientIDs)
	c.Tenants = slices.Clone(c.Tenants)
	c.HostedDomains = slices.Clone(c.HostedDomains)
	c.Claims = c.Claims.withDefaults(ps.Claims)
	if c.GroupsOverage == "" {
		c.GroupsOverage = ps.GroupsOverage
	}
	if c.GraphURL == "" {
		c.GraphURL = ps.GraphURL
	}
	c.GraphURL = strings.TrimRight(c.GraphURL, "/")
	if c.Userinfo == "" {
		c.Userinfo = UserinfoAuto
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// withDefaults fills m's empty fields from def, cloning every slice and map.
func (m ClaimMapping) withDefaults(def ClaimMapping) ClaimMapping {
	set := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	set(&m.Subject, def.Subject)
	set(&m.Email, def.Email)
	set(&m.EmailVerified, def.EmailVerified)
	set(&m.Name, def.Name)
	set(&m.PreferredUsername, def.PreferredUsername)
	set(&m.GroupsPrefix, def.GroupsPrefix)
	if m.EmailFallbacks == nil {
		m.EmailFallbacks = def.EmailFallbacks
	}
	if m.PreferredUsernameFallbacks == nil {
		m.PreferredUsernameFallbacks = def.PreferredUsernameFallbacks
	}
	if m.Groups == nil {
		m.Groups = def.Groups
	}
	m.EmailFallbacks = slices.Clone(m.EmailFallbacks)
	m.PreferredUsernameFallbacks = slices.Clone(m.PreferredUsernameFallbacks)
	m.Groups = slices.Clone(m.Groups)
	m.Claims = maps.Clone(m.Claims)
	return m
}
