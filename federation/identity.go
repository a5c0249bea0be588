package federation

import (
	"slices"
	"strings"
	"time"
)

// Identity is what an upstream asserts about the person who signed in.
type Identity struct {
	// Subject is the upstream subject: the claim ClaimMapping.Subject names
	// (default sub); unique per upstream only.
	Subject string
	// Email is the mapped email as the upstream sent it, verified or not
	// (for the subject record and the admin API). Keyward's tokens carry
	// it only when EmailVerified is true.
	Email string
	// EmailVerified is true only when the email counts as verified: the
	// upstream says so for the mapped email claim, or Config.TrustEmail
	// treats the upstream's emails as verified. A missing claim (unknown)
	// is false here too.
	EmailVerified     bool
	Name              string
	PreferredUsername string
	Groups            []string
	// Extra holds the claims copied by ClaimMapping.Claims, under their new
	// names; nil when none was found.
	Extra    map[string]string
	AuthTime time.Time // zero when the upstream sent no auth_time
	// Claims are the raw, verified ID token claims (numbers as float64);
	// userinfo claims are not merged in.
	Claims map[string]any
	// RefreshToken is the upstream's refresh token from a code exchange
	// (empty when the upstream sent none, and for native sign-in). It is a
	// credential: never log it, and store it only sealed.
	RefreshToken string
}

// strs accepts a string or a list; non-string elements are skipped.
func strs(v any) []string {
	switch v := v.(type) {
	case []string:
		return slices.DeleteFunc(slices.Clone(v), func(s string) bool { return s == "" })
	case string:
		if v == "" {
			return nil
		}
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			if s, ok := e.(string); ok && s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// truthy reads email_verified, which some providers send as a string.
func truthy(v any) bool {
	switch v := v.(type) {
	case bool:
		return v
	case string:
		return strings.EqualFold(v, "true")
	}
	return false
}
