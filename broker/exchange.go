package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"

	"github.com/keyward/keyward/federation"
	"github.com/keyward/keyward/store"
)

// RFC 8693 identifiers.
const (
	GrantTypeTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	TokenTypeAccessToken   = "urn:ietf:params:oauth:token-type:access_token"
	TokenTypeJWT           = "urn:ietf:params:oauth:token-type:jwt"
	TokenTypeIDToken       = "urn:ietf:params:oauth:token-type:id_token"
)

// maxSubjectTokenBytes bounds a subject or actor token before any parsing.
const maxSubjectTokenBytes = 16 << 10

// Trust verifies external JWTs against the workload-federation trust rules
// (*federation.Trust). It must not contact an issuer no rule names. It gets
// the subject token as decoded once by federation.ParseSubjectToken, which
// the exchange also reads the issuer from.
type Trust interface {
	VerifyParsed(ctx context.Context, tok *federation.SubjectToken) (federation.TrustMatch, error)
}

// exchangeHandler is the token-exchange grant (RFC 8693), a fosite
// TokenEndpointHandler. It decides the subject, audience, scopes, lifetime
// and act claim; fosite authenticates the client and writes the answer.
type exchangeHandler struct {
	issuerURL string
	accessTTL time.Duration
	keys      signer // Keyward's own subject and actor tokens
	trust     Trust  // nil: no external tokens
	fstore    *fositeStore
	upstreams []Upstream // native sign-in
	subjects  *subjects
	claims    *claimRules
	log       *slog.Logger
	now       func() time.Time
	issuer    *oauth2.HandleHelper
}

var _ fosite.TokenEndpointHandler = (*exchangeHandler)(nil)

func (h *exchangeHandler) CanHandleTokenEndpointRequest(_ context.Context, r fosite.AccessRequester) bool {
	return r.GetGrantTypes().ExactOne(GrantTypeTokenExchange)
}

// CanSkipClientAuth is false: a public client still names itself with
// client_id and authenticates with method none.
func (h *exchangeHandler) CanSkipClientAuth(context.Context, fosite.AccessRequester) bool {
	return false
}

// exchangeSubject is what a verified subject token establishes.
type exchangeSubject struct {
	subject   string
	expiry    time.Time
	audiences []string // the most the new token may carry (nil: the client's)
	scopes    []string // the most it may carry
	maxTTL    time.Duration
	public    bool // a public client may present it
	claims    map[string]any
	// identity are the subject token's identity claims; the new token
	// keeps those its granted scopes allow (scopedClaims).
	identity map[string]any
	act      map[string]any // the subject token's act claim, for chains
	jti      string         // for single use; empty when not required
	// authTime is when the person authenticated, for the refusal check
	// (zero: now).
	authTime time.Time
	native   *nativeSignIn // set for an upstream ID token
	// issuedTo is the audience of a Keyward subject token: only a client it
	// was issued for may exchange it (nil for external tokens).
	issuedTo []string
}

