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
	// ErrRefreshUnavailable: the refresh failed for another reason (network,
	// timeout, 5xx, another OAuth error, an unusable response). It says
	// nothing about the person; try again later.
	ErrRefreshUnavailable = errors.New("upstream refresh failed")
)

// RecheckInterval is how often Keyward re-checks a session's person at
// this upstream; 0 means never.
func (u *Upstream) RecheckInterval() time.Duration { return u.cfg.RecheckInterval }

// Refresh redeems refreshToken at the upstream's token endpoint
// (RFC 6749 §6) and returns the refresh token to keep: the new one when the
// upstream rotates it, else refreshToken itself. The returned tokens are
// not verified or used otherwise: the answer itself is the check.
//
// An invalid_grant answer wraps ErrUpstreamRefused; every other failure
// wraps ErrRefreshUnavailable. Error texts never hold a token or an
// upstream body.
func (u *Upstream) Refresh(ctx context.Context, refreshToken string) (string, error) {
	if refreshToken == "" {
		return "", fmt.Errorf("federation: refresh: %w: no refresh token", ErrRefreshUnavailable)
	}
	ctx = oidc.ClientContext(ctx, u.client)
	// No access token: the source refreshes at once.
	tok, err := u.oauth2.TokenSource(ctx, &oauth2.Token{RefreshToken: refreshToken}).Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.ErrorCode == "invalid_grant" {
			return "", fmt.Errorf("federation: refresh: %w: %w", ErrUpstreamRefused, redact(err))
		}
		return "", fmt.Errorf("federation: refresh: %w: %w", ErrRefreshUnavailable, redact(err))
	}
	next := tok.RefreshToken
	if next == "" { // x/oauth2 keeps the old one; be explicit anyway
		next = refreshToken
	}
	u.logger.DebugContext(ctx, "upstream grant refreshed", "rotated", next != refreshToken)
	return next, nil
}
