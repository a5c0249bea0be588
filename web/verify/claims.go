package verify

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// Claims are the verified claims of a Keyward access token (RFC 9068 plus
// Keyward's identity claims). Verify may return the same *Claims for repeated
// calls with the same token: treat it as read-only.
type Claims struct {
	Issuer            string
	Subject           string
	Audience          []string
	ExpiresAt         time.Time
	IssuedAt          time.Time // zero when absent
	NotBefore         time.Time // zero when absent
	JTI               string
	ClientID          string
	Scopes            []string // the space-separated scope claim, split
	SessionID         string   // sid
	IDP               string   // idp: the upstream the subject signed in with
	Email             string
	Name              string
	PreferredUsername string
	Groups            []string
	// Raw holds every claim as decoded by encoding/json (numbers are float64).
	Raw map[string]any

	// hdr holds the forward-auth identity header values, computed once per
	// verified token so a cached token costs no work per request.
	hdr identityHeaders
}

type identityHeaders struct {
	user, email, groups, subject []string
}

// User is the name a gateway passes upstream: preferred_username, else email,
// else sub.
func (c *Claims) User() string {
	switch {
	case c.PreferredUsername != "":
		return c.PreferredUsername
	case c.Email != "":
		return c.Email
	default:
		return c.Subject
	}
}

// HasScope reports whether the token carries scope s.
func (c *Claims) HasScope(s string) bool { return contains(c.Scopes, s) }

// InGroup reports whether the subject is in group g.
func (c *Claims) InGroup(g string) bool { return contains(c.Groups, g) }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// claimsFromMap extracts the typed claims. It checks types only; the time and
// issuer checks are Verifier.checkClaims.
func claimsFromMap(m map[string]any) (*Claims, error) {
	c := &Claims{Raw: m}
	var ok bool
	strs := []struct {
		name string
		dst  *string
	}{
		{"iss", &c.Issuer}, {"sub", &c.Subject}, {"jti", &c.JTI}, {"client_id", &c.ClientID},
		{"sid", &c.SessionID}, {"idp", &c.IDP}, {"email", &c.Email}, {"name", &c.Name},
		{"preferred_username", &c.PreferredUsername},
	}
	for _, s := range strs {
		if *s.dst, ok = optString(m, s.name); !ok {
			return nil, errBadPayload
		}
	}
	if c.Audience, ok = stringOrList(m["aud"]); !ok {
		return nil, errBadPayload
	}
	if c.Groups, ok = stringOrList(m["groups"]); !ok {
		return nil, errBadPayload
	}
	switch s := m["scope"].(type) {
	case nil:
	case string:
		c.Scopes = strings.Fields(s)
	default:
		return nil, errBadPayload
	}
	times := []struct {
		name string
		dst  *time.Time
	}{{"exp", &c.ExpiresAt}, {"iat", &c.IssuedAt}, {"nbf", &c.NotBefore}}
	for _, t := range times {
		if *t.dst, ok = numericDate(m[t.name]); !ok {
			return nil, errBadPayload
		}
	}
	c.hdr = identityHeaders{
		user:    []string{c.User()},
		subject: []string{c.Subject},
	}
	if c.Email != "" {
		c.hdr.email = []string{c.Email}
	}
	if len(c.Groups) > 0 {
		c.hdr.groups = []string{strings.Join(c.Groups, ",")}
	}
	return c, nil
}

func optString(m map[string]any, name string) (string, bool) {
	switch v := m[name].(type) {
	case nil:
		return "", true
	case string:
		return v, true
	default:
		return "", false
	}
}

// stringOrList accepts a string or an array of strings (RFC 7519 §4.1.3).
func stringOrList(v any) ([]string, bool) {
	switch v := v.(type) {
	case nil:
		return nil, true
	case string:
		return []string{v}, true
	case []any:
		out := make([]string, len(v))
		for i, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, false
			}
			out[i] = s
		}
		return out, true
	default:
		return nil, false
	}
}

// numericDate converts an RFC 7519 NumericDate; absent is the zero time.
func numericDate(v any) (time.Time, bool) {
	switch v := v.(type) {
	case nil:
		return time.Time{}, true
	case float64:
		if v < 0 || v > 1<<40 || math.IsNaN(v) {
			return time.Time{}, false
		}
		sec, frac := math.Modf(v)
		return time.Unix(int64(sec), int64(frac*1e9)), true
	default:
		return time.Time{}, false
	}
}

// claimEquals reports whether claim name equals one of want: a string claim
// by value, an array claim when any string element does, booleans and numbers
// by their JSON text.
func claimEquals(raw map[string]any, name string, want []string) bool {
	switch v := raw[name].(type) {
	case string:
		return contains(want, v)
	case []any:
		for _, e := range v {
			if s, ok := e.(string); ok && contains(want, s) {
				return true
			}
		}
	case bool:
		return contains(want, strconv.FormatBool(v))
	case float64:
		return contains(want, strconv.FormatFloat(v, 'f', -1, 64))
	}
	return false
}
