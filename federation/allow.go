package federation

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// NotAllowedError refuses an identity the upstream vouched for but the
// upstream's configuration does not let in: an allow rule, the Azure AD
// tenant allowlist, the Google hosted domains, or a group overage with
// GroupsOverage refuse. Find it with errors.As.
type NotAllowedError struct {
	// Upstream is the upstream id.
	Upstream string
	// Subject is the upstream subject ("" when the refusal came before the
	// mapping, as for a foreign tenant).
	Subject string
	// Rule is the configuration field that refused, e.g.
	// "allow.email_domains", "tenants", "hosted_domains".
	Rule string
	// Reason says why, for logs and the audit trail; it may name the
	// person's email or groups, never a token.
	Reason string
	// Message is fixed, person-facing text for the error page (escape it
	// as any text). It may hold the person's own email address.
	Message string
}

func (e *NotAllowedError) Error() string {
	return fmt.Sprintf("federation: upstream %q: not allowed by %s: %s", e.Upstream, e.Rule, e.Reason)
}

// refusal builds a NotAllowedError for upstream c.
func (c Config) refusal(sub, rule, reason, message string) *NotAllowedError {
	return &NotAllowedError{Upstream: c.ID, Subject: sub, Rule: rule, Reason: clean(reason, 300), Message: message}
}

// account names the person in a message: their email, else their username.
func account(id Identity) string {
	switch {
	case id.Email != "":
		return "Your account (" + clean(id.Email, 100) + ")"
	case id.PreferredUsername != "":
		return "Your account (" + clean(id.PreferredUsername, 100) + ")"
	}
	return "Your account"
}

// allow checks m against c.Allow; claims are the merged claims the
// identity was mapped from. The first failing rule refuses.
func (c Config) allow(m mapped, claims map[string]any) error {
	a := c.Allow
	id := m.Identity
	who := account(id)
	if len(a.EmailDomains) > 0 {
		local, domain, ok := strings.Cut(id.Email, "@")
		if !ok || domain == "" {
			return c.refusal(id.Subject, "allow.email_domains", "no email address",
				who+" has no email address at "+c.Name+", which this sign-in requires.")
		}
		// Only a DNS name is matched: no second "@", no non-ASCII letter
		// that strings.ToLower would fold into ASCII (U+212A into "k").
		domain = lowerASCII(domain)
		if local == "" || strings.HasPrefix(domain, "*.") || checkDomain(domain) != nil {
			return c.refusal(id.Subject, "allow.email_domains", "email domain "+domain+" is not a domain name",
				who+" is not in an allowed email domain for "+c.Name+".")
		}
		if !domainAllowed(domain, a.EmailDomains) {
			return c.refusal(id.Subject, "allow.email_domains", "email domain "+domain+" is not listed",
				who+" is not in an allowed email domain for "+c.Name+".")
		}
		// Anyone can type an address in a listed domain at some IdPs: only
		// a verified (or trusted) one vouches for it.
		if !id.EmailVerified {
			return c.unverified(m, "allow.email_domains")
		}
	}
	if a.RequireEmailVerified {
		if id.Email == "" {
			return c.refusal(id.Subject, "allow.require_email_verified", "no email address",
				who+" has no email address at "+c.Name+", which this sign-in requires.")
		}
		if !id.EmailVerified {
			return c.unverified(m, "allow.require_email_verified")
		}
	}
	if len(a.Groups) > 0 && !slices.ContainsFunc(id.Groups, func(g string) bool { return slices.Contains(a.Groups, g) }) {
		return c.refusal(id.Subject, "allow.groups", fmt.Sprintf("groups %q include none of %q", id.Groups, a.Groups),
			who+" is not in a group that may sign in through "+c.Name+".")
	}
	for _, path := range slices.Sorted(maps.Keys(a.Claims)) {
		v, _ := lookup(claims, path)
		if !claimAccepted(v, a.Claims[path]) {
			return c.refusal(id.Subject, "allow.claims", fmt.Sprintf("claim %s is not one of the accepted values", path),
				who+" does not meet the sign-in requirements of "+c.Name+".")
		}
	}
	return nil
}

// unverified refuses, by rule, m's email that is not verified.
func (c Config) unverified(m mapped, rule string) *NotAllowedError {
	email := clean(m.Email, 100)
	if !m.verifiedKnown {
		return c.refusal(m.Subject, rule, "email_verified is missing",
			c.Name+" did not say whether your email address ("+email+") is verified, which this sign-in requires.")
	}
	return c.refusal(m.Subject, rule, "email_verified is false",
		"Your email address ("+email+") is not verified at "+c.Name+". Verify it there, then sign in again.")
}

// domainAllowed matches domain (lower case) against patterns: exact, or
// "*.example.com" for any subdomain of example.com.
func domainAllowed(domain string, patterns []string) bool {
	for _, p := range patterns {
		p = strings.ToLower(p)
		if rest, ok := strings.CutPrefix(p, "*."); ok {
			if strings.HasSuffix(domain, "."+rest) {
				return true
			}
		} else if domain == p {
			return true
		}
	}
	return false
}

// lowerASCII lower-cases the ASCII letters of s only.
func lowerASCII(s string) string {
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, s)
}

// claimAccepted reports whether v (a scalar, or a list of scalars) holds
// one of accepted.
func claimAccepted(v any, accepted []string) bool {
	values := []any{v}
	if list, ok := v.([]any); ok {
		values = list
	}
	for _, e := range values {
		if s, ok := scalar(e); ok && slices.Contains(accepted, s) {
			return true
		}
	}
	return false
}
