package federation

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/golang-jwt/jwt/v5"
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
// contains the token). Replays within exp are not detected: ending sessions
// that are already ended is harmless.
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
