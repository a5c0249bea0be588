package broker

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/ory/fosite"

	"github.com/keyward/keyward/store"
)

// Grant types Keyward answers at /token.
var supportedGrants = map[string]bool{
	"authorization_code":   true,
	"refresh_token":        true,
	"client_credentials":   true,
	GrantTypeTokenExchange: true,
}

// tokenEndpoint is the token part of the broker: /token (with the
// token-exchange grant, exchangeHandler, inside fosite), /revoke,
// /introspect and /userinfo. fosite writes its protocol answers; the
// sentences of Keyward's own error_description are in errors.go. It holds
// only what those need.
type tokenEndpoint struct {
	provider fosite.OAuth2Provider
	fstore   *fositeStore
	store    interface {
		GetSession(ctx context.Context, id string) (store.Session, error)
		batcher
	}
	clients  *clientRegistry
	recheck  *recheck
	subjects *subjects
	// groups, when set, gives refreshes the groups SCIM provisioned
	// (provisioning_refresh.go).
	groups groupPush
	log    *slog.Logger
}

// Token handles POST /token (RFC 6749 §4.1.3, §6). The body must already be
// size-limited by the caller.
func (t *tokenEndpoint) Token(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		t.provider.WriteAccessError(ctx, w, nil, fosite.ErrInvalidRequest.WithHint(descTokenBodyUnparsable).WithWrap(err))
		return
	}
	// fosite answers an unknown grant with invalid_request; RFC 6749 §5.2
	// says unsupported_grant_type.
	if gt := r.PostForm.Get("grant_type"); gt != "" && !supportedGrants[gt] {
		t.tokenError(ctx, w, nil, fosite.ErrUnsupportedGrantType.WithHintf(descUnsupportedGrantFmt, gt), "grant_type", gt)
		return
	}
	// One unit of work for the whole request (uow.go): fosite's writes
	// are gathered and applied once, after the tokens are signed.
	ctx, unit := withUnitOfWork(ctx)
	defer unit.drop()
	committed := false
	defer func() {
		if !committed && ctx.Err() == nil { // a client gone away leaves no trace
			t.burnCode(ctx, unit)
		}
	}()
	ar, err := t.provider.NewAccessRequest(ctx, r, newSession())
	if errors.Is(err, errCodeRaced) && ar != nil {
		t.commitError(ctx, w, ar, err) // found by the PKCE lookup (fositestore.go)
		return
	}
	if err != nil {
		t.tokenError(ctx, w, ar, err, clientAuthAttrs(r, err)...)
		return
	}
	if ar.GetGrantTypes().ExactOne("client_credentials") {
		t.grantClientCredentials(ar)
	}
	// The subject check runs when a code is redeemed and at every refresh:
	// access removed after sign-in stops here too.
	if gt := ar.GetGrantTypes(); gt.ExactOne("refresh_token") || gt.ExactOne("authorization_code") {
		if sess, ok := ar.GetSession().(*Session); ok {
			if err := t.subjects.checkSubject(ctx, sess.GetSubject(), sess.FamilyStart); err != nil {
				if errors.Is(err, errSubjectRefused) {
					t.refuseGrant(ctx, w, ar, fosite.ErrInvalidGrant.WithHint(descAccessRemoved).WithWrap(err))
					return
				}
				t.tokenError(ctx, w, ar, fosite.ErrServerError.WithWrap(err))
				return
			}
			if gt.ExactOne("refresh_token") && !t.recheckAtRefresh(ctx, w, ar, sess) {
				return
			}
			// A grant issued before the email rule carries its old claims
			// (fosite refreshes the stored session): apply the rule anew.
			if gt.ExactOne("refresh_token") && sess.DefaultSession != nil && sess.DefaultSession.Claims != nil && sess.AccessClaims != nil {
				verifiedEmailOnly(sess.DefaultSession.Claims.Extra, sess.AccessClaims.Extra)
			}
			if gt.ExactOne("refresh_token") && t.groups != nil {
				if err := t.groups.refreshGroups(ctx, ar, sess); err != nil {
					t.tokenError(ctx, w, ar, fosite.ErrServerError.WithWrap(err))
					return
				}
			}
			// A code issued from a session that has since ended (logout,
			// an admin revoke) is not redeemed: EndSession deleted the
			// session and the session's grants together, but a code
			// written just after that transaction would otherwise
			// outlive it.
			if gt.ExactOne("authorization_code") && sess.SessionID != "" {
				if _, err := t.store.GetSession(ctx, sess.SessionID); errors.Is(err, store.ErrNotFound) {
					t.refuseGrant(ctx, w, ar, fosite.ErrInvalidGrant.WithHint(descCodeSessionEnded))
					return
				} else if err != nil {
					t.tokenError(ctx, w, ar, fosite.ErrServerError.WithWrap(err))
					return
				}
			}
		}
	}
	resp, err := t.provider.NewAccessResponse(ctx, ar)
	if err != nil {
		t.tokenError(ctx, w, ar, err)
		return
	}
	if err := t.commit(ctx, unit); err != nil {
		t.commitError(ctx, w, ar, err)
		return
	}
	committed = true
	t.log.InfoContext(ctx, "tokens issued", "event", "token_issued", "client_id", ar.GetClient().GetID(),
		"grant_type", strings.Join(ar.GetGrantTypes(), " "), "sub", ar.GetSession().GetSubject())
	t.provider.WriteAccessResponse(ctx, w, ar, resp)
}

