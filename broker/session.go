package broker

import (
	"maps"
	"slices"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"
	fjwt "github.com/ory/fosite/token/jwt"
)

// Session is what fosite stores with every code and token: the ID token
// claims (openid.DefaultSession), the access-token claims and header, and
// Keyward's own bookkeeping. It implements openid.Session and
// oauth2.JWTSessionContainer.
type Session struct {
	*openid.DefaultSession `json:"oidc"`
	AccessClaims           *fjwt.JWTClaims `json:"at_claims"`
	AccessHeader           *fjwt.Headers   `json:"at_header"`
	// SessionID is the Keyward session the grant was issued in (the sid claim).
	SessionID string `json:"sid,omitempty"`
	// UpstreamID is the upstream the person signed in with (the idp claim).
	UpstreamID string `json:"idp,omitempty"`
	// FamilyStart is when the grant family began; it bounds the absolute
	// refresh-token lifetime.
	FamilyStart time.Time `json:"family_start"`
	// AudienceCeiling bounds the audiences of any token exchanged from this
	// one (nil: the exchanging client's). Set from a trust rule's audiences.
	AudienceCeiling []string `json:"aud_ceiling,omitempty"`
}

func newSession() *Session {
	return &Session{
		DefaultSession: &openid.DefaultSession{
			Claims:  &fjwt.IDTokenClaims{},
			Headers: &fjwt.Headers{},
		},
		AccessClaims: &fjwt.JWTClaims{Extra: map[string]any{}},
		AccessHeader: &fjwt.Headers{Extra: map[string]any{}},
	}
}

// GetJWTClaims implements oauth2.JWTSessionContainer.
func (s *Session) GetJWTClaims() fjwt.JWTClaimsContainer {
	if s.AccessClaims == nil {
		s.AccessClaims = &fjwt.JWTClaims{}
	}
	return s.AccessClaims
}

// GetJWTHeader implements oauth2.JWTSessionContainer.
func (s *Session) GetJWTHeader() *fjwt.Headers {
	if s.AccessHeader == nil {
		s.AccessHeader = &fjwt.Headers{}
	}
	return s.AccessHeader
}

// Clone returns a deep copy. It must return *Session: the refresh grant
// clones the stored session, and the embedded DefaultSession.Clone would
// drop the access-token claims. Every field is copied explicitly; a new
// field that holds a pointer, slice or map needs a line here
// (TestSessionCloneIsDeep fails until it has one).
func (s *Session) Clone() fosite.Session {
	if s == nil {
		return nil
	}
	c := *s
	if s.DefaultSession != nil {
		d := *s.DefaultSession
		d.Claims = cloneIDTokenClaims(d.Claims)
		d.Headers = cloneHeaders(d.Headers)
		d.ExpiresAt = maps.Clone(d.ExpiresAt)
		c.DefaultSession = &d
	}
	if s.AccessClaims != nil {
		a := *s.AccessClaims
		a.Audience = slices.Clone(a.Audience)
		a.Scope = slices.Clone(a.Scope)
		a.Extra = cloneClaims(a.Extra)
		c.AccessClaims = &a
	}
	c.AccessHeader = cloneHeaders(s.AccessHeader)
	c.AudienceCeiling = slices.Clone(s.AudienceCeiling)
	return &c
}

func cloneIDTokenClaims(in *fjwt.IDTokenClaims) *fjwt.IDTokenClaims {
	if in == nil {
		return nil
	}
	out := *in
	out.Audience = slices.Clone(in.Audience)
	out.AuthenticationMethodsReferences = slices.Clone(in.AuthenticationMethodsReferences)
	out.Extra = cloneClaims(in.Extra)
	return &out
}

func cloneHeaders(in *fjwt.Headers) *fjwt.Headers {
	if in == nil {
		return nil
	}
	out := *in
	out.Extra = cloneClaims(in.Extra)
	return &out
}

// cloneClaims deep-copies a claim map. Claim values are JSON-shaped (what
// Keyward sets and what a store round trip yields): maps and slices are
// copied, strings, numbers, booleans and times are values already.
func cloneClaims(in map[string]any) map[string]any {
	if in == nil {
		return nil
	}
	out := make(map[string]any, len(in))
	for k, v := range in {
		out[k] = cloneClaim(v)
	}
	return out
}

func cloneClaim(v any) any {
	switch v := v.(type) {
	case map[string]any:
		return cloneClaims(v)
	case []any:
		if v == nil {
			return v
		}
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = cloneClaim(x)
		}
		return out
	case []string:
		return slices.Clone(v)
	case map[string]string:
		return maps.Clone(v)
	}
	return v
}

var (
	_ openid.Session = (*Session)(nil)
	_ fosite.Session = (*Session)(nil)
)