func (h *exchangeHandler) HandleTokenEndpointRequest(ctx context.Context, r fosite.AccessRequester) error {
	if !h.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	client := r.GetClient()
	if !client.GetGrantTypes().Has(GrantTypeTokenExchange) {
		return fosite.ErrUnauthorizedClient.WithHint(descExchangeNotAllowed)
	}
	form := r.GetRequestForm()
	raw, typ := form.Get("subject_token"), form.Get("subject_token_type")
	if raw == "" || typ == "" {
		return fosite.ErrInvalidRequest.WithHint(descExchangeNoSubject)
	}
	switch form.Get("requested_token_type") {
	case "", TokenTypeAccessToken, TokenTypeJWT:
	default:
		return fosite.ErrInvalidRequest.WithHint(descExchangeRequestedType)
	}
	subj, err := h.subject(ctx, raw, typ)
	if err != nil {
		return err
	}
	if subj.issuedTo != nil && !issuedToClient(subj.issuedTo, client) {
		// RFC 8693 §2.1: the party a token was issued to exchanges it; any
		// other client would be a confused deputy.
		return fosite.ErrInvalidGrant.WithHint(descExchangeNotIssuedToClient)
	}
	if client.IsPublic() && !subj.public {
		return fosite.ErrUnauthorizedClient.WithHint(descExchangePublicClient)
	}
	now := h.now()
	authTime := subj.authTime
	if authTime.IsZero() {
		authTime = now
	}
	if err := h.subjects.checkSubject(ctx, subj.subject, authTime); err != nil {
		if errors.Is(err, errSubjectRefused) {
			return fosite.ErrInvalidGrant.WithHint(descExchangeAccessRemoved).WithWrap(err)
		}
		return fosite.ErrServerError.WithWrap(err)
	}
	auds, err := exchangeAudiences(r, form["resource"], subj.audiences)
	if err != nil {
		return err
	}
	if subj.native != nil {
		// Native sign-in: whatever the client may have, as after a
		// browser sign-in.
		subj.scopes = client.GetScopes()
	}
	scopes, err := exchangeScopes(r.GetRequestedScopes(), subj.scopes, client.GetScopes())
	if err != nil {
		return err
	}
	act, err := h.actor(ctx, client, form.Get("actor_token"), form.Get("actor_token_type"), subj.act)
	if err != nil {
		return err
	}
	if n := subj.native; n != nil {
		// As the browser callback does: record the subject, refuse a
		// disabled one, and take the identity claims the scopes allow.
		if err := h.subjects.upsertSubject(ctx, subj.subject, n.upstream.ID(), n.identity, now); err != nil {
			if errors.Is(err, errSubjectRefused) {
				return fosite.ErrInvalidGrant.WithHint(descExchangeAccessRemoved).WithWrap(err)
			}
			return fosite.ErrServerError.WithWrap(err)
		}
		subj.claims = h.claims.nativeClaims(subj.subject, n, authTime, scopes)
		h.log.InfoContext(ctx, "signed in with a native app", "event", "login_succeeded",
			"upstream", n.upstream.ID(), "client_id", client.GetID(), "sub", subj.subject)
	}
	if subj.jti != "" {
		if err := h.fstore.claimJTI(ctx, subj.jti, subj.expiry); err != nil {
			return err
		}
	}
	for _, a := range auds {
		r.GrantAudience(a)
	}
	for _, s := range scopes {
		r.GrantScope(s)
	}
	if subj.identity != nil {
		// Narrowed scopes narrow the identity claims too, by the rule of
		// a sign-in.
		if subj.claims == nil {
			subj.claims = map[string]any{}
		}
		for k, v := range scopedClaims(subj.identity, scopes) {
			subj.claims[k] = v
		}
	}

	// Never longer than the access-token lifetime, the rule's bound, or the
	// subject token's own expiry.
	exp := now.Add(h.accessTTL)
	if subj.maxTTL > 0 && now.Add(subj.maxTTL).Before(exp) {
		exp = now.Add(subj.maxTTL)
	}
	if !subj.expiry.IsZero() && subj.expiry.Before(exp) {
		exp = subj.expiry
	}
	sess, ok := r.GetSession().(*Session)
	if !ok {
		return fosite.ErrServerError.WithDebug("unexpected session type")
	}
	sess.Subject = subj.subject
	sess.AccessClaims.Subject = subj.subject
	sess.AccessClaims.Extra = map[string]any{"client_id": client.GetID()}
	for k, v := range subj.claims {
		sess.AccessClaims.Extra[k] = v
	}
	if act != nil {
		sess.AccessClaims.Extra["act"] = act
	}
	sess.AccessHeader.Add("typ", "at+jwt")
	sess.SetExpiresAt(fosite.AccessToken, exp.UTC())
	// The bound of the token's origin (a trust rule's audiences) travels
	// with it, in the token itself (access tokens are not stored), so a
	// re-exchange can never widen it.
	sess.AudienceCeiling = subj.audiences
	if subj.audiences != nil {
		sess.AccessClaims.Extra[claimAudienceCeiling] = append([]string{}, subj.audiences...)
	}
	return nil
}