// commit applies the request's unit of work: one store.Apply, after fosite
// has signed the tokens and before the response is written. A client that
// has gone away by then stores nothing.
func (t *tokenEndpoint) commit(ctx context.Context, unit *unitOfWork) error {
	_, err := unit.apply(ctx, t.store)
	return err
}

// burnCode keeps a code whose redemption failed from being redeemed
// again, as fosite's PKCE handler meant it to (it deletes the code's PKCE
// record before it checks the verifier, so that a wrong verifier cannot be
// followed by a right one): the PKCE deletion the failed request gathered
// is applied on its own.
func (t *tokenEndpoint) burnCode(ctx context.Context, unit *unitOfWork) {
	keys := unit.deletesOf(store.GrantPKCE)
	if len(keys) == 0 {
		return
	}
	if _, err := t.store.Apply(context.WithoutCancel(ctx), store.Batch{GrantDeletes: keys}); err != nil {
		t.log.WarnContext(ctx, "burn the code of a failed redemption", "err", err)
	}
}

// commitError answers a unit of work that was not applied. The request
// that loses a race (its refresh token rotated, or its code redeemed, by a
// concurrent request first; or its grant revoked meanwhile) revokes the
// family, tokens already issued from it included, and gets invalid_grant.
func (t *tokenEndpoint) commitError(ctx context.Context, w http.ResponseWriter, ar fosite.AccessRequester, err error) {
	switch {
	case errors.Is(err, errRefreshRaced):
		t.refuseGrant(ctx, w, ar, fosite.ErrInvalidGrant.WithHint(descRefreshRaced).WithWrap(err))
	case errors.Is(err, errCodeRaced):
		t.refuseGrant(ctx, w, ar, fosite.ErrInvalidGrant.WithHint(descCodeRaced).WithWrap(err))
	case errors.Is(err, store.ErrNotFound):
		// The record redeemed from is gone: a revocation (reuse detected
		// by another request, /revoke, logout, deprovisioning) removed it
		// after it was read.
		t.refuseGrant(ctx, w, ar, fosite.ErrInvalidGrant.WithHint(descRevokedWhileIssuing).WithWrap(err))
	case errors.Is(err, fosite.ErrInvalidGrant):
		t.tokenError(ctx, w, ar, err) // a single-use token replayed
	default:
		t.tokenError(ctx, w, ar, fosite.ErrServerError.WithWrap(err))
	}
}

