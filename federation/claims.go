package federation

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// lookup finds path in claims: as one top-level claim name first (so
// "https://example.com/roles" and "cognito:groups" work as is), else split
// on "." and walked through nested objects ("realm_access.roles").
func lookup(claims map[string]any, path string) (any, bool) {
	if path == "" {
		return nil, false
	}
	if v, ok := claims[path]; ok {
		return v, true
	}
	if !strings.Contains(path, ".") {
		return nil, false
	}
	var cur any = claims
	for part := range strings.SplitSeq(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// scalar renders a string, boolean or number claim as a string; ok is false
// for other values.
func scalar(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case bool:
		return strconv.FormatBool(v), true
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), true
	case int:
		return strconv.Itoa(v), true
	case int64:
		return strconv.FormatInt(v, 10), true
	}
	return "", false
}

// mapped is a mapped identity plus what the allow rules need to know.
type mapped struct {
	Identity
	// verifiedKnown: the upstream said whether the mapped email is verified
	// (or trustEmail vouches for it).
	verifiedKnown bool
}

// errNoSubject: the subject claim is missing or not a string.
var errNoSubject = errors.New("no subject")

// identity maps claims through m (defaults filled). The subject must be a
// non-empty string. Claims are kept in Identity.Claims as they are given.
//
// EmailVerified is true only when the email claim's verification claim
// says so, or when trustEmail (Config.TrustEmail) treats every mapped
// email, a fallback's too, as verified.
func (m ClaimMapping) identity(claims map[string]any, trustEmail bool) (mapped, error) {
	sub, _ := lookupString(claims, m.Subject)
	if sub == "" {
		return mapped{}, fmt.Errorf("%w: the subject claim %q is missing or not a string", errNoSubject, m.Subject)
	}
	out := mapped{Identity: Identity{
		Subject: sub,
		Claims:  maps.Clone(claims),
	}}
	id := &out.Identity
	if email, _ := lookupString(claims, m.Email); email != "" {
		id.Email = email
		if v, ok := lookup(claims, m.EmailVerified); ok {
			id.EmailVerified, out.verifiedKnown = truthy(v), true
		}
	} else {
		for _, p := range m.EmailFallbacks {
			if s, _ := lookupString(claims, p); strings.Contains(s, "@") {
				id.Email = s
				break
			}
		}
	}
	if trustEmail && id.Email != "" {
		id.EmailVerified, out.verifiedKnown = true, true
	}
	id.Name, _ = lookupString(claims, m.Name)
	id.PreferredUsername = firstString(claims, append([]string{m.PreferredUsername}, m.PreferredUsernameFallbacks...))
	id.Groups = m.groups(claims)
	for _, name := range slices.Sorted(maps.Keys(m.Claims)) {
		v, ok := lookup(claims, m.Claims[name])
		if !ok {
			continue
		}
		if s, ok := scalar(v); ok {
			if id.Extra == nil {
				id.Extra = map[string]string{}
			}
			id.Extra[name] = s
		}
	}
	if t, ok := claims["auth_time"].(float64); ok && t > 0 {
		id.AuthTime = time.Unix(int64(t), 0).UTC()
	}
	return out, nil
}

// groups merges the values of every groups path, deduplicated in order and
// prefixed; nil when no path is present.
func (m ClaimMapping) groups(claims map[string]any) []string {
	var out []string
	for _, p := range m.Groups {
		v, ok := lookup(claims, p)
		if !ok {
			continue
		}
		if out == nil {
			out = []string{}
		}
		for _, g := range strs(v) {
			g = m.GroupsPrefix + g
			if !slices.Contains(out, g) {
				out = append(out, g)
			}
		}
	}
	return out
}

// missing reports whether the userinfo endpoint could add something the
// mapping wants: an email, a name, or groups (when groups are mapped).
func (m mapped) missing(c ClaimMapping) bool {
	return m.Email == "" || m.Name == "" || (len(c.Groups) > 0 && m.Groups == nil)
}

func lookupString(claims map[string]any, path string) (string, bool) {
	v, ok := lookup(claims, path)
	if !ok {
		return "", false
	}
	s, ok := v.(string)
	return s, ok
}

// firstString is the first non-empty string found at paths.
func firstString(claims map[string]any, paths []string) string {
	for _, p := range paths {
		if s, _ := lookupString(claims, p); s != "" {
			return s
		}
	}
	return ""
}

// merge returns the ID token's claims with the userinfo claims it lacks:
// the ID token wins where both have a claim. An email and its verification
// (m's Email and EmailVerified, top-level claims) come from one document:
// userinfo's verification is not taken for another address than the ID
// token's, and the ID token's verification is not lent to userinfo's
// address when the ID token names none (Keycloak maps email and
// email_verified into the ID token separately).
func merge(idToken, userinfo map[string]any, m ClaimMapping) map[string]any {
	out := maps.Clone(userinfo)
	if out == nil {
		out = map[string]any{}
	}
	email, idHasEmail := lookupString(idToken, m.Email)
	if idHasEmail {
		if other, _ := lookupString(userinfo, m.Email); other != email {
			delete(out, m.EmailVerified)
		}
	}
	for k, v := range idToken {
		if k == m.EmailVerified && !idHasEmail {
			continue
		}
		out[k] = v
	}
	return out
}
