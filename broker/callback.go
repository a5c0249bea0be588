package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/ory/fosite"

	"github.com/keyward/keyward/federation"
	"github.com/keyward/keyward/store"
)

// CallbackInput is the upstream's redirect back to Keyward.
type CallbackInput struct {
	Query url.Values
	// Binding is the browser's login-cookie value.
	Binding string
}

// Callback finishes a sign-in at the upstream (GET /callback): it checks
// state and the browser binding, redeems the upstream code, verifies the
// upstream ID token (issuer, audience, expiry, signature, nonce), maps the
// identity, opens a Keyward session and answers the original /authorize.
func (si *signIn) Callback(ctx context.Context, in CallbackInput) (_ Outcome, err error) {
	defer func() { err = asRefusal(err) }() // a store outage is RefusedStoreUnavailable
	state := in.Query.Get("state")
	if state == "" {
		return Outcome{}, errExpiredAttempt(errors.New("no state"))
	}
	a, err := si.store.GetLoginAttemptByState(ctx, state)
	if errors.Is(err, store.ErrNotFound) {
		return Outcome{}, errExpiredAttempt(err)
	}
	if err != nil {
		return Outcome{}, fmt.Errorf("get login attempt: %w", err)
	}
	if err := si.checkAttempt(a, in.Binding); err != nil {
		return Outcome{}, err
	}
	// The sign-in's writes (the attempt's deletion, the subject, the
	// session, the code's records) are one unit of work, applied at the
	// end in one transaction (uow.go).
	ctx, unit := withUnitOfWork(ctx)
	defer unit.drop()
	// One use only: the attempt is deleted at commit, where a replay
	// racing this callback finds it gone and loses; a callback that fails
	// deletes it on its own, so a replayed state finds nothing either way.
	_ = unit.deleteLoginAttempt(a.ID)
	committed := false
	defer func() {
		if !committed {
			if derr := si.store.DeleteLoginAttempt(context.WithoutCancel(ctx), a.ID); derr != nil && !errors.Is(derr, store.ErrNotFound) {
				si.log.WarnContext(ctx, "delete a failed login attempt", "err", derr)
			}
		}
	}()
	ar, err := si.reparse(ctx, a)
	if err != nil {
		return Outcome{}, err
	}
	up, ok := si.byID[a.UpstreamID]
	if !ok {
		return Outcome{}, refuse(RefusedUpstreamGone, nil)
	}
	log := si.log.With("upstream", up.ID(), "client_id", a.ClientID)
	// RFC 9207: the answer must come from the upstream the login was sent
	// to before anything in it is believed; its code never goes to this
	// upstream's token endpoint otherwise.
	if err := up.CheckAuthorizationResponseIssuer(in.Query.Get("iss")); err != nil {
		return Outcome{}, si.refuseIssuer(ctx, log, up, err)
	}
	if uerr := federation.CallbackError(in.Query); uerr != nil {
		log.InfoContext(ctx, "upstream refused the sign-in", "event", "login_failed", "err", uerr)
		return si.authorizeError(ctx, ar, fosite.ErrAccessDenied.WithHint(descUpstreamDenied))
	}
	code := in.Query.Get("code")
	if code == "" {
		return Outcome{}, refuse(RefusedNoCode, nil)
	}
	id, err := up.Exchange(ctx, code, a.PKCEVerifier, a.Nonce)
	if na := (*federation.NotAllowedError)(nil); errors.As(err, &na) {
		si.subjects.refuseLogin(ctx, up.ID(), na)
		return Outcome{}, &Refusal{Kind: RefusedNotAllowed, Detail: na.Message, cause: err}
	}
	if err != nil {
		log.InfoContext(ctx, "upstream sign-in could not be verified", "event", "login_failed", "err", err)
		return Outcome{}, &Refusal{Kind: RefusedUpstreamFailed, Upstream: up.Name(), cause: err}
	}
	now := si.now()
	subject := SubjectID(up.ID(), id.Subject)
	if err := gatherSubjectSignIn(unit, subject, up.ID(), id, now); err != nil {
		return Outcome{}, err
	}
	authTime := id.AuthTime
	if authTime.IsZero() || authTime.After(now) {
		authTime = now
	}
	sid := randomString(32)
	sealed, err := si.recheck.sealUpstreamToken(up, sid, id.RefreshToken)
	if err != nil {
		return Outcome{}, err
	}
	sess := store.Session{
		ID:              sid,
		Subject:         subject,
		UpstreamID:      up.ID(),
		UpstreamSubject: id.Subject,
		Identity: store.Identity{
			Email:             id.Email,
			EmailVerified:     id.EmailVerified,
			Name:              id.Name,
			PreferredUsername: id.PreferredUsername,
			Groups:            id.Groups,
			Extra:             id.Extra,
		},
		AuthTime:   authTime,
		CreatedAt:  now,
		LastSeenAt: now,
		ExpiresAt:  now.Add(si.sessionTTL),

		UpstreamRefreshToken: sealed,
		UpstreamCheckedAt:    now,
	}
	if err := unit.createSession(sess); err != nil {
		return Outcome{}, err
	}
	answer, err := si.complete(ctx, ar, sess, a.CreatedAt)
	if err != nil {
		return Outcome{}, err
	}
	_, err = unit.apply(ctx, si.store)
	switch {
	case errors.Is(err, errSubjectRefused):
		log.InfoContext(ctx, "disabled subject refused", "event", "login_failed", "sub", subject)
		return Outcome{}, refuse(RefusedAccessRemoved, err)
	case errors.Is(err, store.ErrNotFound):
		return Outcome{}, errExpiredAttempt(err) // a replay of this callback won
	case err != nil:
		return Outcome{}, fmt.Errorf("store the sign-in: %w", err)
	}
	committed = true
	log.InfoContext(ctx, "signed in", "event", "login_succeeded", "sub", subject, "sid", sess.ID[:8])
	return Outcome{Client: answer, Session: &SessionCookie{ID: sess.ID, ExpiresAt: sess.ExpiresAt}}, nil
}