// recheckAtRefresh runs the re-check for a refresh request and answers it
// with an error when the refresh must stop (false).
func (t *tokenEndpoint) recheckAtRefresh(ctx context.Context, w http.ResponseWriter, ar fosite.AccessRequester, sess *Session) bool {
	err := t.recheck.recheckUpstream(ctx, sess.SessionID, sess.UpstreamID)
	switch {
	case err == nil:
		return true
	case errors.Is(err, errRecheckSessionEnded):
		t.refuseGrant(ctx, w, ar, fosite.ErrInvalidGrant.WithHint(descRecheckSessionEnded).WithWrap(err))
	case errors.Is(err, errUpstreamGone):
		t.refuseGrant(ctx, w, ar, fosite.ErrInvalidGrant.WithHint(descUpstreamGone).WithWrap(err))
	case errors.Is(err, errUnvouched):
		t.refuseGrant(ctx, w, ar, fosite.ErrInvalidGrant.WithHint(descUnvouched).WithWrap(err))
	default:
		t.tokenError(ctx, w, ar, fosite.ErrServerError.WithWrap(err))
	}
	return false
}

// grantClientCredentials grants what fosite's client-credentials handler
// validated (fosite leaves granting to the application): the requested
// scopes, and the requested audiences or else every audience of the client.
// The subject is the client itself.
func (t *tokenEndpoint) grantClientCredentials(ar fosite.AccessRequester) {
	for _, s := range ar.GetRequestedScopes() {
		ar.GrantScope(s)
	}
	auds := ar.GetRequestedAudience()
	if len(auds) == 0 {
		auds = ar.GetClient().GetAudience()
	}
	for _, a := range auds {
		ar.GrantAudience(a)
	}
	if sess, ok := ar.GetSession().(*Session); ok {
		id := ar.GetClient().GetID()
		sess.Subject = id
		sess.AccessClaims.Subject = id
		sess.AccessClaims.Extra = map[string]any{"client_id": id}
		sess.AccessHeader.Add("typ", "at+jwt")
	}
}

// clientAuthAttrs are the log attributes of a failed client
// authentication: the client_id the request claimed and whether no client
// has it or its secret was wrong (never the secret).
func clientAuthAttrs(r *http.Request, err error) []any {
	var rfc *fosite.RFC6749Error
	if !errors.As(err, &rfc) || rfc.ErrorField != fosite.ErrInvalidClient.ErrorField {
		return nil
	}
	claimed, _, ok := BasicCredentials(r)
	if !ok {
		claimed = r.PostForm.Get("client_id")
	}
	reason := "other"
	switch {
	case errors.Is(err, errUnknownClient):
		reason = "unknown_client"
	case errors.Is(err, errWrongSecret):
		reason = "wrong_secret"
	}
	return []any{"claimed_client_id", claimed, "client_auth", reason}
}

// tokenError logs err with attrs and answers it with Keyward's
// error_description (tokenDescription, descriptions.go).
func (t *tokenEndpoint) tokenError(ctx context.Context, w http.ResponseWriter, ar fosite.AccessRequester, err error, attrs ...any) {
	if clientGone(ctx, err) {
		// Nobody is left to answer: not an error of Keyward's, and the
		// unit of work was not applied.
		t.log.InfoContext(ctx, "token request abandoned: the client went away", append(attrs, "cause", context.Cause(ctx).Error())...)
		writeError(w, ErrTemporarilyUnavailable) // if anyone still reads it
		return
	}
	if Unavailable(err) {
		t.writeUnavailable(ctx, w, "token", err)
		return
	}
	var rfc *fosite.RFC6749Error
	level := "info"
	if errors.As(err, &rfc) && rfc.CodeField >= 500 {
		level = "error"
	}
	attrs = append(attrs, "err", err)
	if cause := errors.Unwrap(err); cause != nil {
		// fosite's error text is only its code; the cause says why.
		attrs = append(attrs, "cause", cause.Error())
	}
	if ar != nil && ar.GetClient() != nil {
		attrs = append(attrs, "client_id", ar.GetClient().GetID())
	}
	// The event the token metrics count (web/metrics_events.go).
	code := ErrServerError.Code
	if rfc != nil {
		code = rfc.ErrorField
	}
	attrs = append(attrs, "event", "token_refused", "grant_type", requestGrantType(ar), "error", code)
	if rfc != nil {
		if token := reusedToken(rfc); token != "" {
			attrs = append(attrs, "reused", token)
		}
	}
	if level == "error" {
		t.log.ErrorContext(ctx, "token request failed", attrs...)
	} else {
		t.log.InfoContext(ctx, "token request refused", attrs...)
	}
	t.provider.WriteAccessError(ctx, w, ar, tokenDescription(err))
}

