package broker

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	fjwt "github.com/ory/fosite/token/jwt"

	"github.com/keyward/keyward/federation"
	"github.com/keyward/keyward/store"
)

// ActorEndSession is the audit actor of sessions ended at /end_session.
const ActorEndSession = "end-session"

// maxIDTokenHintBytes bounds the id_token_hint that is parsed.
const maxIDTokenHintBytes = 16 << 10

// UpstreamLogoutPath, under the issuer, is where upstreams return the
// browser after signing the person out (upstreams[].upstreamLogout):
// register <issuer>/logout/upstream-done at the provider as a post-logout
// redirect (sign-out) URL.
const UpstreamLogoutPath = "/logout/upstream-done"

// EndSessionInput is an /end_session request (OIDC RP-Initiated Logout 1.0
// §2) as web hands it over.
type EndSessionInput struct {
	IDTokenHint           string
	ClientID              string
	PostLogoutRedirectURI string
	State                 string
	// SessionID is the Keyward session named by the session cookie (its
	// seal already checked by web); empty when there is none. It is the
	// only session a logout can end.
	SessionID string
	// Confirmed: the person confirmed on Keyward's confirmation page, whose
	// CSRF token web checked against the session cookie.
	Confirmed bool
}

// EndSessionOutcome tells web what to do after the sessions ended: redirect
// to RedirectURL, or show the "Signed out" page when it is empty. The
// session cookie is to be cleared in both cases.
type EndSessionOutcome struct {
	RedirectURL string
	// Ended reports that the cookie's Keyward session was ended.
	Ended bool
	// Confirm, when non-nil, means nothing was ended: the request did
	// not show that it comes from the session's own client, so web asks
	// the person first (a POST form with a CSRF token bound to the session
	// cookie) and leaves the cookie alone. RedirectURL is then empty.
	Confirm *LogoutConfirmation
	// Upstream, when non-nil, is a sign-out at the ended session's
	// upstream for the browser to go through first; its Next is
	// RedirectURL.
	Upstream *UpstreamLogout
}

// UpstreamLogout is a sign-out at an upstream (upstreams[].upstreamLogout).
// web sends the browser to URL, keeping State and Next in a sealed cookie,
// and at UpstreamLogoutPath goes on to Next: the destination validated
// before leaving, never one the request names.
type UpstreamLogout struct {
	UpstreamID string
	// URL is the upstream's logout request, returning the browser to
	// <issuer>/logout/upstream-done.
	URL string
	// State went with URL; a state that comes back must equal it. Empty
	// when none was sent (a configured logoutURL is used as given).
	State string
	// Next is where the browser goes afterwards: the client's validated
	// post_logout_redirect_uri with its state, or "" for the "Signed out"
	// page.
	Next string
}

// LogoutConfirmation is what the sign-out confirmation page shows and
// posts back (with Confirmed) once the person agrees. Its values were
// validated; they are validated again when they come back.
type LogoutConfirmation struct {
	// ClientID is the client the request named (by id_token_hint or
	// client_id), "" when none; ClientName is its display name.
	ClientID, ClientName string
	// PostLogoutRedirectURI and State are the request's, as given.
	PostLogoutRedirectURI, State string
}

// upstreamLogouter is the part of an upstream that signs people out there
// (*federation.Upstream and *federation.LazyUpstream have it; other
// Upstream implementations never sign out upstream).
type upstreamLogouter interface {
	UpstreamLogout() bool
	LogoutRequest(postLogoutRedirectURI, state string) (federation.LogoutRequest, error)
}

var (
	_ upstreamLogouter = (*federation.Upstream)(nil)
	_ upstreamLogouter = (*federation.LazyUpstream)(nil)
)

// rpLogout is RP-initiated logout (/end_session): it checks the request,
// ends the browser's session through the administration part and says
// where the browser goes next, through the upstream's logout when that is
// on. It holds only what that needs.
type rpLogout struct {
	store interface {
		GetSession(ctx context.Context, id string) (store.Session, error)
	}
	clients   *clientRegistry
	upstreams map[string]Upstream // by id
	keys      signer              // checks id_token_hint
	issuer    string
	sessions  *admin // ends sessions (RevokeSession)
	log       *slog.Logger
}