// refuseIssuer answers an authorization response whose iss is not the
// upstream's (federation.ErrIssuerMismatch: a possible mix-up attack, RFC
// 9207), or names a tenant the upstream does not accept.
func (si *signIn) refuseIssuer(ctx context.Context, log *slog.Logger, up Upstream, err error) error {
	if na := (*federation.NotAllowedError)(nil); errors.As(err, &na) {
		si.subjects.refuseLogin(ctx, up.ID(), na)
		return &Refusal{Kind: RefusedNotAllowed, Detail: na.Message, cause: err}
	}
	if errors.Is(err, federation.ErrUpstreamUnavailable) {
		return errUpstreamUnavailable(up, len(si.upstreams) > 1, err)
	}
	log.WarnContext(ctx, "authorization response refused: not from the upstream the sign-in was sent to (possible mix-up attack)",
		"event", "login_failed", "err", err)
	return &Refusal{Kind: RefusedWrongIssuer, Upstream: up.Name(), cause: err}
}

// reparse validates the stored /authorize request again, exactly as fosite
// did when it arrived.
func (si *signIn) reparse(ctx context.Context, a store.LoginAttempt) (fosite.AuthorizeRequester, error) {
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, si.issuer+"/authorize?"+a.AuthorizeForm.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("rebuild authorize request: %w", err)
	}
	ar, err := si.provider.NewAuthorizeRequest(ctx, r)
	if err != nil {
		return nil, refuse(RefusedAuthorizeStale, err)
	}
	return ar, nil
}

// complete issues the authorization response for a signed-in session.
// requestedAt is when the /authorize request arrived; with prompt=login
// fosite requires the authentication to be no older than it.
func (si *signIn) complete(ctx context.Context, ar fosite.AuthorizeRequester, s store.Session, requestedAt time.Time) (*ClientAnswer, error) {
	for _, scope := range ar.GetRequestedScopes() {
		ar.GrantScope(scope)
	}
	auds := ar.GetRequestedAudience()
	if len(auds) == 0 {
		auds = ar.GetClient().GetAudience()
	}
	for _, aud := range auds {
		ar.GrantAudience(aud)
	}
	sess := si.claims.newTokenSession(s, ar.GetGrantedScopes(), ar.GetClient().GetID(), requestedAt)
	if err := si.recordSessionClient(ctx, s, ar.GetClient().GetID()); err != nil { // for back-channel logout
		return nil, err
	}
	resp, err := si.provider.NewAuthorizeResponse(ctx, ar, sess)
	if Unavailable(err) {
		return nil, err // RefusedStoreUnavailable, not an error redirect to the client
	}
	if err != nil {
		si.log.InfoContext(ctx, "authorize response refused", "client_id", ar.GetClient().GetID(), "err", err)
		return &ClientAnswer{ar: ar, err: err}, nil
	}
	resp.AddParameter("iss", si.issuer) // RFC 9207
	return &ClientAnswer{ar: ar, resp: resp}, nil
}

