package federation

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/keyward/keyward/cmd/config"
	"github.com/keyward/keyward/cmd/config/field"
)

// This file holds an upstream's defaults (SetDefaults) and its validation
// (Validate), the one home of both: cmd applies them to keyward.yaml's
// upstreams, Open and NewLazy to a Config built in code.

// SetDefaults fills every empty field with its default: for an OpenID
// Provider the profile's preset (an unknown profile gets generic's;
// Validate reports it), for GitHub its URL. An empty list counts as unset.
// It is idempotent.
func (c *Config) SetDefaults() {
	if c.Name == "" {
		c.Name = c.ID
	}
	if c.Type == TypeGitHub {
		c.GitHubURL = strings.TrimRight(c.GitHubURL, "/")
		if c.GitHubURL == "" {
			c.GitHubURL = DefaultGitHubURL
		}
		return // no profile: the GitHub mapping is fixed
	}
	if c.Profile == "" {
		c.Profile = ProfileGeneric
	}
	ps := c.Profile.Preset()
	if c.Issuer == "" {
		c.Issuer = ps.Issuer
	}
	if len(c.Scopes) == 0 {
		c.Scopes = ps.Scopes
	}
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
}

// withDefaults fills m's empty fields from def.
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
	if len(m.EmailFallbacks) == 0 {
		m.EmailFallbacks = def.EmailFallbacks
	}
	if len(m.PreferredUsernameFallbacks) == 0 {
		m.PreferredUsernameFallbacks = def.PreferredUsernameFallbacks
	}
	if len(m.Groups) == 0 {
		m.Groups = def.Groups
	}
	return m
}

// withDefaults is c as an opened upstream keeps it: defaults set, a clock,
// and fresh slices and maps, so that it shares nothing with its caller.
func (c Config) withDefaults() Config {
	c.SetDefaults()
	if c.Now == nil {
		c.Now = time.Now
	}
	c.Scopes = slices.Clone(c.Scopes)
	c.NativeClientIDs = slices.Clone(c.NativeClientIDs)
	c.Tenants = slices.Clone(c.Tenants)
	c.HostedDomains = slices.Clone(c.HostedDomains)
	m := &c.Claims
	m.EmailFallbacks = slices.Clone(m.EmailFallbacks)
	m.PreferredUsernameFallbacks = slices.Clone(m.PreferredUsernameFallbacks)
	m.Groups = slices.Clone(m.Groups)
	m.Claims = maps.Clone(m.Claims)
	a := &c.Allow
	a.EmailDomains = slices.Clone(a.EmailDomains)
	a.Groups = slices.Clone(a.Groups)
	if a.Claims != nil {
		claims := make(map[string]config.StringList, len(a.Claims))
		for k, v := range a.Claims {
			claims[k] = slices.Clone(v)
		}
		a.Claims = claims
	}
	return c
}

