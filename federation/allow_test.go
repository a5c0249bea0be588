package federation

import (
	"github.com/keyward/keyward/cmd/config"

	"errors"
	"strings"
	"testing"
)

func TestAllow(t *testing.T) {
	alice := func(email string, verified, known bool, groups ...string) mapped {
		return mapped{Identity: Identity{Subject: "s1", Email: email, EmailVerified: verified, Groups: groups}, verifiedKnown: known}
	}
	tests := []struct {
		name     string
		rules    AllowRules
		who      mapped
		claims   map[string]any
		wantRule string // "" = allowed
		wantMsg  string // a part of the person-facing message
	}{
		{name: "no rules", who: alice("", false, false)},
		{name: "domain exact", rules: AllowRules{EmailDomains: []string{"example.com"}}, who: alice("a@example.com", true, true)},
		{name: "domain case-insensitive", rules: AllowRules{EmailDomains: []string{"Example.COM"}}, who: alice("a@EXAMPLE.com", true, true)},
		{
			name: "other domain", rules: AllowRules{EmailDomains: []string{"example.com"}}, who: alice("a@other.com", true, true),
			wantRule: "allow.email_domains", wantMsg: "Your account (a@other.com) is not in an allowed email domain for Example Corp.",
		},
		{
			name: "subdomain needs a wildcard", rules: AllowRules{EmailDomains: []string{"example.com"}}, who: alice("a@eu.example.com", true, true),
			wantRule: "allow.email_domains",
		},
		{name: "wildcard subdomain", rules: AllowRules{EmailDomains: []string{"*.example.com"}}, who: alice("a@eu.example.com", true, true)},
		{
			name: "wildcard is not the apex", rules: AllowRules{EmailDomains: []string{"*.example.com"}}, who: alice("a@example.com", true, true),
			wantRule: "allow.email_domains",
		},
		{
			name: "suffix trick", rules: AllowRules{EmailDomains: []string{"*.example.com"}}, who: alice("a@evilexample.com", true, true),
			wantRule: "allow.email_domains",
		},
		{
			name: "no email", rules: AllowRules{EmailDomains: []string{"example.com"}}, who: alice("", false, false),
			wantRule: "allow.email_domains", wantMsg: "has no email address",
		},
		{
			// An email the upstream does not mark verified is no proof of
			// the domain: anyone may type alice@example.com at some IdPs.
			name: "domain of an unverified email", rules: AllowRules{EmailDomains: []string{"example.com"}}, who: alice("a@example.com", false, true),
			wantRule: "allow.email_domains", wantMsg: "Your email address (a@example.com) is not verified at Example Corp.",
		},
		{
			name: "domain of an email of unknown verification", rules: AllowRules{EmailDomains: []string{"example.com"}}, who: alice("a@example.com", false, false),
			wantRule: "allow.email_domains", wantMsg: "Example Corp did not say whether your email address (a@example.com) is verified",
		},
		{
			name: "unverified email of another domain", rules: AllowRules{EmailDomains: []string{"example.com"}}, who: alice("a@other.com", false, true),
			wantRule: "allow.email_domains", wantMsg: "is not in an allowed email domain",
		},
		{name: "verified", rules: AllowRules{RequireEmailVerified: true}, who: alice("a@example.com", true, true)},
		{
			name: "verification missing", rules: AllowRules{RequireEmailVerified: true}, who: alice("a@example.com", false, false),
			wantRule: "allow.require_email_verified", wantMsg: "did not say whether your email address (a@example.com) is verified",
		},
		{
			name: "verification false", rules: AllowRules{RequireEmailVerified: true}, who: alice("a@example.com", false, true),
			wantRule: "allow.require_email_verified", wantMsg: "is not verified at Example Corp",
		},
		{name: "in a group", rules: AllowRules{Groups: []string{"staff", "admins"}}, who: alice("a@example.com", true, true, "guests", "admins")},
		{
			name: "in no group", rules: AllowRules{Groups: []string{"staff"}}, who: alice("a@example.com", true, true, "guests"),
			wantRule: "allow.groups", wantMsg: "is not in a group that may sign in through Example Corp",
		},
		{
			name: "groups are case-sensitive", rules: AllowRules{Groups: []string{"staff"}}, who: alice("a@example.com", true, true, "Staff"),
			wantRule: "allow.groups",
		},
		{
			name: "claim string", rules: AllowRules{Claims: map[string]config.StringList{"hd": {"example.com"}}},
			who: alice("a@example.com", true, true), claims: map[string]any{"hd": "example.com"},
		},
		{
			name: "claim one of several", rules: AllowRules{Claims: map[string]config.StringList{"acr": {"gold", "silver"}}},
			who: alice("a@example.com", true, true), claims: map[string]any{"acr": "silver"},
		},
		{
			name: "claim list holds one", rules: AllowRules{Claims: map[string]config.StringList{"amr": {"mfa"}}},
			who: alice("a@example.com", true, true), claims: map[string]any{"amr": []any{"pwd", "mfa"}},
		},
		{
			name: "nested claim bool", rules: AllowRules{Claims: map[string]config.StringList{"ext.mfa": {"true"}}},
			who: alice("a@example.com", true, true), claims: map[string]any{"ext": map[string]any{"mfa": true}},
		},
		{
			name: "claim wrong value", rules: AllowRules{Claims: map[string]config.StringList{"hd": {"example.com"}}},
			who: alice("a@example.com", true, true), claims: map[string]any{"hd": "other.com"},
			wantRule: "allow.claims", wantMsg: "does not meet the sign-in requirements of Example Corp",
		},
		{
			name: "claim missing", rules: AllowRules{Claims: map[string]config.StringList{"hd": {"example.com"}}},
			who: alice("a@example.com", true, true), claims: map[string]any{},
			wantRule: "allow.claims",
		},
		{
			name: "every rule must hold", rules: AllowRules{EmailDomains: []string{"example.com"}, Groups: []string{"staff"}},
			who: alice("a@example.com", true, true, "guests"), wantRule: "allow.groups",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{ID: "corp", Name: "Example Corp", Allow: tc.rules}
			err := c.allow(tc.who, tc.claims)
			if tc.wantRule == "" {
				if err != nil {
					t.Fatalf("allow() = %v, want nil", err)
				}
				return
			}
			var na *NotAllowedError
			if !errors.As(err, &na) {
				t.Fatalf("allow() = %v, want a *NotAllowedError", err)
			}
			if na.Rule != tc.wantRule || na.Upstream != "corp" || na.Subject != "s1" {
				t.Errorf("allow() = %+v, want rule %s, upstream corp, subject s1", na, tc.wantRule)
			}
			if !strings.Contains(na.Message, tc.wantMsg) {
				t.Errorf("allow() message = %q, want it to contain %q", na.Message, tc.wantMsg)
			}
		})
	}
}