// claimRules decides what goes into every token Keyward issues to a
// person: sign-in, refresh (fosite keeps the session), and native sign-in
// by token exchange.
type claimRules struct {
	// accessClaims are the identity claims copied into access tokens
	// (Config.AccessTokenClaims).
	accessClaims []string
	now          func() time.Time
}

// newTokenSession decides the claims of the ID token and the access token.
// Identity claims follow the granted scopes (OIDC Core §5.4).
func (c *claimRules) newTokenSession(s store.Session, scopes fosite.Arguments, clientID string, requestedAt time.Time) *Session {
	sess := newSession()
	now := c.now().UTC()
	sess.Subject = s.Subject
	sess.SessionID = s.ID
	sess.UpstreamID = s.UpstreamID
	sess.FamilyStart = now
	idc := sess.DefaultSession.Claims
	idc.Subject = s.Subject
	idc.AuthTime = s.AuthTime.UTC().Truncate(time.Second)
	idc.RequestedAt = requestedAt.UTC().Truncate(time.Second)
	idc.Extra = map[string]any{"sid": s.ID}
	identity := scopedClaims(identityClaims(s.Identity), scopes)
	for k, v := range identity {
		idc.Extra[k] = v
	}
	// at_hash follows the algorithm that signs the client's ID token
	// (idtoken.go setATHash).

	sess.AccessClaims.Subject = s.Subject
	sess.AccessClaims.Extra = map[string]any{"client_id": clientID, "sid": s.ID, "idp": s.UpstreamID}
	if !s.AuthTime.IsZero() {
		sess.AccessClaims.Extra["auth_time"] = s.AuthTime.Unix()
	}
	for _, name := range c.accessClaims {
		if v, ok := identity[name]; ok {
			sess.AccessClaims.Extra[name] = v
		}
	}
	verifiedEmailOnly(idc.Extra, sess.AccessClaims.Extra)
	sess.AccessHeader.Add("typ", "at+jwt") // RFC 9068 §2.1
	return sess
}

// identityClaims are every identity claim a person's sign-in holds, before
// any scope is applied (scopedClaims).
func identityClaims(id store.Identity) map[string]any {
	claims := map[string]any{}
	if id.Email != "" {
		claims["email"] = id.Email
		claims["email_verified"] = id.EmailVerified
	}
	if id.Name != "" {
		claims["name"] = id.Name
	}
	if id.PreferredUsername != "" {
		claims["preferred_username"] = id.PreferredUsername
	}
	if id.Groups != nil {
		claims["groups"] = append([]string{}, id.Groups...)
	}
	// federation keeps the claims copied by claimMapping.claims off
	// Keyward's own claim names.
	for k, v := range id.Extra {
		if _, taken := claims[k]; !taken {
			claims[k] = v
		}
	}
	return claims
}

// claimScope is the scope an identity claim travels with (OIDC Core
// §5.4): email and email_verified with email, groups with groups, and
// name, preferred_username and every claim copied by the upstream's
// claimMapping.claims with profile.
func claimScope(claim string) string {
	switch claim {
	case "email", "email_verified":
		return "email"
	case "groups":
		return "groups"
	default:
		return "profile"
	}
}

// scopedClaims keeps the identity claims whose scope (claimScope) was
// granted. It is the one rule for every token that carries identity
// claims: sign-in, refresh, native sign-in and token exchange.
func scopedClaims(identity map[string]any, scopes fosite.Arguments) map[string]any {
	out := map[string]any{}
	for k, v := range identity {
		if scopes.Has(claimScope(k)) {
			out[k] = v
		}
	}
	return out
}

// verifiedEmailOnly is the email rule of Keyward's tokens, applied to the
// ID-token (and userinfo) claims idc and the access-token claims atc: an
// email goes out only as verified (the upstream said so, or its trustEmail
// treats its emails as verified), so an unverified or unknown one is
// removed rather than sent with email_verified false; and email_verified
// travels with email in access tokens whatever tokens.claims names, since
// edges pass an email on only when it is marked verified.
func verifiedEmailOnly(idc, atc map[string]any) {
	if verified, _ := idc["email_verified"].(bool); !verified {
		for _, c := range []map[string]any{idc, atc} {
			delete(c, "email")
			delete(c, "email_verified")
		}
		return
	}
	if _, ok := atc["email"]; ok {
		atc["email_verified"] = true
	}
}

func parseURL(s string) (*url.URL, error) { return url.Parse(s) }
