package federation

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/golang-jwt/jwt/v5"

	"github.com/keyward/keyward/web/loopback"
)

// BackchannelLogoutEvent is the member of a logout token's events claim
// that makes it one. OIDC Back-Channel Logout 1.0 §2.4
const BackchannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// ErrInvalidLogoutToken: a back-channel logout token fails a check of OIDC
// Back-Channel Logout 1.0 §2.6.
var ErrInvalidLogoutToken = errors.New("invalid logout token")

// LogoutClaims are what a verified logout token names: the upstream
// subject, the upstream session, or both.
type LogoutClaims struct {
	Subject   string
	SessionID string
}

// VerifyLogoutToken verifies raw, a back-channel logout token this upstream
// POSTed to Keyward (OIDC Back-Channel Logout 1.0 §2.6): at most 16 KiB; typ
// logout+jwt, JWT or absent; signed by the upstream's keys (those of the
// browser verifier, with the algorithms discovery advertises); iss exactly
// the upstream's; aud Keyward's client ID at the upstream; exp not passed;
// iat present; events holding the back-channel logout event; no nonce; and
// sub or sid. Every failure wraps ErrInvalidLogoutToken (the error never
// contains the token). Replays are not detected here: the broker records
// each token's jti until its exp and refuses a second use
// (broker/backchannel.go).
func (u *Upstream) VerifyLogoutToken(ctx context.Context, raw string) (LogoutClaims, error) {
	const op = "federation: verify logout token"
	fail := func(format string, args ...any) (LogoutClaims, error) {
		return LogoutClaims{}, fmt.Errorf("%s: %w: %s", op, ErrInvalidLogoutToken, fmt.Sprintf(format, args...))
	}
	if raw == "" {
		return fail("empty")
	}
	if len(raw) > maxSubjectToken {
		return fail("larger than 16 KiB")
	}
	// Cheap checks on the unverified token first: they need no key fetch.
	pre := jwt.MapClaims{}
	tok, _, err := jwt.NewParser().ParseUnverified(raw, pre)
	if err != nil {
		return fail("%v", err)
	}
	if typ, ok := tok.Header["typ"]; ok {
		s, _ := typ.(string)
		if !strings.EqualFold(s, "logout+jwt") && !strings.EqualFold(s, "application/logout+jwt") && !strings.EqualFold(s, "JWT") {
			return fail("typ %q is not logout+jwt", clean(s, 40))
		}
	}
	if err := checkLogoutClaims(pre); err != nil {
		return fail("%v", err)
	}
	if iss, _ := pre["iss"].(string); iss != u.cfg.Issuer {
		return fail("iss %q is not the upstream's", clean(iss, 100))
	}
	// Signature, iss, aud = our client ID, exp.
	idt, err := u.verifier.Verify(ctx, raw)
	if err != nil {
		return fail("%v", redact(err))
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return fail("%v", err)
	}
	if err := checkLogoutClaims(claims); err != nil { // again, on the verified claims
		return fail("%v", err)
	}
	sid, _ := claims["sid"].(string)
	out := LogoutClaims{Subject: idt.Subject, SessionID: sid}
	u.logger.DebugContext(ctx, "logout token verified", "sub", out.Subject, "has_sid", sid != "")
	return out, nil
}

// checkLogoutClaims checks what makes claims a logout token rather than an
// ID token. OIDC Back-Channel Logout 1.0 §2.4, §2.6 steps 3–6
func checkLogoutClaims(c map[string]any) error {
	if _, ok := c["nonce"]; ok {
		return errors.New("nonce: a logout token must not have one")
	}
	if _, ok := c["iat"].(float64); !ok {
		return errors.New("iat: required")
	}
	events, ok := c["events"].(map[string]any)
	if !ok {
		return errors.New("events: required, a JSON object")
	}
	if _, ok := events[BackchannelLogoutEvent].(map[string]any); !ok {
		return fmt.Errorf("events: must hold %s as a JSON object", BackchannelLogoutEvent)
	}
	sub, subOK := c["sub"].(string)
	sid, sidOK := c["sid"].(string)
	if _, has := c["sub"]; has && (!subOK || sub == "") {
		return errors.New("sub: must be a non-empty string")
	}
	if _, has := c["sid"]; has && (!sidOK || sid == "") {
		return errors.New("sid: must be a non-empty string")
	}
	if sub == "" && sid == "" {
		return errors.New("sub or sid is required")
	}
	return nil
}