// EndSession handles GET and POST /end_session. Everything is checked
// before anything is ended; a failure is a *Refusal, never a redirect:
//
//   - id_token_hint, when given, must be signed by one of Keyward's
//     published keys and name Keyward as iss; an expired hint is accepted
//     (§2: the hint may have expired). Its aud names the client, which must
//     be client_id when both are given.
//   - post_logout_redirect_uri must exactly match one of that client's
//     registered postLogoutRedirectURIs; state is appended to it.
//
// Only the session named by the cookie can end; a hint never names one to
// end, since anyone may hold someone's ID token (an expired one too), and
// §6 asks for the person's confirmation without a hint that fits. It
// ends at once when the hint's sid names that same session, or when the
// person confirmed (in.Confirmed); otherwise the outcome asks for a
// confirmation (Outcome.Confirm) and nothing ends. Without a live cookie
// session there is nothing to end or to confirm. The session ends as
// RevokeSession ends a session (grants deleted, a session feed entry, an
// audit event by ActorEndSession). When its upstream has upstream logout
// on, Outcome.Upstream says where the browser signs out there (see
// upstreamLogout).
func (l *rpLogout) EndSession(ctx context.Context, in EndSessionInput) (_ EndSessionOutcome, err error) {
	defer func() { err = asRefusal(err) }() // a store outage is RefusedStoreUnavailable
	clientID := in.ClientID
	var hintSID string
	if in.IDTokenHint != "" && !in.Confirmed {
		aud, sid, err := l.checkIDTokenHint(ctx, in.IDTokenHint, in.ClientID)
		if err != nil {
			return EndSessionOutcome{}, err
		}
		clientID, hintSID = aud, sid
	}
	var redirect string
	if in.PostLogoutRedirectURI != "" {
		u, err := l.postLogoutRedirect(clientID, in.PostLogoutRedirectURI, in.State)
		if err != nil {
			return EndSessionOutcome{}, err
		}
		redirect = u
	} else if clientID != "" {
		if _, ok := l.clients.get(clientID); !ok {
			return EndSessionOutcome{}, refuse(RefusedLogoutUnknownClient, nil)
		}
	}

	sid := in.SessionID
	if sid != "" && !in.Confirmed && hintSID != sid {
		_, err := l.store.GetSession(ctx, sid)
		switch {
		case errors.Is(err, store.ErrNotFound):
			sid = "" // already ended: nothing to confirm
		case err != nil:
			return EndSessionOutcome{}, fmt.Errorf("get session: %w", err)
		default:
			c := &LogoutConfirmation{ClientID: clientID, ClientName: clientID, PostLogoutRedirectURI: in.PostLogoutRedirectURI, State: in.State}
			if cl, ok := l.clients.get(clientID); ok {
				c.ClientName = cl.name
			}
			l.log.InfoContext(ctx, "end session: asking the person to confirm", "event", "end_session", "client_id", clientID,
				"hint", in.IDTokenHint != "")
			return EndSessionOutcome{Confirm: c}, nil
		}
	}

	out := EndSessionOutcome{RedirectURL: redirect}
	reason := "RP-initiated logout"
	if clientID != "" {
		reason += " by " + clientID
	}
	if in.Confirmed {
		reason += ", confirmed"
	}
	var upstreamID string
	if sid != "" {
		rev, err := l.sessions.RevokeSession(ctx, sid, reason, ActorEndSession)
		switch {
		case errors.Is(err, ErrUnknownSession):
			// Already ended: nothing left to do.
		case err != nil:
			return EndSessionOutcome{}, fmt.Errorf("end session: %w", err)
		default:
			out.Ended, upstreamID = true, rev.Session.UpstreamID
		}
	}
	out.Upstream = l.upstreamLogout(ctx, upstreamID, redirect)
	l.log.InfoContext(ctx, "end session", "event", "end_session", "client_id", clientID,
		"ended", out.Ended, "confirmed", in.Confirmed, "redirect", redirect != "", "upstream_logout", out.Upstream != nil)
	return out, nil
}

