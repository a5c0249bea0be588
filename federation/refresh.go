package federation

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Errors of Refresh.
var (
	// ErrUpstreamRefused: the upstream answered the refresh with
	// invalid_grant (RFC 6749 §5.2): the grant is gone there, typically
	// because the person was disabled or signed out everywhere.
	ErrUpstreamRefused = errors.New("upstream refused the refresh token")
	// ErrClientRejected: the upstream answered invalid_client or
	// unauthorized_client: Keyward's own credentials there are wrong (a
	// rotated client secret) or it may not use the refresh grant. It says
	// nothing about the person, and an operator must act.
	ErrClientRejected = errors.New("upstream refused Keyward's client credentials")
	// ErrRefreshUnavailable: the refresh failed for another reason (network,
	// timeout, 5xx, another OAuth error such as Dex's 500 invalid_request
	// for a deleted user, an unusable response). It says nothing about the
	// person; try again later.
	ErrRefreshUnavailable = errors.New("upstream refresh failed")
)

// RefreshError is how the upstream's token endpoint answered a failed
// Refresh, in terms fit for logs and the audit trail: the HTTP status and
// the OAuth error code, never a body or a description.
type RefreshError struct {
	// Status is the HTTP status; 0 when no answer came (network error,
	// timeout, cancellation).
	Status int
	// Code is the OAuth error code (RFC 6749 §5.2), cleaned; "" when the
	// answer had none.
	Code  string
	cause error // redacted
}

func (e *RefreshError) Error() string {
	switch {
	case e.Status == 0:
		return "no usable answer from the token endpoint: " + e.cause.Error()
	case e.Code == "":
		return fmt.Sprintf("token endpoint answered HTTP %d", e.Status)
	default:
		return fmt.Sprintf("token endpoint answered HTTP %d %s", e.Status, e.Code)
	}
}

func (e *RefreshError) Unwrap() error { return e.cause }

// DefaultRecheckMaxAge is the RecheckMaxAge of an upstream that sets none:
// an hour, or twice the interval when that is longer, so that at least one
// failed re-check is tried again before the session ends. An hour rides out
// the usual IdP incident or maintenance window (during which no new
// sign-in works anyway), while bounding how long a person the upstream no
// longer vouches for, without saying invalid_grant, keeps refreshing.
func DefaultRecheckMaxAge(interval time.Duration) time.Duration {
	return max(time.Hour, 2*interval)
}

// RecheckMaxAgeProblem is the rule for a re-check interval and maximum
// age, shared by every configuration that sets them: "" when they are
// fine, else what is wrong with maxAge.
func RecheckMaxAgeProblem(interval, maxAge time.Duration) string {
	switch {
	case maxAge == 0:
		return ""
	case maxAge < 0:
		return fmt.Sprintf("%s must not be negative", maxAge)
	case interval <= 0:
		return "needs recheckInterval: without re-checks there is nothing to bound"
	case maxAge < interval:
		return fmt.Sprintf("%s is shorter than recheckInterval (%s); it must be at least as long", maxAge, interval)
	}
	return ""
}

// recheckMaxAge is c's RecheckMaxAge with its default; 0 when re-checks
// are off.
func (c Config) recheckMaxAge() time.Duration {
	switch {
	case c.RecheckInterval <= 0:
		return 0
	case c.RecheckMaxAge > 0:
		return time.Duration(c.RecheckMaxAge)
	}
	return DefaultRecheckMaxAge(time.Duration(c.RecheckInterval))
}

// RecheckInterval is how often Keyward re-checks a session's person at
// this upstream; 0 means never.
func (u *Upstream) RecheckInterval() time.Duration { return time.Duration(u.cfg.RecheckInterval) }

// RecheckMaxAge is how long the upstream may go without vouching for a
// person before the session ends (Config.RecheckMaxAge with its default);
// 0 when re-checks are off.
func (u *Upstream) RecheckMaxAge() time.Duration { return u.cfg.recheckMaxAge() }

// Refresh redeems refreshToken at the upstream's token endpoint
// (RFC 6749 §6) and returns the refresh token to keep: the new one when the
// upstream rotates it, else refreshToken itself. The returned tokens are
// not verified or used otherwise: the answer itself is the check.
//
// An invalid_grant answer wraps ErrUpstreamRefused; invalid_client and
// unauthorized_client wrap ErrClientRejected; every other failure wraps
// ErrRefreshUnavailable. A failed answer is also a *RefreshError. Error
// texts never hold a token or an upstream body.
func (u *Upstream) Refresh(ctx context.Context, refreshToken string) (string, error) {
	if refreshToken == "" {
		return "", fmt.Errorf("federation: refresh: %w: no refresh token", ErrRefreshUnavailable)
	}
	ctx = oidc.ClientContext(ctx, u.client)
	// No access token: the source refreshes at once.
	tok, err := u.oauth2.TokenSource(ctx, &oauth2.Token{RefreshToken: refreshToken}).Token()
	if err != nil {
		rerr := &RefreshError{cause: redact(err)}
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			rerr.Code = clean(re.ErrorCode, 64)
			if re.Response != nil {
				rerr.Status = re.Response.StatusCode
			}
		}
		kind := ErrRefreshUnavailable
		switch {
		case rerr.Code == "invalid_grant":
			kind = ErrUpstreamRefused
		case rerr.Code == "invalid_client", rerr.Code == "unauthorized_client":
			kind = ErrClientRejected
		}
		return "", fmt.Errorf("federation: refresh: %w: %w", kind, rerr)
	}
	next := tok.RefreshToken
	if next == "" { // x/oauth2 keeps the old one; be explicit anyway
		next = refreshToken
	}
	u.logger.DebugContext(ctx, "upstream grant refreshed", "rotated", next != refreshToken)
	return next, nil
}
