package field

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/keyward/keyward/web/loopback"
)

// Error is one configuration problem: the YAML field path
// ("upstreams[0].issuer", "revocationFeed.url") and what to do about it.
type Error struct{ Path, Msg string }

func (e *Error) Error() string { return e.Path + ": " + e.Msg }

// URLRule says what a configured URL may hold beyond CheckURL's base rule,
// and how the message for a URL that is not one reads.
type URLRule struct {
	// Query allows a query (a JWKS URL, a logout URL); otherwise a query
	// is a problem, as it is for an issuer (OIDC Discovery §4.3).
	Query bool
	// Example completes the message for a value that is not an absolute
	// http(s) URL, e.g. "https://sso.example.com".
	Example string
	// Why ends the message for http on a host that is not loopback,
	// e.g. "the verifier sends its client secret there". Optional.
	Why string
}

// CheckURL returns what is wrong with raw as a configured URL, starting with
// the quoted value, or "" when nothing is. The rule: an absolute URL with a
// host; https, or http on a loopback host (web/loopback); no user info and
// no fragment; no query unless r.Query. An empty raw is not an absolute
// URL: callers that want their own words for a missing value check it
// first.
func CheckURL(raw string, r URLRule) string {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		msg := fmt.Sprintf("%q must be an absolute https URL with a host", raw)
		if r.Example != "" {
			msg += ", e.g. " + r.Example
		}
		return msg
	case u.Scheme == "http" && !loopback.Host(u.Hostname()):
		msg := fmt.Sprintf("%q %s", raw, loopback.HTTPSHint)
		if r.Why != "" {
			msg += ": " + r.Why
		}
		return msg
	case !r.Query && (u.RawQuery != "" || u.ForceQuery):
		return fmt.Sprintf("%q must not have a query, fragment or user info", raw)
	case u.Fragment != "" || strings.Contains(raw, "#") || u.User != nil:
		if r.Query {
			return fmt.Sprintf("%q must not have a fragment or user info", raw)
		}
		return fmt.Sprintf("%q must not have a query, fragment or user info", raw)
	}
	return ""
}
