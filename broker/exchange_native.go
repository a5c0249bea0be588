package broker

import (
	"context"
	"errors"
	"time"

	"github.com/ory/fosite"

	"github.com/keyward/keyward/federation"
	"github.com/keyward/keyward/store"
)

// Native sign-in by token exchange: an ID token from a configured upstream,
// presented by a native app, mapped exactly like a browser sign-in.

// nativeSignIn is a person who signed in at an upstream in a native app
// and presents the upstream's ID token.
type nativeSignIn struct {
	upstream Upstream
	identity federation.Identity
}

// nativeSubject verifies an ID token from a configured upstream (native
// sign-in): the first upstream with the token's issuer that takes its
// audience for native sign-in decides. ok is false when none does; trust
// rules decide then. Only configured upstreams are contacted, since iss
// must equal one's issuer.
func (h *exchangeHandler) nativeSubject(ctx context.Context, raw, iss string) (s exchangeSubject, ok bool, err error) {
	for _, up := range h.upstreams {
		if up.Issuer() != iss {
			continue
		}
		id, err := up.VerifyIDToken(ctx, raw)
		if errors.Is(err, federation.ErrNativeNotAccepted) {
			h.log.DebugContext(ctx, "native sign-in: upstream does not take the id token", "upstream", up.ID(), "err", err)
			continue
		}
		log := h.log.With("upstream", up.ID())
		if errors.Is(err, federation.ErrIssuerUnavailable) {
			log.WarnContext(ctx, "native sign-in: upstream keys unavailable", "event", "login_failed", "err", err)
			return s, true, fosite.ErrTemporarilyUnavailable.WithHint(descNativeUnavailable).WithWrap(err)
		}
		if na := (*federation.NotAllowedError)(nil); errors.As(err, &na) {
			h.subjects.refuseLogin(ctx, up.ID(), na)
			return s, true, fosite.ErrInvalidGrant.WithHint(na.Message).WithWrap(err)
		}
		if err != nil {
			log.InfoContext(ctx, "native sign-in refused", "event", "login_failed", "err", err)
			return s, true, fosite.ErrInvalidGrant.WithHint(descNativeInvalid).WithWrap(err)
		}
		s = exchangeSubject{
			subject: SubjectID(up.ID(), id.Subject),
			expiry:  claimTime(id.Claims, "exp"),
			public:  up.NativePublicClients(),
			native:  &nativeSignIn{upstream: up, identity: id},
		}
		// When the person authenticated: auth_time, else the token's iat.
		s.authTime = id.AuthTime
		if s.authTime.IsZero() {
			s.authTime = claimTime(id.Claims, "iat")
		}
		if s.authTime.After(h.now()) {
			s.authTime = time.Time{}
		}
		return s, true, nil
	}
	return s, false, nil
}

// upstreamIssuer reports whether iss is a configured upstream's issuer.
func (h *exchangeHandler) upstreamIssuer(iss string) bool {
	for _, up := range h.upstreams {
		if up.Issuer() == iss {
			return true
		}
	}
	return false
}

// nativeClaims are the access-token claims of a native sign-in: exactly
// those a browser sign-in of the same person with the same scopes gets
// (identity claims per scope and tokens.claims, idp, auth_time), without a
// Keyward session id.
func (c *claimRules) nativeClaims(subject string, n *nativeSignIn, authTime time.Time, scopes []string) map[string]any {
	id := n.identity
	sess := c.newTokenSession(store.Session{
		Subject:    subject,
		UpstreamID: n.upstream.ID(),
		Identity: store.Identity{
			Email: id.Email, EmailVerified: id.EmailVerified, Name: id.Name,
			PreferredUsername: id.PreferredUsername, Groups: id.Groups, Extra: id.Extra,
		},
		AuthTime: authTime,
	}, scopes, "", authTime)
	claims := map[string]any{}
	for k, v := range sess.AccessClaims.Extra {
		if k != "client_id" && k != "sid" {
			claims[k] = v
		}
	}
	return claims
}

// claimTime reads a NumericDate claim of verified claims (JSON numbers
// decoded as float64); zero when absent.
func claimTime(claims map[string]any, name string) time.Time {
	if v, ok := claims[name].(float64); ok && v > 0 {
		return time.Unix(int64(v), 0).UTC()
	}
	return time.Time{}
}
