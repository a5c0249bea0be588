package broker

import (
	"context"
	"errors"
	"fmt"

	"github.com/ory/fosite"

	"github.com/keyward/keyward/store"
)

// errSessionEnded is returned by checkIssuedToken: the Keyward session the
// token was issued in (its sid) has been ended.
var errSessionEnded = errors.New("the sign-in session has ended")

// checkIssuedToken is the one check, besides signature and expiry, that
// every use of an issued Keyward token passes (token exchange of a subject
// or actor token, introspection, /userinfo): its subject must not have been
// refused since it was issued (checkSubject: errSubjectRefused), and the
// Keyward session named by its sid claim must not have been ended
// (errSessionEnded). Neither reads the token's own record, so the check
// holds whether or not access tokens are stored. Tokens without a sid
// (client credentials, workload exchange, native sign-in) pass the
// session part. Any other error is the store's.
func (s *subjects) checkIssuedToken(ctx context.Context, r fosite.Requester) error {
	sess, ok := r.GetSession().(*Session)
	if !ok {
		return errors.New("unexpected session type")
	}
	if err := s.checkSubject(ctx, sess.GetSubject(), issuedAt(r)); err != nil {
		return err
	}
	ended, err := s.sessionEnded(ctx, sess.sid())
	if err != nil {
		return err
	}
	if ended {
		return errSessionEnded
	}
	return nil
}

// sid is the Keyward session a token was issued in: its sid claim, which
// token exchange copies from the subject token (grants of a browser
// sign-in also record it as SessionID). Empty: none.
func (s *Session) sid() string {
	if s.AccessClaims != nil {
		if v, ok := s.AccessClaims.Extra["sid"].(string); ok && v != "" {
			return v
		}
	}
	return s.SessionID
}

// sessionEnded reports whether the Keyward session sid has been ended:
// logout, an admin revoke, an upstream's back-channel logout or a failed
// upstream re-check, which all end it through admin.RevokeSession. That
// writes a GrantEndedSession record keyed by sid before it deletes the
// session and its grants, and keeps it until no token issued before the
// end can still be alive (feedExpiry; token exchange never outlives its
// subject token).
//
// A missing session record alone does not say it: a session also expires
// (tokens.sessionTTL) and is collected, while refresh families issued in
// it go on (without an upstream re-check), and the tokens they issue carry
// its sid and must keep working. So a missing record is an ended session
// only if the ended-session record says so: two point lookups, whatever
// the length of the revocation feed. Deprovisioning deletes sessions
// without such a record; checkSubject refuses those tokens.
func (s *subjects) sessionEnded(ctx context.Context, sid string) (bool, error) {
	if sid == "" {
		return false, nil
	}
	_, err := s.store.GetSession(ctx, sid)
	if err == nil {
		return false, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return false, fmt.Errorf("get session: %w", err)
	}
	g, err := s.store.GetGrant(ctx, store.GrantEndedSession, sid)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("get ended session: %w", err)
	}
	return g.ExpiresAt.IsZero() || g.ExpiresAt.After(s.now()), nil
}