// requestGrantType is the grant_type of ar ("" when the request did not
// parse that far).
func requestGrantType(ar fosite.AccessRequester) string {
	if ar == nil {
		return ""
	}
	return strings.Join(ar.GetGrantTypes(), " ")
}

// reusedToken names the token whose reuse fosite detected in rfc
// (refresh_token, authorization_code), or "".
func reusedToken(rfc *fosite.RFC6749Error) string {
	switch fositeHintWords[rfc.HintField] {
	case descRefreshReused:
		return "refresh_token"
	case descCodeReused:
		return "authorization_code"
	}
	return ""
}

// refuseGrant revokes the request's refresh family and access tokens (the
// grant must not be used again) and answers with err. The revocation is
// not gathered into the unit of work and stands even if the client has
// gone away meanwhile.
func (t *tokenEndpoint) refuseGrant(ctx context.Context, w http.ResponseWriter, ar fosite.AccessRequester, err error) {
	// Refresh tokens first: once they are gone no concurrent refresh of
	// the family can commit (its unit of work finds its token missing),
	// so the access tokens revoked next include every one issued.
	rctx := context.WithoutCancel(ctx)
	if rerr := t.fstore.RevokeRefreshToken(rctx, ar.GetID()); rerr != nil {
		t.log.ErrorContext(ctx, "revoke the refresh tokens of a refused grant", "client_id", ar.GetClient().GetID(), "err", rerr)
	}
	if rerr := t.fstore.RevokeAccessToken(rctx, ar.GetID()); rerr != nil {
		t.log.ErrorContext(ctx, "revoke the access tokens of a refused grant", "client_id", ar.GetClient().GetID(), "err", rerr)
	}
	t.tokenError(ctx, w, ar, err)
}

// clientGone reports whether a request failed because its client went
// away (its context was cancelled), not because of anything Keyward did.
func clientGone(ctx context.Context, err error) bool {
	return ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ctx.Err()))
}

// Revoke handles POST /revoke (RFC 7009).
func (t *tokenEndpoint) Revoke(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	err := t.provider.NewRevocationRequest(ctx, r)
	// fosite answers a failed store lookup with temporarily_unavailable but
	// writes it as 200 (RFC 7009 §2.2.1 wants 503).
	if Unavailable(err) || errors.Is(err, fosite.ErrTemporarilyUnavailable) {
		t.writeUnavailable(ctx, w, "revocation", err)
		return
	}
	if err != nil {
		t.log.InfoContext(ctx, "revocation refused", append(clientAuthAttrs(r, err), "err", err)...)
	}
	// fosite writes a failed client authentication as a bare 401 with
	// its generic sentence; RFC 6749 §5.2 wants the challenge too.
	var rfc *fosite.RFC6749Error
	if errors.As(err, &rfc) && rfc.ErrorField == fosite.ErrInvalidClient.ErrorField {
		writeError(w, ErrInvalidClient.WithDescription(describeFositeError(err, rfc)))
		return
	}
	t.provider.WriteRevocationResponse(ctx, w, err)
}