func TestCheckTenantAndHostedDomain(t *testing.T) {
	const tmpl = "https://login.microsoftonline.com/{tenantid}/v2.0"
	azure := Config{ID: "corp", Name: "Corp", Profile: ProfileAzureAD, Issuer: tmpl, Tenants: []string{"t1", "t2"}}
	tests := []struct {
		name        string
		c           Config
		claims      map[string]any
		wantInvalid bool
		wantRule    string
	}{
		{name: "listed tenant", c: azure, claims: map[string]any{"tid": "t2", "iss": "https://login.microsoftonline.com/t2/v2.0"}},
		{name: "other tenant", c: azure, claims: map[string]any{"tid": "t3", "iss": "https://login.microsoftonline.com/t3/v2.0"}, wantRule: "tenants"},
		{name: "iss of another tenant", c: azure, claims: map[string]any{"tid": "t1", "iss": "https://login.microsoftonline.com/t3/v2.0"}, wantInvalid: true},
		{name: "no tid", c: azure, claims: map[string]any{"iss": "https://login.microsoftonline.com/t1/v2.0"}, wantInvalid: true},
		{name: "tid with a slash", c: azure, claims: map[string]any{"tid": "t1/x", "iss": "https://login.microsoftonline.com/t1/x/v2.0"}, wantInvalid: true},
		{
			name:   "single tenant issuer with allowlist",
			c:      Config{ID: "corp", Profile: ProfileAzureAD, Issuer: "https://login.microsoftonline.com/t1/v2.0", Tenants: []string{"t1"}},
			claims: map[string]any{"tid": "t9"}, wantRule: "tenants",
		},
		{name: "not azure", c: Config{ID: "corp", Tenants: nil}, claims: map[string]any{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.checkTenant(tc.claims)
			var na *NotAllowedError
			switch {
			case tc.wantInvalid:
				if !errors.Is(err, ErrInvalidIDToken) {
					t.Errorf("checkTenant() = %v, want ErrInvalidIDToken", err)
				}
			case tc.wantRule != "":
				if !errors.As(err, &na) || na.Rule != tc.wantRule {
					t.Errorf("checkTenant() = %v, want a refusal by %s", err, tc.wantRule)
				}
			case err != nil:
				t.Errorf("checkTenant() = %v, want nil", err)
			}
		})
	}

	google := Config{ID: "g", Name: "Google", Profile: ProfileGoogle, HostedDomains: []string{"example.com", "example.org"}}
	for _, tc := range []struct {
		hd    any
		allow bool
	}{{"example.com", true}, {"example.org", true}, {"EXAMPLE.com", true}, {"other.com", false}, {nil, false}} {
		claims := map[string]any{}
		if tc.hd != nil {
			claims["hd"] = tc.hd
		}
		err := google.checkHostedDomain(Identity{Subject: "s", Email: "a@gmail.com"}, claims)
		var na *NotAllowedError
		if tc.allow != (err == nil) || (err != nil && (!errors.As(err, &na) || na.Rule != "hosted_domains")) {
			t.Errorf("checkHostedDomain(hd %v) = %v, want allowed %v", tc.hd, err, tc.allow)
		}
	}
	if got := google.hostedDomainParam(); got != "*" {
		t.Errorf("hostedDomainParam() with two domains = %q, want *", got)
	}
	google.HostedDomains = google.HostedDomains[:1]
	if got := google.hostedDomainParam(); got != "example.com" {
		t.Errorf("hostedDomainParam() with one domain = %q, want example.com", got)
	}
}

