package main

import (
	"cmp"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/federation"
)

var (
	tenantRE = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)
	domainRE = regexp.MustCompile(`^(\*\.)?([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
	// keywardClaims are the claim names Keyward sets itself; a copied
	// claim (claimMapping.claims) may not take one.
	keywardClaims = []string{
		"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "auth_time", "nonce", "acr", "amr", "azp",
		"at_hash", "c_hash", "sid", "idp", "client_id", "scope", "act", "cnf", "typ",
		"email", "email_verified", "name", "preferred_username", "groups",
	}
)

// validateProfile checks an upstream's profile, provider quirks, claim
// mapping and allow rules (path is upstreams[i]).
func validateProfile(p *problems, path string, u UpstreamConfig) {
	prof := federation.Profile(u.Profile)
	if !prof.Known() {
		names := make([]string, 0, 8)
		for _, n := range federation.Profiles() {
			names = append(names, string(n))
		}
		p.Add(path+".profile", "%q is not a profile; use %s (or omit it for generic)", u.Profile, strings.Join(names, ", "))
	}
	azure := prof == federation.ProfileAzureAD
	if n := strings.Count(u.Issuer, federation.TenantPlaceholder); n > 0 {
		switch {
		case !azure:
			p.Add(path+".issuer", "%s is only understood with profile: azuread; use the provider's exact issuer", federation.TenantPlaceholder)
		case n > 1:
			p.Add(path+".issuer", "must hold %s once, e.g. https://login.microsoftonline.com/{tenantid}/v2.0", federation.TenantPlaceholder)
		case len(u.Tenants) == 0:
			p.Add(path+".tenants", "required with a templated issuer, or any Azure AD tenant could sign in; list the directory (tenant) ids to accept")
		}
		if len(u.NativeClientIDs) > 0 {
			p.Add(path+".nativeClientIDs", "native sign-in needs a single-tenant issuer; use the tenant's own issuer (https://login.microsoftonline.com/<tenant id>/v2.0) in a separate upstream")
		}
	}
	if len(u.Tenants) > 0 && !azure {
		p.Add(path+".tenants", "only for profile: azuread; remove it (use allow.claims for other providers)")
	}
	checkStrings(p, path+".tenants", u.Tenants, func(s string) string {
		if !tenantRE.MatchString(s) {
			return "must be a directory (tenant) id such as 11111111-2222-3333-4444-555555555555"
		}
		return ""
	})
	if len(u.HostedDomains) > 0 && prof != federation.ProfileGoogle {
		p.Add(path+".hostedDomains", "only for profile: google; use allow.emailDomains for other providers")
	}
	checkStrings(p, path+".hostedDomains", u.HostedDomains, func(s string) string {
		if strings.HasPrefix(s, "*.") || !domainRE.MatchString(s) {
			return "must be a lower-case Google Workspace domain such as example.com"
		}
		return ""
	})
	switch {
	case u.GroupsOverage != "" && !azure:
		p.Add(path+".groupsOverage", "only for profile: azuread; remove it")
	case u.GroupsOverage != "" && u.GroupsOverage != string(federation.OverageGraph) && u.GroupsOverage != string(federation.OverageRefuse):
		p.Add(path+".groupsOverage", "%q is not graph or refuse", u.GroupsOverage)
	}
	if u.GraphURL != "" {
		if !azure {
			p.Add(path+".graphURL", "only for profile: azuread; remove it")
		}
		checkIssuer(p, path+".graphURL", u.GraphURL)
	}
	if u.LogoutURL != "" {
		if err := broker.CheckBackchannelLogoutURI(u.LogoutURL); err != nil { // the same rule: a URL Keyward sends to, query allowed
			p.Add(path+".logoutURL", "%s", err)
		}
	}
	if !slices.Contains([]string{"", "auto", "always", "never"}, u.Userinfo) {
		p.Add(path+".userinfo", "%q is not auto, always or never", u.Userinfo)
	}
	validateClaimMapping(p, path+".claimMapping", u.ClaimMapping)
	validateAllow(p, path+".allow", u.Allow)
	// Entra ID sends no email_verified: without trustEmail (or a
	// verification claim of the tenant's own) no email counts as verified,
	// and these rules would refuse everyone.
	if azure && !u.TrustEmail && cmp.Or(u.ClaimMapping.EmailVerified, "email_verified") == "email_verified" {
		const why = "Entra ID sends no email_verified, so no email counts as verified and every sign-in would be refused; set trustEmail: true if your tenant's administrators set the addresses (docs/providers/azuread.md), or "
		if len(u.Allow.EmailDomains) > 0 {
			p.Add(path+".allow.emailDomains", why+"restrict by tenants or allow.groups instead")
		}
		if u.Allow.RequireEmailVerified {
			p.Add(path+".allow.requireEmailVerified", why+"remove it")
		}
	}
}

func validateClaimMapping(p *problems, path string, m ClaimMapping) {
	for _, f := range []struct{ name, v string }{
		{"subject", m.Subject}, {"email", m.Email}, {"emailVerified", m.EmailVerified},
		{"name", m.Name}, {"preferredUsername", m.PreferredUsername}, {"groupsPrefix", m.GroupsPrefix},
	} {
		if strings.TrimSpace(f.v) != f.v || (f.name == "groupsPrefix" && strings.ContainsAny(f.v, " \t")) {
			p.Add(path+"."+f.name, "%q must not contain spaces", f.v)
		}
	}
	checkStrings(p, path+".emailFallbacks", m.EmailFallbacks, nil)
	checkStrings(p, path+".preferredUsernameFallbacks", m.PreferredUsernameFallbacks, nil)
	checkStrings(p, path+".groups", m.Groups, nil)
	for _, name := range slices.Sorted(maps.Keys(m.Claims)) {
		cpath := fmt.Sprintf("%s.claims[%q]", path, name)
		switch {
		case name == "" || strings.ContainsAny(name, " \t\r\n"):
			p.Add(cpath, "is not a claim name; use a name without spaces, e.g. department")
		case slices.Contains(keywardClaims, name):
			p.Add(cpath, "Keyward sets %s itself; copy the claim under another name", name)
		}
		if v := m.Claims[name]; v == "" || strings.TrimSpace(v) != v {
			p.Add(cpath, "set it to the upstream claim's path, e.g. https://example.com/department")
		}
	}
}

func validateAllow(p *problems, path string, a AllowConfig) {
	checkStrings(p, path+".emailDomains", a.EmailDomains, func(s string) string {
		if !domainRE.MatchString(strings.ToLower(s)) {
			return "must be a domain such as example.com, or *.example.com for its subdomains"
		}
		return ""
	})
	checkStrings(p, path+".groups", a.Groups, nil)
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

// checkStrings reports empty, padded, repeated and (by check, which
// returns the fix or "") invalid entries of list, at path[i].
func checkStrings(p *problems, path string, list []string, check func(string) string) {
	for i, s := range list {
		ipath := fmt.Sprintf("%s[%d]", path, i)
		switch first := slices.Index(list, s); {
		case s == "" || strings.TrimSpace(s) != s:
			p.Add(ipath, "%q must be non-empty without surrounding spaces", s)
		case first < i:
			p.Add(ipath, "%q is listed twice (also %s[%d])", s, path, first)
		case check != nil:
			if fix := check(s); fix != "" {
				p.Add(ipath, "%q %s", s, fix)
			}
		}
	}
}

// claims converts the required claims for federation.AllowRules.
func (a AllowConfig) claims() map[string][]string {
	if a.Claims == nil {
		return nil
	}
	out := make(map[string][]string, len(a.Claims))
	for k, v := range a.Claims {
		out[k] = slices.Clone(v)
	}
	return out
}
