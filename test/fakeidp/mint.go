package fakeidp

import (
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// mintTTL is the default lifetime of a minted JWT, about what CI issuers
// give their workload tokens.
const mintTTL = 5 * time.Minute

// MintJWT signs claims with the current signing key, the way a CI issuer
// such as GitHub Actions signs a workload token. iss, iat and exp default to
// the issuer, now and now+5m; every other claim (sub, aud, jti …) is exactly
// what claims holds, and a nil value removes a claim, defaults included.
// claims is not modified. It panics if claims cannot be encoded as JSON.
func (s *Server) MintJWT(claims map[string]any) string {
	s.mu.Lock()
	key := s.key
	s.mu.Unlock()
	return s.mintWith(key, claims)
}

// MintJWTWithKid is MintJWT with kid in the header instead of the current
// key's: an unknown kid makes verifiers refetch the JWKS, and "" omits the
// kid. The signature is still the current key's.
func (s *Server) MintJWTWithKid(claims map[string]any, kid string) string {
	s.mu.Lock()
	key := s.key
	s.mu.Unlock()
	key.KeyID = kid
	return s.mintWith(key, claims)
}

// MintJWTNextKey is MintJWT signed by the key that the next RotateKey will
// publish, with that key's kid: unknown to the JWKS until then. It panics
// once the fixtures are used up (three rotations), because a generated next
// key would not be the one RotateKey generates.
func (s *Server) MintJWTNextKey(claims map[string]any) string {
	s.mu.Lock()
	i := s.keyIndex + 1
	s.mu.Unlock()
	set, err := fixtures()
	if err != nil {
		panic("fakeidp: mint: " + err.Error())
	}
	if i >= len(set[s.alg]) {
		panic(fmt.Sprintf("fakeidp: mint: no fixture key %d for %s", i, s.alg))
	}
	return s.mintWith(set[s.alg][i], claims)
}

func (s *Server) mintWith(key jose.JSONWebKey, claims map[string]any) string {
	now := s.now()
	all := map[string]any{
		"iss": s.issuer,
		"iat": now.Unix(),
		"exp": now.Add(mintTTL).Unix(),
	}
	for k, v := range claims {
		if v == nil {
			delete(all, k)
		} else {
			all[k] = v
		}
	}
	raw, err := signJWT(key, all, false)
	if err != nil {
		panic("fakeidp: mint: " + err.Error())
	}
	return raw
}

// RevokeRefreshTokens forgets every refresh token issued for username, as
// an IdP does when it disables the person: their next refresh is answered
// 400 invalid_grant. It returns how many tokens were revoked.
func (s *Server) RevokeRefreshTokens(username string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for rt, g := range s.refresh {
		if g.username == username {
			delete(s.refresh, rt)
			n++
		}
	}
	return n
}