// allow.email_domains takes the part after the first "@" as the domain. An
// address whose domain part is not a DNS name ("x@evil.com@a.example.com",
// "x@evil.com#.example.com") must not pass a wildcard by its suffix, and a
// non-ASCII letter that strings.ToLower folds into ASCII (U+212A KELVIN
// SIGN into "k") must not pass an exact pattern.
func TestAllowEmailDomainsRefusesMalformedAddresses(t *testing.T) {
	tests := []struct {
		email   string
		domains []string
		allow   bool
	}{
		{"a@x.example.com", []string{"*.example.com"}, true},
		{"A@X.Example.COM", []string{"*.example.com"}, true},
		{"a@EXAMPLE.com", []string{"example.com"}, true},
		{"a@evil.com@x.example.com", []string{"*.example.com"}, false},
		{"a@evil.com#.example.com", []string{"*.example.com"}, false},
		{"a@evil.com/.example.com", []string{"*.example.com"}, false},
		{"a@evil.com .example.com", []string{"*.example.com"}, false},
		{"a@*.example.com", []string{"*.example.com"}, false},
		{"a@\u212Aeyward.com", []string{"keyward.com"}, false},
		{"@x.example.com", []string{"*.example.com"}, false},
	}
	for _, tc := range tests {
		c := Config{ID: "corp", Name: "Example Corp", Allow: AllowRules{EmailDomains: tc.domains}}
		err := c.allow(mapped{Identity: Identity{Subject: "s1", Email: tc.email, EmailVerified: true}, verifiedKnown: true}, nil)
		if tc.allow {
			if err != nil {
				t.Errorf("allow(%q, %q) = %v, want nil", tc.email, tc.domains, err)
			}
			continue
		}
		var na *NotAllowedError
		if !errors.As(err, &na) || na.Rule != "allow.email_domains" {
			t.Errorf("allow(%q, %q) = %v, want a refusal by allow.email_domains", tc.email, tc.domains, err)
		}
	}
}