// issuedToClient reports whether aud names the client or an audience the
// client serves.
func issuedToClient(aud []string, c fosite.Client) bool {
	for _, a := range aud {
		if a == c.GetID() || has(c.GetAudience(), a) {
			return true
		}
	}
	return false
}

func (h *exchangeHandler) PopulateTokenEndpointResponse(ctx context.Context, r fosite.AccessRequester, resp fosite.AccessResponder) error {
	if !h.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	if _, err := h.issuer.IssueAccessToken(ctx, h.accessTTL, r, resp); err != nil {
		return fosite.ErrServerError.WithWrap(err)
	}
	typ := TokenTypeAccessToken
	if r.GetRequestForm().Get("requested_token_type") == TokenTypeJWT {
		typ = TokenTypeJWT
	}
	resp.SetExtra("issued_token_type", typ) // RFC 8693 §2.2.1
	return nil
}

// subject verifies a subject token and says what it may become. Keyward's
// own access tokens are narrowed; an external JWT must match a trust rule,
// and the issuer of a token no rule names is never contacted.
func (h *exchangeHandler) subject(ctx context.Context, raw, typ string) (exchangeSubject, error) {
	tok, err := parseSubjectToken(raw)
	if err != nil {
		return exchangeSubject{}, fosite.ErrInvalidGrant.WithHint(descExchangeNotJWT).WithWrap(err)
	}
	iss := tok.Issuer()
	if iss == h.issuerURL {
		if typ != TokenTypeAccessToken && typ != TokenTypeJWT {
			return exchangeSubject{}, fosite.ErrInvalidRequest.WithHint(descExchangeKeywardType)
		}
		return h.keywardSubject(ctx, raw)
	}
	if typ != TokenTypeJWT && typ != TokenTypeIDToken {
		return exchangeSubject{}, fosite.ErrInvalidRequest.WithHint(descExchangeExternalType)
	}
	if s, ok, err := h.nativeSubject(ctx, raw, iss); ok {
		return s, err
	}
	untrusted := func() *fosite.RFC6749Error {
		if h.upstreamIssuer(iss) {
			return fosite.ErrInvalidGrant.WithHint(descExchangeNativeNotAccepted)
		}
		return fosite.ErrInvalidGrant.WithHint(descExchangeUntrusted)
	}
	if h.trust == nil {
		return exchangeSubject{}, untrusted()
	}
	m, err := h.trust.VerifyParsed(ctx, tok)
	if errors.Is(err, federation.ErrUntrustedIssuer) {
		return exchangeSubject{}, untrusted().WithWrap(err)
	}
	if errors.Is(err, federation.ErrIssuerUnavailable) {
		// The issuer's fault, not the client's: worth a retry.
		return exchangeSubject{}, fosite.ErrTemporarilyUnavailable.WithHint(descExchangeIssuerUnavailable).WithWrap(err)
	}
	if err != nil {
		return exchangeSubject{}, fosite.ErrInvalidGrant.WithHint(descExchangeInvalid).WithWrap(err)
	}
	s := exchangeSubject{
		subject:   m.Subject,
		expiry:    m.Expiry,
		audiences: m.Rule.Audiences,
		scopes:    m.Rule.Scopes,
		maxTTL:    time.Duration(m.Rule.MaxTTL),
		public:    m.Rule.PublicClient,
		claims:    map[string]any{"idp": "trust:" + m.Rule.Name},
	}
	if m.Rule.SingleUse {
		if m.JTI == "" {
			return exchangeSubject{}, fosite.ErrInvalidGrant.WithHint(descExchangeNoJTI)
		}
		s.jti = "te:" + m.Issuer + ":" + m.JTI
	}
	return s, nil
}

