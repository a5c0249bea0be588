package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ory/fosite"
	fjwt "github.com/ory/fosite/token/jwt"

	"github.com/keyward/keyward/store"
)

// Access tokens are self-contained: Keyward stores nothing per access
// token. Everything a later decision needs is in the JWT (sub, aud, scope,
// client_id, exp, iat, jti, sid, idp, auth_time, act, and aud_ceiling for
// tokens of a trust rule), and the revocation state comes from records
// Keyward keeps anyway: the subject (disabled, not-before), the Keyward
// session (ended: tokenstate.go) and one deny entry per revoked jti
// (store.GrantDeniedToken, kept until the token's exp, plus a RevokeToken
// feed entry for the edges). A family record (the refresh token, or the
// authorize code redeemed without offline_access) carries the jti and exp
// of the access token issued with it, so revoking the family can deny it.

// claimAudienceCeiling is the private claim that carries Session.AudienceCeiling
// (a trust rule's audiences) in a token exchanged from an external token,
// so a re-exchange can never widen it. It is the one private claim Keyward
// adds: the ceiling cannot be derived from aud (a chain may move to
// another audience the rule allows) and reading the rule again by name
// would let a configuration change widen a live chain.
const claimAudienceCeiling = "aud_ceiling"

// accessTokens verifies Keyward's own access tokens and keeps their
// revocation state.
type accessTokens struct {
	keys    signer
	issuer  string
	clients *clientRegistry
	store   accessTokenStore
	now     func() time.Time
}

// accessTokenStore is the part of the store the deny entries need.
type accessTokenStore interface {
	GetGrant(ctx context.Context, kind store.GrantKind, signature string) (store.Grant, error)
	CreateGrant(ctx context.Context, g store.Grant) error
	UpdateGrantsByRequest(ctx context.Context, requestID string, kinds []store.GrantKind, updater func(store.Grant) (store.Grant, error)) (int, error)
	Apply(ctx context.Context, b store.Batch) (store.BatchResult, error)
}

// Errors of verify: the token is not a valid Keyward access token, or it
// was revoked by jti.
var (
	errNotAccessToken = errors.New("not a Keyward access token")
	errTokenDenied    = errors.New("the access token was revoked")
	// errTokenType (with errNotAccessToken): a valid Keyward JWT that is
	// not an access token (an ID token).
	errTokenType = errors.New("typ is not at+jwt")
)

// looksLikeJWT reports whether tok has the three segments of a JWS; opaque
// codes and refresh tokens have one dot at most.
func looksLikeJWT(tok string) bool { return strings.Count(tok, ".") == 2 }

// parse verifies raw as one of Keyward's access tokens (a published key by
// kid, typ at+jwt, this issuer, not expired) and rebuilds the request it
// was issued for from its claims alone. Errors wrap errNotAccessToken.
func (a *accessTokens) parse(ctx context.Context, raw string) (*fosite.Request, error) {
	if len(raw) > maxSubjectTokenBytes || !looksLikeJWT(raw) {
		return nil, fmt.Errorf("%w: not a JWT", errNotAccessToken)
	}
	tok, err := fositeSigner{keys: a.keys}.Decode(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNotAccessToken, err)
	}
	if t, _ := tok.Header["typ"].(string); !strings.EqualFold(t, "at+jwt") {
		return nil, fmt.Errorf("%w: %w (%q)", errNotAccessToken, errTokenType, t)
	}
	return a.request(tok.Claims)
}

