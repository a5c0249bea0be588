package broker

import (
	"context"
	"errors"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/oauth2"
)

// tokenIntrospector is Keyward's fosite.TokenIntrospector, behind
// /introspect and /userinfo: an access token is verified from its own
// claims (accessTokens.verify: signature by kid, typ, issuer, expiry, deny
// entry), with no record to read; anything else is looked up as a refresh
// token by fosite's CoreValidator. Whether the token's subject and session
// are still good is checked after it (checkIssuedToken), for both kinds.
type tokenIntrospector struct {
	tokens  *accessTokens
	refresh fosite.TokenIntrospector
	scopes  fosite.ScopeStrategyProvider
}

var _ fosite.TokenIntrospector = (*tokenIntrospector)(nil)

func (i *tokenIntrospector) IntrospectToken(ctx context.Context, token string, _ fosite.TokenUse, ar fosite.AccessRequester, scopes []string) (fosite.TokenUse, error) {
	if !looksLikeJWT(token) {
		return i.refresh.IntrospectToken(ctx, token, fosite.RefreshToken, ar, scopes)
	}
	r, err := i.tokens.verify(ctx, token)
	switch {
	case errors.Is(err, errNotAccessToken), errors.Is(err, errTokenDenied):
		return "", fosite.ErrInactiveToken.WithWrap(err)
	case err != nil:
		return "", fosite.ErrServerError.WithWrap(err)
	}
	strategy := i.scopes.GetScopeStrategy(ctx)
	for _, s := range scopes {
		if s != "" && !strategy(r.GetGrantedScopes(), s) {
			return "", fosite.ErrInvalidScope
		}
	}
	ar.Merge(r)
	return fosite.AccessToken, nil
}

// tokenRevoker is Keyward's fosite.RevocationHandler (RFC 7009): an access
// token is revoked by its jti (accessTokens.deny: a deny entry and a feed
// entry, until it expires); a refresh token by fosite's handler, which
// revokes its family (RevokeRefreshToken, RevokeAccessToken). Revoking an
// access token leaves its refresh family alone (RFC 7009 §2.1 makes that a
// MAY; the token names no family).
type tokenRevoker struct {
	tokens  *accessTokens
	refresh fosite.RevocationHandler
}

var _ fosite.RevocationHandler = (*tokenRevoker)(nil)

func (h *tokenRevoker) RevokeToken(ctx context.Context, token string, hint fosite.TokenType, client fosite.Client) error {
	if !looksLikeJWT(token) {
		return h.refresh.RevokeToken(ctx, token, hint, client)
	}
	r, err := h.tokens.parse(ctx, token)
	if errors.Is(err, errNotAccessToken) {
		return nil // RFC 7009 §2.2: an invalid (or expired) token is no error
	}
	if err != nil {
		return fosite.ErrTemporarilyUnavailable.WithWrap(err)
	}
	if r.GetClient().GetID() != client.GetID() {
		return fosite.ErrUnauthorizedClient
	}
	err = h.tokens.deny(ctx, []deniedToken{{jti: r.ID, subject: r.GetSession().GetSubject(), expires: r.GetSession().GetExpiresAt(fosite.AccessToken)}})
	if err != nil {
		return fosite.ErrTemporarilyUnavailable.WithWrap(err)
	}
	return nil
}

// introspectionFactory and revocationFactory register the two handlers
// above in composeFosite, around fosite's own for refresh tokens.
func introspectionFactory(tokens *accessTokens) compose.Factory {
	return func(c fosite.Configurator, storage, strategy any) any {
		return &tokenIntrospector{
			tokens:  tokens,
			refresh: compose.OAuth2TokenIntrospectionFactory(c, storage, strategy).(*oauth2.CoreValidator),
			scopes:  c,
		}
	}
}

func revocationFactory(tokens *accessTokens) compose.Factory {
	return func(c fosite.Configurator, storage, strategy any) any {
		return &tokenRevoker{
			tokens:  tokens,
			refresh: compose.OAuth2TokenRevocationFactory(c, storage, strategy).(*oauth2.TokenRevocationHandler),
		}
	}
}