// Introspect handles POST /introspect (RFC 7662). Only a confidential
// client authenticating with HTTP Basic (client_secret_basic, the one
// method discovery advertises for it) may ask, and only about tokens it
// has a stake in (mayIntrospect); any other token is inactive to it.
func (t *tokenEndpoint) Introspect(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	caller, err := t.authenticateIntrospection(ctx, r)
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			e = ErrServerError
		}
		t.log.InfoContext(ctx, "introspection refused", "err", err)
		writeError(w, e)
		return
	}
	ir, err := t.provider.NewIntrospectionRequest(ctx, r, newSession())
	if Unavailable(err) {
		t.writeUnavailable(ctx, w, "introspection", err)
		return
	}
	if err != nil {
		var rfc *fosite.RFC6749Error
		if errors.As(err, &rfc) && rfc.ErrorField == fosite.ErrInactiveToken.ErrorField {
			// An invalid token is an answer, not an error.
			t.provider.WriteIntrospectionResponse(ctx, w, ir)
			return
		}
		t.log.InfoContext(ctx, "introspection refused", "err", err)
		t.provider.WriteIntrospectionError(ctx, w, err)
		return
	}
	if !mayIntrospect(caller, ir) {
		t.provider.WriteIntrospectionResponse(ctx, w, &fosite.IntrospectionResponse{Active: false})
		return
	}
	// fosite finds the token's record; whether its subject and session
	// are still good is Keyward's to say.
	if err := t.subjects.checkIssuedToken(ctx, ir.GetAccessRequester()); err != nil {
		switch {
		case Unavailable(err):
			t.writeUnavailable(ctx, w, "introspection", err)
			return
		case !errors.Is(err, errSessionEnded) && !errors.Is(err, errSubjectRefused):
			t.log.ErrorContext(ctx, "introspection failed", "err", err)
			writeError(w, ErrServerError)
			return
		}
		ir = &fosite.IntrospectionResponse{Active: false}
	}
	t.provider.WriteIntrospectionResponse(ctx, w, ir)
}

// authenticateIntrospection authenticates the caller of /introspect.
// fosite's NewIntrospectionRequest would take a bearer token from the
// Authorization header, the form or the query as the caller's credential
// (fosite.AccessTokenFromRequest), so that any holder of any access token
// could introspect every token; a request carrying one is refused here,
// before fosite sees it. RFC 6749 §2.3.1, §5.2.
func (t *tokenEndpoint) authenticateIntrospection(ctx context.Context, r *http.Request) (clientID string, _ error) {
	// The form fosite would read: query, body and multipart values.
	if err := r.ParseMultipartForm(introspectionFormBytes); err != nil && !errors.Is(err, http.ErrNotMultipart) {
		return "", ErrInvalidRequest.WithDescription(descIntrospectionBodyUnparsable).WithCause(err)
	}
	if _, ok := r.Form["access_token"]; ok {
		return "", ErrInvalidClient.WithDescription(descIntrospectionBearer)
	}
	id, secret, ok := BasicCredentials(r)
	if !ok {
		return "", ErrInvalidClient.WithDescription(descIntrospectionNoClient)
	}
	if _, err := t.clients.authenticate(ctx, id, secret); err != nil {
		return "", ErrInvalidClient.WithDescription(descIntrospectionClientFailed).WithCause(err)
	}
	return id, nil
}

// mayIntrospect says whether the authenticated client caller has a stake
// in the token ir found (RFC 7662 §4 leaves the choice to the server): a
// refresh token only to the client it was issued to, which alone ever
// presents it; an access token to that client and to the audiences it was
// issued for (the resource servers that receive it). Anyone else learns
// nothing, not even that the token is live.
func mayIntrospect(caller string, ir fosite.IntrospectionResponder) bool {
	ar := ir.GetAccessRequester()
	if ar == nil || ar.GetClient() == nil {
		return false
	}
	if ar.GetClient().GetID() == caller {
		return true
	}
	return ir.GetTokenUse() == fosite.AccessToken && slices.Contains(ar.GetGrantedAudience(), caller)
}

// introspectionFormBytes is the most of a multipart introspection form
// kept in memory, as fosite reads it.
const introspectionFormBytes = 1 << 20

