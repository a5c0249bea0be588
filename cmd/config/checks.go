package config

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/keyward/keyward/cmd/config/field"
	"github.com/keyward/keyward/web/loopback"
)

// HTTPSHint ends the message for an http URL on a host other than loopback
// (the loopback rule's own words).
const HTTPSHint = loopback.HTTPSHint

// CheckURL requires an https URL (http on loopback) with a host and without
// query, fragment or user info, such as an issuer (OIDC Discovery §4.3):
// field.CheckURL's rule, which verify.yaml's issuer follows too.
func (p *Problems) CheckURL(path, raw string) {
	if raw == "" {
		p.Add(path, "set it to the issuer URL (https://…)")
		return
	}
	if msg := field.CheckURL(raw, field.URLRule{Example: "https://sso.example.com"}); msg != "" {
		p.Add(path, "%s", msg)
	}
}

// CheckList reports empty, padded, repeated and (by check, which returns the
// fix or "") invalid entries of list, at path[i].
func (p *Problems) CheckList(path string, list []string, check func(string) string) {
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

// CheckDuration reports d unless 0 < d ≤ limit; limit 0 means no upper
// bound.
func (p *Problems) CheckDuration(path string, d Duration, limit time.Duration) {
	switch {
	case d <= 0:
		p.Add(path, "%s must be positive", d)
	case limit > 0 && time.Duration(d) > limit:
		p.Add(path, "%s is too long; use at most %s", d, Duration(limit))
	}
}