// request rebuilds the request behind verified access-token claims.
func (a *accessTokens) request(mc fjwt.MapClaims) (*fosite.Request, error) {
	var claims fjwt.JWTClaims
	claims.FromMapClaims(mc)
	claims.Audience = claimStrings(mc["aud"])
	if claims.Issuer != a.issuer {
		return nil, fmt.Errorf("%w: issuer %q", errNotAccessToken, claims.Issuer)
	}
	if claims.JTI == "" || claims.ExpiresAt.IsZero() || claims.IssuedAt.IsZero() {
		return nil, fmt.Errorf("%w: jti, exp and iat are required", errNotAccessToken)
	}
	if claims.Scope == nil {
		if s, ok := mc["scope"].(string); ok {
			claims.Scope = strings.Fields(s)
		}
	}
	clientID, _ := mc["client_id"].(string)
	cl, ok := a.clients.get(clientID)
	if !ok {
		// A client removed from the configuration voids its tokens.
		return nil, fmt.Errorf("%w: unknown client %q", errNotAccessToken, clientID)
	}
	sess := newSession()
	// FromMapClaims keeps the standard claims out of Extra.
	for _, k := range []string{"scope", "scp", "aud", "iss", "sub", "jti", "iat", "exp", "nbf"} {
		delete(claims.Extra, k)
	}
	if ceiling, ok := claims.Extra[claimAudienceCeiling]; ok {
		// Present but empty (or malformed) allows nothing, never everything.
		sess.AudienceCeiling = append([]string{}, claimStrings(ceiling)...)
	}
	sess.AccessClaims = &claims
	sess.Subject = claims.Subject
	sess.SessionID, _ = claims.Extra["sid"].(string)
	sess.UpstreamID, _ = claims.Extra["idp"].(string)
	sess.AccessHeader.Add("typ", "at+jwt")
	sess.SetExpiresAt(fosite.AccessToken, claims.ExpiresAt)
	return &fosite.Request{
		ID:                claims.JTI,
		RequestedAt:       claims.IssuedAt,
		Client:            cl,
		RequestedScope:    fosite.Arguments(claims.Scope),
		GrantedScope:      fosite.Arguments(claims.Scope),
		RequestedAudience: fosite.Arguments(claims.Audience),
		GrantedAudience:   fosite.Arguments(claims.Audience),
		Session:           sess,
	}, nil
}

// denied reports whether the access token jti was revoked (a point lookup).
func (a *accessTokens) denied(ctx context.Context, jti string) (bool, error) {
	g, err := a.store.GetGrant(ctx, store.GrantDeniedToken, jti)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("get deny entry: %w", err)
	}
	return g.ExpiresAt.IsZero() || g.ExpiresAt.After(a.now()), nil
}

// verify is parse plus the deny entry: the request behind a valid access
// token that was not revoked by jti. Whether its subject and session are
// still good is checkIssuedToken's to say. errNotAccessToken and
// errTokenDenied are the caller's to answer; anything else is the store's.
func (a *accessTokens) verify(ctx context.Context, raw string) (*fosite.Request, error) {
	r, err := a.parse(ctx, raw)
	if err != nil {
		return nil, err
	}
	switch denied, err := a.denied(ctx, r.ID); {
	case err != nil:
		return nil, err
	case denied:
		return nil, errTokenDenied
	}
	return r, nil
}

// deniedToken is one access token to revoke.
type deniedToken struct {
	jti     string
	subject string
	expires time.Time
}

// denyUntil is how long the deny entry of an access token expiring at exp
// is kept: past exp by the clock skew Keyward allows (feedLeeway), since a
// verifier accepts the token through exp's second (exp is checked in whole
// seconds) and replicas' clocks, the store's GC among them, differ.
func denyUntil(exp time.Time) time.Time { return exp.Add(feedLeeway) }

// deny revokes access tokens by jti: per token, one store.Batch holds a
// GrantDeniedToken grant (the point lookup of verify) and a RevokeToken
// feed entry (for the edges), both kept until the token can no longer
// verify anywhere (denyUntil), so the broker and the edges never disagree.
// Tokens past that, or denied before, are skipped.
func (a *accessTokens) deny(ctx context.Context, tokens []deniedToken) error {
	now := a.now().UTC()
	for _, t := range tokens {
		if t.jti == "" || !denyUntil(t.expires).After(now) {
			continue
		}
		if denied, err := a.denied(ctx, t.jti); err != nil {
			return err
		} else if denied {
			continue
		}
		_, err := a.store.Apply(ctx, store.Batch{
			GrantCreates: []store.Grant{{
				Kind: store.GrantDeniedToken, Signature: t.jti, Active: true, RequestedAt: now, ExpiresAt: denyUntil(t.expires),
			}},
			Revocations: []store.Revocation{{
				Kind:      store.RevokeToken,
				TokenID:   t.jti,
				Subject:   t.subject,
				NotBefore: now,
				ExpiresAt: denyUntil(t.expires),
				CreatedAt: now,
			}},
		})
		if errors.Is(err, store.ErrConflict) {
			continue // denied concurrently, with its own feed entry
		}
		if err != nil {
			return fmt.Errorf("deny access token: %w", err)
		}
	}
	return nil
}