// UserInfo handles GET and POST /userinfo (OIDC Core §5.3).
func (t *tokenEndpoint) UserInfo(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	token := bearerToken(r)
	if token == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="keyward"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_request", "error_description": descUserInfoNoToken})
		return
	}
	use, ar, err := t.provider.IntrospectToken(ctx, token, fosite.AccessToken, newSession())
	if err == nil && use != fosite.AccessToken {
		err = errors.New("not an access token") // fosite falls back to refresh tokens
	}
	if Unavailable(err) {
		t.writeUnavailable(ctx, w, "userinfo", err)
		return
	}
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="keyward", error="invalid_token"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token", "error_description": descUserInfoInvalidToken})
		return
	}
	if !ar.GetGrantedScopes().Has("openid") {
		w.Header().Set("WWW-Authenticate", `Bearer realm="keyward", error="insufficient_scope", scope="openid"`)
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "insufficient_scope", "error_description": descUserInfoNoOpenID})
		return
	}
	sess, ok := ar.GetSession().(*Session)
	if !ok {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "server_error"})
		return
	}
	if err := t.subjects.checkIssuedToken(ctx, ar); err != nil {
		desc := "Access has been removed."
		switch {
		case Unavailable(err):
			t.writeUnavailable(ctx, w, "userinfo", err)
			return
		case errors.Is(err, errSessionEnded):
			desc = "The sign-in session this access token was issued in has ended."
		case !errors.Is(err, errSubjectRefused):
			t.log.ErrorContext(ctx, "userinfo failed", "err", err)
			writeError(w, ErrServerError)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="keyward", error="invalid_token"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token", "error_description": desc})
		return
	}
	claims, err := t.userInfoClaims(ctx, ar, sess)
	if Unavailable(err) {
		t.writeUnavailable(ctx, w, "userinfo", err)
		return
	}
	if err != nil {
		t.log.ErrorContext(ctx, "userinfo failed", "err", err)
		writeError(w, ErrServerError)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, claims)
}

func bearerToken(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	if r.Method == http.MethodPost {
		return r.PostFormValue("access_token")
	}
	return ""
}

// writeError answers e as RFC 6749 §5.2 JSON; a 401 carries the HTTP
// Basic challenge that names how to authenticate.
func writeError(w http.ResponseWriter, e *Error) {
	w.Header().Set("Cache-Control", "no-store")
	if e.HTTPStatus() == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="keyward"`)
	}
	writeJSON(w, e.HTTPStatus(), map[string]string{"error": e.Code, "error_description": e.Description})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Discovery is the OpenID Provider metadata (OIDC Discovery §3, RFC 8414),
// serialized once.
func (b *Broker) Discovery() []byte { return b.discovery }

func (b *Broker) buildDiscovery() []byte {
	iss := b.issuer
	doc := map[string]any{
		"issuer":                                         iss,
		"authorization_endpoint":                         iss + "/authorize",
		"token_endpoint":                                 iss + "/token",
		"jwks_uri":                                       iss + "/keys",
		"userinfo_endpoint":                              iss + "/userinfo",
		"revocation_endpoint":                            iss + "/revoke",
		"introspection_endpoint":                         iss + "/introspect",
		"end_session_endpoint":                           iss + "/end_session",
		"backchannel_logout_supported":                   true,
		"backchannel_logout_session_supported":           true,
		"response_types_supported":                       []string{"code"},
		"response_modes_supported":                       []string{"query"},
		"grant_types_supported":                          []string{"authorization_code", "refresh_token", "client_credentials", GrantTypeTokenExchange},
		"subject_types_supported":                        []string{"public"},
		"id_token_signing_alg_values_supported":          b.keys.Algorithms(), // what clients may ask for (idTokenSignedResponseAlg)
		"scopes_supported":                               []string{"openid", "email", "profile", "groups", "offline_access"},
		"claims_supported":                               []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "sid", "email", "email_verified", "name", "preferred_username", "groups"},
		"code_challenge_methods_supported":               []string{"S256"},
		"token_endpoint_auth_methods_supported":          []string{"client_secret_basic", "client_secret_post", "none"},
		"revocation_endpoint_auth_methods_supported":     []string{"client_secret_basic", "client_secret_post", "none"},
		"introspection_endpoint_auth_methods_supported":  []string{"client_secret_basic"},
		"prompt_values_supported":                        promptValues, // login.go
		"authorization_response_iss_parameter_supported": true,
		"claims_parameter_supported":                     false,
		"request_parameter_supported":                    false,
		"request_uri_parameter_supported":                false,
	}
	out, _ := json.MarshalIndent(doc, "", "  ")
	return out
}