// keywardSubject verifies one of Keyward's own access tokens: signature by a
// published key, typ at+jwt, not expired, and not revoked (no deny entry,
// subject and session still good). Everything it may become is read from
// the token's own claims: scopes, audiences (aud_ceiling) and act.
func (h *exchangeHandler) keywardSubject(ctx context.Context, raw string) (exchangeSubject, error) {
	orig, err := h.activeAccessToken(ctx, raw)
	if err != nil {
		return exchangeSubject{}, err
	}
	sess := orig.GetSession().(*Session)
	claims, identity := map[string]any{}, map[string]any{}
	var act map[string]any
	for k, v := range sess.AccessClaims.Extra {
		switch {
		case k == "act":
			act, _ = v.(map[string]any)
		case k == "sid" || k == "idp" || k == "auth_time":
			// Where the token comes from, whatever its scopes: the sid
			// keeps the new token bound to the session (sessionEnded).
			claims[k] = v
		case !reservedAccessClaims[k]:
			identity[k] = v
		}
	}
	return exchangeSubject{
		subject:   sess.GetSubject(),
		expiry:    sess.GetExpiresAt(fosite.AccessToken),
		audiences: sess.AudienceCeiling,
		scopes:    orig.GetGrantedScopes(),
		claims:    claims,
		identity:  identity,
		act:       act,
		issuedTo:  append([]string{}, orig.GetGrantedAudience()...),
		// A subject's not-before voids tokens issued before it, however
		// they are presented.
		authTime: issuedAt(orig),
	}, nil
}

// issuedAt is when an access token (or the grant of a stored record) was
// issued.
func issuedAt(r fosite.Requester) time.Time {
	if sess, ok := r.GetSession().(*Session); ok && sess.AccessClaims != nil && !sess.AccessClaims.IssuedAt.IsZero() {
		return sess.AccessClaims.IssuedAt
	}
	return r.GetRequestedAt()
}

// activeAccessToken returns the request behind one of Keyward's own access
// tokens, rebuilt from its claims, if it is valid and not revoked
// (accessTokens.verify), and its subject and session are still good
// (checkIssuedToken).
func (h *exchangeHandler) activeAccessToken(ctx context.Context, raw string) (fosite.Requester, error) {
	if len(raw) > maxSubjectTokenBytes {
		return nil, fosite.ErrInvalidGrant.WithHint(descTokenTooLarge)
	}
	orig, err := h.fstore.tokens.verify(ctx, raw)
	switch {
	case errors.Is(err, errTokenType):
		return nil, fosite.ErrInvalidGrant.WithHint(descTokenNotAccessToken)
	case errors.Is(err, errNotAccessToken):
		return nil, fosite.ErrInvalidGrant.WithHint(descTokenInvalid).WithWrap(err)
	case errors.Is(err, errTokenDenied):
		return nil, fosite.ErrInvalidGrant.WithHint(descTokenRevoked)
	case err != nil:
		return nil, fosite.ErrServerError.WithWrap(err)
	}
	switch err := h.subjects.checkIssuedToken(ctx, orig); {
	case errors.Is(err, errSessionEnded):
		return nil, fosite.ErrInvalidGrant.WithHint(descTokenSessionEnded).WithWrap(err)
	case errors.Is(err, errSubjectRefused):
		return nil, fosite.ErrInvalidGrant.WithHint(descTokenAccessRemoved).WithWrap(err)
	case err != nil:
		return nil, fosite.ErrServerError.WithWrap(err)
	}
	return orig, nil
}

