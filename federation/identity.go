package federation

import (
	"maps"
	"strings"
	"time"
)

// Identity is what an upstream asserts about the person who signed in.
type Identity struct {
	Subject           string // upstream sub; unique per upstream only
	Email             string
	EmailVerified     bool // as the upstream reports it; missing is false
	Name              string
	PreferredUsername string
	Groups            []string
	AuthTime          time.Time // zero when the upstream sent no auth_time
	// Claims are the raw, verified ID token claims (numbers as float64);
	// userinfo claims are not merged in.
	Claims map[string]any
	// RefreshToken is the upstream's refresh token from a code exchange
	// (empty when the upstream sent none, and for native sign-in). It is a
	// credential: never log it, and store it only sealed.
	RefreshToken string
}

// identity maps verified claims through m.
func (m ClaimMapping) identity(sub string, claims map[string]any) Identity {
	id := Identity{
		Subject:           sub,
		Email:             str(claims[m.Email]),
		Name:              str(claims[m.Name]),
		PreferredUsername: str(claims[m.PreferredUsername]),
		Groups:            strs(claims[m.Groups]),
		Claims:            maps.Clone(claims),
	}
	if id.Email != "" {
		id.EmailVerified = truthy(claims["email_verified"])
	}
	if t, ok := claims["auth_time"].(float64); ok && t > 0 {
		id.AuthTime = time.Unix(int64(t), 0).UTC()
	}
	return id
}

// fill copies into id the fields it lacks from other. Email and its
// verification travel together.
func fillMissing(id *Identity, other Identity) {
	if id.Email == "" {
		id.Email, id.EmailVerified = other.Email, other.EmailVerified
	}
	if id.Name == "" {
		id.Name = other.Name
	}
	if id.PreferredUsername == "" {
		id.PreferredUsername = other.PreferredUsername
	}
	if id.Groups == nil {
		id.Groups = other.Groups
	}
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// strs accepts a string or a list; non-string elements are skipped.
func strs(v any) []string {
	switch v := v.(type) {
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