// denyFamily denies the access tokens issued with the records of requestID
// (its refresh tokens, and its authorize code when redeemed without
// offline_access) that may still be alive: reuse detection, /revoke of a
// refresh token, code reuse, a refused grant. The records are read in one
// write transaction (the store has no read by request, and this is a rare
// path) that also marks every refresh token of the family used, its grace
// use taken: a request of the family that commits after that read is
// refused (its rotation's precondition fails), and one that committed
// before has its refresh token, with its access token's jti, read here.
func (a *accessTokens) denyFamily(ctx context.Context, requestID string) error {
	now := a.now()
	found := map[string]deniedToken{} // by jti: a retried updater adds nothing twice
	_, err := a.store.UpdateGrantsByRequest(ctx, requestID, []store.GrantKind{store.GrantRefreshToken, store.GrantAuthorizeCode},
		func(g store.Grant) (store.Grant, error) {
			if g.AccessTokenID != "" && denyUntil(g.AccessExpiresAt).After(now) {
				found[g.AccessTokenID] = deniedToken{jti: g.AccessTokenID, subject: g.Subject, expires: g.AccessExpiresAt}
			}
			if g.Kind == store.GrantRefreshToken {
				g.Active = false
				if g.RotatedAt.IsZero() {
					g.RotatedAt = now
				}
				if g.GraceUsedAt.IsZero() {
					g.GraceUsedAt = now
				}
			}
			return g, nil
		})
	if err != nil {
		return fmt.Errorf("read family %s: %w", requestID, err)
	}
	tokens := make([]deniedToken, 0, len(found))
	for _, t := range found {
		tokens = append(tokens, t)
	}
	return a.deny(ctx, tokens)
}

// issuedAccessToken is the jti and expiry of the access token fosite has
// just generated for r (freshJWTStrategy gives every one a jti).
func issuedAccessToken(r fosite.Requester) (jti string, exp time.Time) {
	sess, ok := r.GetSession().(*Session)
	if !ok || sess.AccessClaims == nil {
		return "", time.Time{}
	}
	return sess.AccessClaims.JTI, sess.AccessClaims.ExpiresAt
}

// recordAccessOnCode records the jti and expiry of the access token issued
// by a code redemption on the redeemed authorize code, so that code reuse
// can deny it (RevokeAccessToken). It is part of the request's unit of
// work, after the code's invalidation: a code gone by then was revoked,
// and the unit fails with ErrNotFound.
func (s *fositeStore) recordAccessOnCode(ctx context.Context, r fosite.Requester) error {
	sig := redeemedCode(ctx)
	if sig == "" {
		return nil
	}
	jti, exp := issuedAccessToken(r)
	err := s.update(ctx, store.GrantAuthorizeCode, sig, func(g store.Grant) (store.Grant, error) {
		g.AccessTokenID, g.AccessExpiresAt = jti, exp
		return g, nil
	})
	if err != nil {
		return fmt.Errorf("record access token on code: %w", err)
	}
	return nil
}

// redeemedCode is the signature of the authorize code this token request
// redeems ("" for other grants): InvalidateAuthorizeCodeSession recorded it
// in the request's unit of work.
func redeemedCode(ctx context.Context) string {
	u := unitFrom(ctx)
	if u == nil {
		return ""
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.redeemedCode
}

// reservedAccessClaims are the private claims of an access token that say
// where it comes from, not who the person is.
var reservedAccessClaims = map[string]bool{"client_id": true, "sid": true, "idp": true, "auth_time": true, "act": true, claimAudienceCeiling: true}

// userInfoClaims are the /userinfo claims for an access token (OIDC Core
// §5.3), read from no record of the token: the identity of the Keyward
// session the token was issued in (its sid), as the ID token of that
// sign-in has it; without a sid, or once that session has expired while
// its refresh family goes on, the identity claims the token carries. Both
// follow the token's scopes and the email rule.
func (t *tokenEndpoint) userInfoClaims(ctx context.Context, ar fosite.Requester, sess *Session) (map[string]any, error) {
	identity := map[string]any{}
	found := false
	if sid := sess.sid(); sid != "" {
		ks, err := t.store.GetSession(ctx, sid)
		switch {
		case err == nil:
			identity, found = identityClaims(ks.Identity), true
		case !errors.Is(err, store.ErrNotFound):
			return nil, fmt.Errorf("get session: %w", err)
		}
	}
	if !found && sess.AccessClaims != nil {
		for k, v := range sess.AccessClaims.Extra {
			if !reservedAccessClaims[k] {
				identity[k] = v
			}
		}
	}
	claims := scopedClaims(identity, ar.GetGrantedScopes())
	verifiedEmailOnly(claims, map[string]any{})
	claims["sub"] = sess.GetSubject()
	return claims, nil
}
