package federation

import (
	"errors"
	"testing"
)

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