var (
	upstreamIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)
	// idPattern is a trust rule's name.
	idPattern     = regexp.MustCompile(`^[a-z0-9-]+$`)
	tenantPattern = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)
	domainPattern = regexp.MustCompile(`^(\*\.)?([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
	// keywardClaims may not be the name of a copied claim: Keyward sets
	// them itself.
	keywardClaims = []string{
		"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "auth_time", "nonce", "acr", "amr", "azp",
		"at_hash", "c_hash", "sid", "idp", "client_id", "scope", "act", "cnf", "typ", "aud_ceiling",
		"email", "email_verified", "name", "preferred_username", "groups",
	}
)

// Validate reports every problem with c, each a *config.FieldError named by
// its YAML path below the upstream ("issuer", "claimMapping.groups[1]"),
// before or after SetDefaults alike. It does no I/O. It does not need
// RedirectURL, which cmd sets only when it opens the upstream.
func (c Config) Validate() error {
	var p config.Problems
	switch {
	case c.ID == "":
		p.Add("id", "set it to a short stable name such as corp or google; it becomes part of every subject")
	case !upstreamIDPattern.MatchString(c.ID):
		p.Add("id", "%q must match [a-z0-9][a-z0-9-_.]* (it becomes part of every subject)", c.ID)
	}
	oidc := false
	switch c.Type {
	case "", TypeOIDC:
		oidc = true
		for _, f := range []struct{ name, v string }{{"githubURL", c.GitHubURL}, {"githubAPIURL", c.GitHubAPIURL}} {
			if f.v != "" {
				p.Add(f.name, "only for type: github; remove it (an OpenID Provider is found by its issuer)")
			}
		}
		p.CheckURL("issuer", DiscoveryURL(cmp.Or(c.Issuer, c.Profile.Preset().Issuer)))
		c.validateProfile(&p)
	case TypeGitHub:
		c.validateGitHub(&p)
	default:
		p.Add("type", "%q is not an upstream type; use oidc (the default, any OpenID Provider) or github", c.Type)
	}
	if c.ClientID == "" {
		p.Add("clientID", "set it to Keyward's client ID at this identity provider")
	}
	switch {
	case c.ClientSecretFile == "" && c.ClientSecret == "":
		p.Add("clientSecretFile", "set it (or clientSecret: ${ENV_VAR}) to Keyward's client secret at this identity provider")
	case c.ClientSecretFile != "" && c.ClientSecret != "":
		p.Add("clientSecret", "set either clientSecretFile or clientSecret, not both")
	}
	if !oidc {
		return p.Err()
	}
	if len(c.Scopes) > 0 && !slices.Contains(c.Scopes, "openid") { // empty: the profile's
		p.Add("scopes", "add openid (Keyward signs in with OpenID Connect)")
	}
	p.CheckList("scopes", c.Scopes, func(s string) string {
		if strings.ContainsAny(s, " \t\r\n\"\\") {
			return "is not a scope token; write one scope per entry"
		}
		return ""
	})
	switch {
	case c.RecheckInterval < 0:
		p.Add("recheckInterval", "%s must not be negative; 0 (or omitted) turns the re-check off", c.RecheckInterval)
	case c.RecheckInterval > 0 && !slices.Contains(c.Scopes, "offline_access"):
		p.Add("scopes", "add offline_access: recheckInterval needs the upstream's refresh token")
	}
	if msg := RecheckMaxAgeProblem(time.Duration(c.RecheckInterval), time.Duration(c.RecheckMaxAge)); msg != "" {
		p.Add("recheckMaxAge", "%s", msg)
	}
	if c.MaxConcurrentCalls < -1 {
		p.Add("maxConcurrentCalls", "%d: use a positive number of calls in flight (omit it for %d), or -1 for no limit", c.MaxConcurrentCalls, DefaultMaxConcurrentCalls)
	}
	for j, id := range c.NativeClientIDs {
		switch {
		case id == "" || strings.TrimSpace(id) != id:
			p.Add(fmt.Sprintf("nativeClientIDs[%d]", j), "%q must be a client ID without surrounding space", id)
		case slices.Index(c.NativeClientIDs, id) < j:
			p.Add(fmt.Sprintf("nativeClientIDs[%d]", j), "%q is listed twice", id)
		}
	}
	if c.NativePublicClients && len(c.NativeClientIDs) == 0 {
		p.Add("nativePublicClients", "needs nativeClientIDs (the native apps' client IDs at this upstream); without them native sign-in is off")
	}
	return p.Err()
}

// validateOpen is Validate plus what opening needs beyond the YAML: the
// redirect URL and a resolved client secret.
func (c Config) validateOpen() error {
	errs := []error{c.Validate()}
	switch msg := field.CheckURL(c.RedirectURL, field.URLRule{Example: "https://sso.example.com/callback"}); {
	case c.RedirectURL == "":
		errs = append(errs, &config.FieldError{Path: "redirectURL", Msg: "must not be empty"})
	case msg != "":
		errs = append(errs, &config.FieldError{Path: "redirectURL", Msg: msg})
	}
	return errors.Join(errs...)
}

// validateProfile checks an OpenID Provider's profile, provider quirks,
// claim mapping and allow rules.
func (c Config) validateProfile(p *config.Problems) {
	if !c.Profile.Known() {
		names := make([]string, 0, 8)
		for _, n := range Profiles() {
			names = append(names, string(n))
		}
		p.Add("profile", "%q is not a profile; use %s (or omit it for generic)", c.Profile, strings.Join(names, ", "))
	}
	azure := c.Profile == ProfileAzureAD
	if n := strings.Count(c.Issuer, TenantPlaceholder); n > 0 {
		switch {
		case !azure:
			p.Add("issuer", "%s is only understood with profile: azuread; use the provider's exact issuer", TenantPlaceholder)
		case n > 1:
			p.Add("issuer", "must hold %s once, e.g. https://login.microsoftonline.com/{tenantid}/v2.0", TenantPlaceholder)
		case len(c.Tenants) == 0:
			p.Add("tenants", "required with a templated issuer, or any Azure AD tenant could sign in; list the directory (tenant) ids to accept")
		}
		if len(c.NativeClientIDs) > 0 {
			p.Add("nativeClientIDs", "native sign-in needs a single-tenant issuer; use the tenant's own issuer (https://login.microsoftonline.com/<tenant id>/v2.0) in a separate upstream")
		}
	}
	if len(c.Tenants) > 0 && !azure {
		p.Add("tenants", "only for profile: azuread; remove it (use allow.claims for other providers)")
	}
	p.CheckList("tenants", c.Tenants, func(s string) string {
		if !tenantPattern.MatchString(s) {
			return "must be a directory (tenant) id such as 11111111-2222-3333-4444-555555555555"
		}
		return ""
	})
	if len(c.HostedDomains) > 0 && c.Profile != ProfileGoogle {
		p.Add("hostedDomains", "only for profile: google; use allow.emailDomains for other providers")
	}
	p.CheckList("hostedDomains", c.HostedDomains, func(s string) string {
		if strings.HasPrefix(s, "*.") || !domainPattern.MatchString(s) {
			return "must be a lower-case Google Workspace domain such as example.com"
		}
		return ""
	})
	preset := c.Profile.Preset()
	switch {
	case c.GroupsOverage != "" && c.GroupsOverage != preset.GroupsOverage && !azure:
		p.Add("groupsOverage", "only for profile: azuread; remove it")
	case c.GroupsOverage != "" && c.GroupsOverage != OverageGraph && c.GroupsOverage != OverageRefuse:
		p.Add("groupsOverage", "%q is not graph or refuse", c.GroupsOverage)
	}
	if c.GraphURL != "" && c.GraphURL != preset.GraphURL {
		if !azure {
			p.Add("graphURL", "only for profile: azuread; remove it")
		}
		p.CheckURL("graphURL", c.GraphURL)
	}
	if c.LogoutURL != "" {
		if err := checkLogoutURL(c.LogoutURL); err != "" {
			p.Add("logoutURL", "%s", err)
		}
	}
	if !slices.Contains([]UserinfoMode{"", UserinfoAuto, UserinfoAlways, UserinfoNever}, c.Userinfo) {
		p.Add("userinfo", "%q is not auto, always or never", c.Userinfo)
	}
	c.Claims.validate(p, "claimMapping")
	c.Allow.validate(p, "allow")
	// Entra ID sends no email_verified: without trustEmail (or a
	// verification claim of the tenant's own) no email counts as verified,
	// and these rules would refuse everyone.
	if azure && !c.TrustEmail && cmp.Or(c.Claims.EmailVerified, "email_verified") == "email_verified" {
		const why = "Entra ID sends no email_verified, so no email counts as verified and every sign-in would be refused; set trustEmail: true if your tenant's administrators set the addresses (docs/providers/azuread.md), or "
		if len(c.Allow.EmailDomains) > 0 {
			p.Add("allow.emailDomains", why+"restrict by tenants or allow.groups instead")
		}
		if c.Allow.RequireEmailVerified {
			p.Add("allow.requireEmailVerified", why+"remove it")
		}
	}
}

// checkLogoutURL is the rule for a URL Keyward sends the browser to:
// field.CheckURL's rule with a query allowed. It returns the problem, or "".
func checkLogoutURL(raw string) string {
	return field.CheckURL(raw, field.URLRule{Query: true, Example: "https://idp.example.com/logout"})
}

// validateGitHub checks a type: github upstream; the client is checked
// with every upstream's.
func (c Config) validateGitHub(p *config.Problems) {
	notForGitHub := func(field string, set bool, why string) {
		if set {
			p.Add(field, "not available with type: github (%s); remove it", why)
		}
	}
	const noOIDC = "GitHub is OAuth 2.0 without OpenID Connect"
	notForGitHub("profile", c.Profile != "", noOIDC+": profiles preset OpenID Providers")
	notForGitHub("issuer", c.Issuer != "", "GitHub has no issuer; use githubURL, e.g. https://github.example.com for GitHub Enterprise Server")
	notForGitHub("tenants", len(c.Tenants) > 0, "only for profile: azuread")
	notForGitHub("hostedDomains", len(c.HostedDomains) > 0, "only for profile: google; use allow.emailDomains")
	notForGitHub("groupsOverage", c.GroupsOverage != "", "only for profile: azuread")
	notForGitHub("graphURL", c.GraphURL != "", "only for profile: azuread")
	notForGitHub("logoutURL", c.LogoutURL != "", "GitHub has no logout endpoint for applications")
	notForGitHub("upstreamLogout", c.UpstreamLogout, "GitHub has no logout endpoint for applications")
	notForGitHub("userinfo", c.Userinfo != "", "Keyward always reads the GitHub user from the REST API")
	notForGitHub("nativeClientIDs", len(c.NativeClientIDs) > 0, "GitHub issues no ID tokens, so native sign-in cannot work")
	notForGitHub("nativePublicClients", c.NativePublicClients, "GitHub issues no ID tokens, so native sign-in cannot work")
	notForGitHub("trustEmail", c.TrustEmail, "the GitHub email is always the primary verified address, or none")
	notForGitHub("recheckInterval", c.RecheckInterval != 0, "the re-check refreshes the upstream grant, and GitHub OAuth App tokens have no refresh token")
	notForGitHub("recheckMaxAge", c.RecheckMaxAge != 0, "it bounds the re-check, which GitHub upstreams do not have")
	m := c.Claims
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
	p.CheckURL("githubURL", c.GitHubURL)
	if c.GitHubAPIURL != "" {
		p.CheckURL("githubAPIURL", c.GitHubAPIURL)
	}
	p.CheckList("scopes", c.Scopes, func(s string) string {
		if strings.ContainsAny(s, " ,\t\r\n\"\\") {
			return "is not a GitHub scope; write one scope per entry, e.g. read:org"
		}
		return ""
	})
	m.validate(p, "claimMapping")
	c.Allow.validate(p, "allow")
}

// validate checks the paths and copied claim names of a mapping, at path.
func (m ClaimMapping) validate(p *config.Problems, path string) {
	for _, f := range []struct{ name, v string }{
		{"subject", m.Subject}, {"email", m.Email}, {"emailVerified", m.EmailVerified},
		{"name", m.Name}, {"preferredUsername", m.PreferredUsername}, {"groupsPrefix", m.GroupsPrefix},
	} {
		if strings.TrimSpace(f.v) != f.v || (f.name == "groupsPrefix" && strings.ContainsFunc(f.v, unicode.IsSpace)) {
			p.Add(path+"."+f.name, "%q must not contain spaces", f.v)
		}
	}
	p.CheckList(path+".emailFallbacks", m.EmailFallbacks, nil)
	p.CheckList(path+".preferredUsernameFallbacks", m.PreferredUsernameFallbacks, nil)
	p.CheckList(path+".groups", m.Groups, nil)
	for _, name := range slices.Sorted(maps.Keys(m.Claims)) {
		cpath := fmt.Sprintf("%s.claims[%q]", path, name)
		switch {
		case name == "" || strings.ContainsFunc(name, unicode.IsSpace):
			p.Add(cpath, "is not a claim name; use a name without spaces, e.g. department")
		case slices.Contains(keywardClaims, name):
			p.Add(cpath, "Keyward sets %s itself; copy the claim under another name", name)
		}
		if v := m.Claims[name]; v == "" || strings.TrimSpace(v) != v {
			p.Add(cpath, "set it to the upstream claim's path, e.g. https://example.com/department")
		}
	}
}

// validate checks the allow rules, at path.
func (a AllowRules) validate(p *config.Problems, path string) {
	p.CheckList(path+".emailDomains", a.EmailDomains, func(s string) string {
		if checkDomain(strings.ToLower(s)) != nil {
			return "must be a domain such as example.com, or *.example.com for its subdomains"
		}
		return ""
	})
	p.CheckList(path+".groups", a.Groups, nil)
	for _, claim := range slices.Sorted(maps.Keys(a.Claims)) {
		cpath := fmt.Sprintf("%s.claims[%q]", path, claim)
		if claim == "" || strings.TrimSpace(claim) != claim {
			p.Add(cpath, "is not a claim path; use e.g. hd or realm_access.roles")
		}
		if len(a.Claims[claim]) == 0 {
			p.Add(cpath, "list at least one accepted value")
		}
	}
}

// checkDomain accepts a lower-case DNS name, optionally "*."-prefixed.
func checkDomain(s string) error {
	if !domainPattern.MatchString(s) {
		return errors.New("must be a lower-case domain such as example.com (or *.example.com for its subdomains)")
	}
	return nil
}
