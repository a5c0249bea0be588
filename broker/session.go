package broker

import (
	"time"

	"github.com/mohae/deepcopy"
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
// drop the access-token claims.
func (s *Session) Clone() fosite.Session {
	if s == nil {
		return nil
	}
	return deepcopy.Copy(s).(*Session)
}

var (
	_ openid.Session = (*Session)(nil)
	_ fosite.Session = (*Session)(nil)
)