// PostLogoutPlaceholder, written in Config.LogoutURL, is replaced by the
// post-logout redirect URI, query-escaped, when the browser is sent there:
// https://<domain>/logout?client_id=…&logout_uri={post_logout_redirect_uri}
// (Cognito). Write it in the query, braces as they are.
const PostLogoutPlaceholder = "{post_logout_redirect_uri}"

// ErrNoLogoutURL: the upstream has no logout URL (discovery names no
// end_session_endpoint and Config.LogoutURL is empty).
var ErrNoLogoutURL = errors.New("no logout URL: discovery names no end_session_endpoint and logout_url is not set")

// LogoutRequest is where to send a browser so that the person is signed out
// at the upstream.
type LogoutRequest struct {
	URL string
	// StateSent reports that URL carries the state, which the upstream
	// returns to the post-logout redirect URI (OIDC RP-Initiated Logout
	// 1.0 §3). A configured LogoutURL carries none.
	StateSent bool
}

// UpstreamLogout reports whether Config.UpstreamLogout is on.
func (u *Upstream) UpstreamLogout() bool { return u.cfg.UpstreamLogout }

// LogoutRequest builds the redirect that signs the person out at the
// upstream and returns the browser to postLogoutRedirectURI (which must be
// registered at the upstream):
//
//   - Config.LogoutURL, when set, as given, with PostLogoutPlaceholder
//     replaced by postLogoutRedirectURI (query-escaped); nothing is added.
//   - Else discovery's end_session_endpoint, its own query kept, with
//     client_id, post_logout_redirect_uri and state (OIDC RP-Initiated
//     Logout 1.0 §2). No id_token_hint: Keyward keeps no upstream ID token.
//
// It does no I/O. Neither known: an error wrapping ErrNoLogoutURL.
func (u *Upstream) LogoutRequest(postLogoutRedirectURI, state string) (LogoutRequest, error) {
	return logoutRequest(u.cfg, u.endSession, postLogoutRedirectURI, state)
}

func logoutRequest(c Config, endSession, postLogoutRedirectURI, state string) (LogoutRequest, error) {
	if c.LogoutURL != "" {
		return LogoutRequest{URL: strings.ReplaceAll(c.LogoutURL, PostLogoutPlaceholder, url.QueryEscape(postLogoutRedirectURI))}, nil
	}
	if endSession == "" {
		return LogoutRequest{}, fmt.Errorf("federation: upstream %q: %w", c.ID, ErrNoLogoutURL)
	}
	u, err := url.Parse(endSession)
	if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" ||
		(u.Scheme != "https" && (u.Scheme != "http" || !loopback.Host(u.Hostname()))) {
		return LogoutRequest{}, fmt.Errorf("federation: upstream %q: discovery's end_session_endpoint %.200q is not an absolute https URL; set logout_url", c.ID, endSession)
	}
	q := u.Query()
	q.Set("client_id", c.ClientID)
	if postLogoutRedirectURI != "" {
		q.Set("post_logout_redirect_uri", postLogoutRedirectURI)
	}
	if state != "" {
		q.Set("state", state)
	}
	u.RawQuery = q.Encode()
	return LogoutRequest{URL: u.String(), StateSent: state != ""}, nil
}

// UpstreamLogout reports whether Config.UpstreamLogout is on.
func (l *LazyUpstream) UpstreamLogout() bool { return l.cfg.UpstreamLogout }

// LogoutRequest is Upstream.LogoutRequest. Before the upstream is ready it
// builds a configured LogoutURL all the same (that needs no discovery);
// otherwise it wraps ErrUpstreamUnavailable.
func (l *LazyUpstream) LogoutRequest(postLogoutRedirectURI, state string) (LogoutRequest, error) {
	if up := l.up.Load(); up != nil {
		return up.LogoutRequest(postLogoutRedirectURI, state)
	}
	if l.cfg.LogoutURL != "" {
		return logoutRequest(l.cfg, "", postLogoutRedirectURI, state)
	}
	return LogoutRequest{}, l.unavailable("federation: logout request")
}