// actor verifies the actor token (RFC 8693 §4.1): a Keyward access token
// whose subject the client lists in mayAct. It returns the new act claim,
// nesting the subject token's own act.
func (h *exchangeHandler) actor(ctx context.Context, cl fosite.Client, raw, typ string, prior map[string]any) (map[string]any, error) {
	if raw == "" {
		if typ != "" {
			return nil, fosite.ErrInvalidRequest.WithHint(descActorTypeWithoutToken)
		}
		return prior, nil
	}
	if typ != TokenTypeAccessToken && typ != TokenTypeJWT {
		return nil, fosite.ErrInvalidRequest.WithHint(descActorType)
	}
	orig, err := h.activeAccessToken(ctx, raw)
	if errors.Is(err, fosite.ErrInvalidGrant) {
		return nil, fosite.ErrInvalidGrant.WithHint(descActorInvalid).WithWrap(err)
	}
	if err != nil {
		return nil, err
	}
	actorSub := orig.GetSession().GetSubject()
	c, ok := cl.(*client)
	if !ok || !has(c.mayAct, actorSub) {
		return nil, fosite.ErrInvalidRequest.WithHint(descActorNotAllowed)
	}
	act := map[string]any{"sub": actorSub}
	if prior != nil {
		act["act"] = prior
	}
	return act, nil
}

// exchangeAudiences checks the requested audience and resource values
// (RFC 8693 §2.1) against what the client and the subject allow. With none
// requested, the new token gets every audience both allow.
func exchangeAudiences(r fosite.AccessRequester, resources, allowed []string) ([]string, error) {
	requested := append(append([]string{}, r.GetRequestedAudience()...), resources...)
	clientAuds := r.GetClient().GetAudience()
	permitted := func(a string) bool {
		return has(clientAuds, a) && (allowed == nil || has(allowed, a))
	}
	if len(requested) == 0 {
		var out []string
		for _, a := range clientAuds {
			if permitted(a) {
				out = append(out, a)
			}
		}
		if len(out) == 0 {
			return nil, errInvalidTarget.WithHint(descExchangeNoAudience)
		}
		return out, nil
	}
	var out []string
	for _, a := range requested {
		if !permitted(a) {
			return nil, errInvalidTarget.WithHintf(descExchangeAudienceFmt, a)
		}
		if !has(out, a) {
			out = append(out, a)
		}
	}
	return out, nil
}

// exchangeScopes narrows: the result is a subset of what the subject token
// allows and of what the client may request; never wider.
func exchangeScopes(requested, allowed, clientScopes []string) ([]string, error) {
	if len(requested) == 0 {
		var out []string
		for _, s := range allowed {
			if has(clientScopes, s) {
				out = append(out, s)
			}
		}
		return out, nil
	}
	for _, s := range requested {
		if !has(allowed, s) || !has(clientScopes, s) {
			return nil, fosite.ErrInvalidScope.WithHintf(descExchangeScopeFmt, s)
		}
	}
	return requested, nil
}

// parseSubjectToken decodes a subject token once, unverified: the issuer
// routes it, and a trust rule verifies the same decoded token.
func parseSubjectToken(raw string) (*federation.SubjectToken, error) {
	if len(raw) > maxSubjectTokenBytes {
		return nil, errors.New("token too large")
	}
	tok, err := federation.ParseSubjectToken(raw)
	if err != nil {
		return nil, fmt.Errorf("parse token: %w", err)
	}
	if tok.Issuer() == "" {
		return nil, errors.New("token has no iss")
	}
	return tok, nil
}

// errReplayed answers a single-use subject token presented again.
var errReplayed = fosite.ErrInvalidGrant.WithHint(descExchangeReplayed)

// claimJTI records a single-use token id; a second use is a replay. With a
// unit of work the record is created at commit, where a replay racing this
// request makes one of the two fail (the unit answers errReplayed).
func (s *fositeStore) claimJTI(ctx context.Context, id string, exp time.Time) error {
	if exp.IsZero() {
		exp = s.now().Add(24 * time.Hour)
	}
	if u := unitFrom(ctx); u != nil {
		u.mu.Lock()
		u.conflict = errReplayed
		u.mu.Unlock()
	}
	err := s.createGrant(ctx, store.Grant{Kind: store.GrantAssertionJTI, Signature: id, RequestedAt: s.now(), ExpiresAt: exp})
	if errors.Is(err, store.ErrConflict) {
		return errReplayed
	}
	if err != nil {
		return fosite.ErrServerError.WithWrap(err)
	}
	return nil
}
