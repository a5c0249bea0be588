package broker

import (
	"context"
	"strings"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	fjwt "github.com/ory/fosite/token/jwt"
)

// The prefixes of Keyward's opaque authorization codes and refresh tokens
// (access tokens are JWTs). fosite's own strategy writes ory_ac_ and
// ory_rt_; a refresh token or code issued with those before Keyward had its
// own prefix is still accepted until it expires: the prefix is not part of
// the HMAC, the part after it is the same.
const (
	codePrefix          = "kw_ac_"
	refreshPrefix       = "kw_rt_"
	legacyCodePrefix    = "ory_ac_"
	legacyRefreshPrefix = "ory_rt_"
)

// prefixedHMACStrategy is fosite's unprefixed HMAC strategy with Keyward's
// prefixes on codes and refresh tokens.
type prefixedHMACStrategy struct {
	*oauth2.HMACSHAStrategyUnPrefixed
}

var _ oauth2.CoreStrategy = prefixedHMACStrategy{}

// trimPrefix drops Keyward's or the legacy prefix.
func trimPrefix(token, prefix, legacy string) string {
	if t, ok := strings.CutPrefix(token, prefix); ok {
		return t
	}
	return strings.TrimPrefix(token, legacy)
}

func addPrefix(token, prefix string) string {
	if token == "" {
		return ""
	}
	return prefix + token
}

func (h prefixedHMACStrategy) GenerateRefreshToken(ctx context.Context, r fosite.Requester) (string, string, error) {
	token, sig, err := h.HMACSHAStrategyUnPrefixed.GenerateRefreshToken(ctx, r)
	return addPrefix(token, refreshPrefix), sig, err
}

func (h prefixedHMACStrategy) ValidateRefreshToken(ctx context.Context, r fosite.Requester, token string) error {
	return h.HMACSHAStrategyUnPrefixed.ValidateRefreshToken(ctx, r, trimPrefix(token, refreshPrefix, legacyRefreshPrefix))
}

func (h prefixedHMACStrategy) GenerateAuthorizeCode(ctx context.Context, r fosite.Requester) (string, string, error) {
	token, sig, err := h.HMACSHAStrategyUnPrefixed.GenerateAuthorizeCode(ctx, r)
	return addPrefix(token, codePrefix), sig, err
}

func (h prefixedHMACStrategy) ValidateAuthorizeCode(ctx context.Context, r fosite.Requester, token string) error {
	return h.HMACSHAStrategyUnPrefixed.ValidateAuthorizeCode(ctx, r, trimPrefix(token, codePrefix, legacyCodePrefix))
}

// idTokenSigner signs ID tokens without fosite's non-standard rat
// (requested-at) claim. fosite fills it from the session's RequestedAt,
// which its prompt=login and max_age checks need before signing, so the
// claim is dropped only from what is signed.
type idTokenSigner struct{ fositeSigner }

func (s idTokenSigner) Generate(ctx context.Context, claims fjwt.MapClaims, header fjwt.Mapper) (string, string, error) {
	delete(claims, "rat")
	return s.fositeSigner.Generate(ctx, claims, header)
}