// upstreamLogout returns the sign-out at upstream id, with a fresh state,
// when that upstream has upstream logout on; nil when it is off, when the
// upstream is no longer configured, or when no logout request can be built
// (no logout URL, or discovery still pending without a logoutURL): that is
// logged at Warn, and the person, signed out of Keyward all the same, goes
// straight to next.
func (l *rpLogout) upstreamLogout(ctx context.Context, id, next string) *UpstreamLogout {
	up, ok := l.upstreams[id]
	if id == "" || !ok {
		return nil
	}
	lo, ok := up.(upstreamLogouter)
	if !ok || !lo.UpstreamLogout() {
		return nil
	}
	state := rand.Text()
	req, err := lo.LogoutRequest(l.issuer+UpstreamLogoutPath, state)
	switch {
	case errors.Is(err, federation.ErrNoLogoutURL):
		l.log.WarnContext(ctx, "upstream logout is on but the upstream has no logout URL (its discovery names no end_session_endpoint); set upstreams[].logoutURL, or turn upstreamLogout off",
			"event", "end_session", "upstream", id)
		return nil
	case err != nil:
		l.log.WarnContext(ctx, "upstream logout skipped: the person was signed out of Keyward only", "event", "end_session", "upstream", id, "err", err)
		return nil
	}
	if !req.StateSent {
		state = ""
	}
	return &UpstreamLogout{UpstreamID: id, URL: req.URL, State: state, Next: next}
}

// checkIDTokenHint verifies an id_token_hint and returns the client it was
// issued to and its sid claim.
func (l *rpLogout) checkIDTokenHint(ctx context.Context, raw, clientID string) (client, sid string, err error) {
	bad := func(cause error) (string, string, error) {
		return "", "", refuse(RefusedLogoutHint, cause)
	}
	if len(raw) > maxIDTokenHintBytes {
		return bad(errors.New("id_token_hint too large"))
	}
	tok, err := fositeSigner{keys: l.keys}.Decode(ctx, raw)
	if err != nil && !onlyTimeClaimsInvalid(err) {
		return bad(err)
	}
	if tok == nil || tok.Claims == nil {
		return bad(errors.New("id_token_hint has no claims"))
	}
	// Another of Keyward's JWTs (an access or logout token) is no hint.
	if typ, _ := tok.Header["typ"].(string); typ != "" && !strings.EqualFold(typ, "JWT") {
		return bad(fmt.Errorf("id_token_hint has typ %q", typ))
	}
	if iss, _ := tok.Claims["iss"].(string); iss != l.issuer {
		return bad(fmt.Errorf("id_token_hint iss %q", iss))
	}
	auds := claimStrings(tok.Claims["aud"])
	switch {
	case clientID != "":
		if !has(auds, clientID) {
			return "", "", refuse(RefusedLogoutClientMismatch, nil)
		}
		client = clientID
	case len(auds) == 1:
		client = auds[0]
	default:
		client, _ = tok.Claims["azp"].(string)
		if client == "" || !has(auds, client) {
			return bad(errors.New("id_token_hint names no single client"))
		}
	}
	sid, _ = tok.Claims["sid"].(string)
	return client, sid, nil
}

// onlyTimeClaimsInvalid reports that err is fosite's claim validation
// failing on exp, iat or nbf alone: the signature was verified, the token
// is merely outside its lifetime (by the real clock, which fosite uses).
func onlyTimeClaimsInvalid(err error) bool {
	var ve *fjwt.ValidationError
	if !errors.As(err, &ve) || ve.Errors == 0 {
		return false
	}
	const timeBits = fjwt.ValidationErrorExpired | fjwt.ValidationErrorIssuedAt | fjwt.ValidationErrorNotValidYet
	return ve.Errors&^timeBits == 0
}

// postLogoutRedirect returns uri with state appended if uri is one of the
// client's registered post-logout redirect URIs (compared exactly).
func (l *rpLogout) postLogoutRedirect(clientID, uri, state string) (string, error) {
	if clientID == "" {
		return "", refuse(RefusedLogoutNoClient, nil)
	}
	c, ok := l.clients.get(clientID)
	if !ok {
		return "", refuse(RefusedLogoutUnknownClient, nil)
	}
	if !has(c.postLogoutRedirectURIs, uri) {
		return "", refuse(RefusedLogoutUnregisteredRedirect, nil)
	}
	if state == "" {
		return uri, nil
	}
	u, err := url.Parse(uri)
	if err != nil {
		return "", refuse(RefusedLogoutBadRedirect, err)
	}
	q := u.Query()
	q.Set("state", state)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// claimStrings reads a claim that is a string or an array of strings.
func claimStrings(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []string:
		return v
	case []any:
		var out []string
		for _, x := range v {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
