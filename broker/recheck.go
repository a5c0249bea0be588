package broker

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/ory/fosite"

	"github.com/keyward/keyward/federation"
	"github.com/keyward/keyward/store"
)

// Upstream re-check. For an upstream with a re-check interval, the
// callback keeps the upstream's refresh token with the Keyward session,
// sealed with Config.UpstreamTokenKey (AES-256-GCM, the session id as
// additional data). At a Keyward refresh, once the interval has passed
// since the upstream last vouched for the person, the broker refreshes the
// upstream grant:
//   - accepted: the (possibly rotated) token is sealed again and the check
//     time moves to now;
//   - refused (invalid_grant: the person was disabled or signed out
//     there): the Keyward session ends as RevokeSession ends it (grants
//     deleted, session feed entry, audit event) and the refresh fails with
//     invalid_grant;
//   - unavailable (network, timeout, 5xx, other errors): says nothing about
//     the person, so the Keyward refresh goes on and the next refresh tries
//     again.
//
// Not checked, so the refresh goes on: sessions without a stored token
// (signed in before the re-check was turned on, or the upstream sent no
// refresh token) and grants whose Keyward session no longer exists (expired
// and collected, or native sign-in).

// rechecker is the part of an upstream the re-check uses
// (*federation.Upstream has it; other Upstream implementations are never
// re-checked).
type rechecker interface {
	RecheckInterval() time.Duration
	Refresh(ctx context.Context, refreshToken string) (string, error)
}

var _ rechecker = (*federation.Upstream)(nil)

// recheckActor is the audit actor of a session ended by a re-check.
const recheckActor = "keyward:upstream-recheck"

// errUpstreamGone: the upstream refused the re-check and the Keyward
// session was ended.
var errUpstreamGone = errors.New("upstream no longer accepts the person")

// errChecked stops the claim of a check another refresh just made.
var errChecked = errors.New("upstream checked recently")

// initRecheck checks the sealing key and warns when re-checks are
// configured but cannot run.
func (b *Broker) initRecheck() error {
	if n := len(b.cfg.UpstreamTokenKey); n != 0 && n != 32 {
		return fmt.Errorf("upstream token key: must be 32 bytes, not %d", n)
	}
	if len(b.cfg.UpstreamTokenKey) != 0 {
		return nil
	}
	for _, up := range b.upstreams {
		if rc, ok := up.(rechecker); ok && rc.RecheckInterval() > 0 {
			b.log.Warn("upstream re-check is off: no upstream token key configured", "upstream", up.ID())
		}
	}
	return nil
}

// recheckOf returns up's re-checker and interval when up is re-checked.
func (b *Broker) recheckOf(up Upstream) (rechecker, time.Duration) {
	if len(b.cfg.UpstreamTokenKey) == 0 || up == nil {
		return nil, 0
	}
	rc, ok := up.(rechecker)
	if !ok || rc.RecheckInterval() <= 0 {
		return nil, 0
	}
	return rc, rc.RecheckInterval()
}

// sealUpstreamToken seals the upstream refresh token of a new session;
// nil when the upstream is not re-checked or sent no refresh token.
func (b *Broker) sealUpstreamToken(up Upstream, sessionID, token string) ([]byte, error) {
	if rc, _ := b.recheckOf(up); rc == nil {
		return nil, nil
	}
	if token == "" {
		b.log.Warn("upstream sent no refresh token: this session will not be re-checked", "upstream", up.ID(), "sid", recheckSID(sessionID))
		return nil, nil
	}
	return b.sealToken(sessionID, token)
}

func (b *Broker) upstreamAEAD() (cipher.AEAD, error) {
	block, err := aes.NewCipher(b.cfg.UpstreamTokenKey)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// sealToken is nonce || AES-256-GCM(token), bound to the session id.
func (b *Broker) sealToken(sessionID, token string) ([]byte, error) {
	g, err := b.upstreamAEAD()
	if err != nil {
		return nil, fmt.Errorf("seal upstream token: %w", err)
	}
	nonce := make([]byte, g.NonceSize(), g.NonceSize()+len(token)+g.Overhead())
	rand.Read(nonce)
	return g.Seal(nonce, nonce, []byte(token), []byte(sessionID)), nil
}

func (b *Broker) openToken(sessionID string, sealed []byte) (string, error) {
	g, err := b.upstreamAEAD()
	if err != nil {
		return "", fmt.Errorf("open upstream token: %w", err)
	}
	if len(sealed) < g.NonceSize() {
		return "", errors.New("open upstream token: too short")
	}
	plain, err := g.Open(nil, sealed[:g.NonceSize()], sealed[g.NonceSize():], []byte(sessionID))
	if err != nil {
		return "", fmt.Errorf("open upstream token: %w", err)
	}
	return string(plain), nil
}

// recheckAtRefresh runs the re-check for a refresh request and answers it
// with an error when the refresh must stop (false).
func (b *Broker) recheckAtRefresh(ctx context.Context, w http.ResponseWriter, ar fosite.AccessRequester, sess *Session) bool {
	err := b.recheckUpstream(ctx, sess.SessionID, sess.UpstreamID)
	switch {
	case err == nil:
		return true
	case errors.Is(err, errRecheckSessionEnded):
		b.refuseGrant(ctx, w, ar, fosite.ErrInvalidGrant.WithHint("The sign-in session has ended and the identity provider must vouch for this person again: sign in again.").WithWrap(err))
	case errors.Is(err, errUpstreamGone):
		b.refuseGrant(ctx, w, ar, fosite.ErrInvalidGrant.WithHint("The identity provider no longer accepts this person.").WithWrap(err))
	default:
		b.tokenError(ctx, w, ar, fosite.ErrServerError.WithWrap(err))
	}
	return false
}

// errRecheckSessionEnded: the grant's upstream is re-checked, but the
// Keyward session that held the upstream's refresh token has ended (it
// expired, or was collected), so the re-check cannot run. The refresh is
// refused rather than let through unchecked: otherwise a person disabled
// at the upstream would keep refreshing for the rest of the family's
// lifetime (up to refreshTokenMaxTTL) once the session (sessionTTL) was
// over.
var errRecheckSessionEnded = errors.New("the session holding the upstream grant has ended")

// recheckUpstream runs at a refresh of a grant issued in Keyward session
// sessionID through upstream upstreamID. nil: go on. An error wrapping
// errUpstreamGone: the session was ended, refuse the refresh; wrapping
// errRecheckSessionEnded: the re-check cannot run, refuse the refresh. Any
// other error is a server error.
func (b *Broker) recheckUpstream(ctx context.Context, sessionID, upstreamID string) error {
	if sessionID == "" || len(b.cfg.UpstreamTokenKey) == 0 {
		return nil
	}
	sess, err := b.cfg.Store.GetSession(ctx, sessionID)
	if err == nil && !sess.ExpiresAt.IsZero() && !sess.ExpiresAt.After(b.cfg.Now()) {
		err = store.ErrNotFound // expired, not yet collected
	}
	if errors.Is(err, store.ErrNotFound) {
		if rc, _ := b.recheckOf(b.byID[upstreamID]); rc != nil {
			return errRecheckSessionEnded
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("get session: %w", err)
	}
	rc, interval := b.recheckOf(b.byID[sess.UpstreamID])
	now := b.cfg.Now()
	if rc == nil || len(sess.UpstreamRefreshToken) == 0 || now.Sub(sess.UpstreamCheckedAt) < interval {
		return nil
	}
	// Claim the check (check time = now) so that concurrent refreshes of
	// the session do not redeem the same upstream token twice, which a
	// rotating upstream would answer with invalid_grant.
	var sealed []byte
	var prev time.Time
	err = b.cfg.Store.UpdateSession(ctx, sessionID, func(s store.Session) (store.Session, error) {
		if len(s.UpstreamRefreshToken) == 0 || now.Sub(s.UpstreamCheckedAt) < interval {
			return s, errChecked
		}
		sealed, prev = s.UpstreamRefreshToken, s.UpstreamCheckedAt
		s.UpstreamCheckedAt = now
		return s, nil
	})
	if errors.Is(err, errChecked) || errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("claim upstream re-check: %w", err)
	}
	log := b.log.With("upstream", sess.UpstreamID, "sub", sess.Subject, "sid", recheckSID(sessionID))
	token, err := b.openToken(sessionID, sealed)
	if err != nil {
		return err
	}
	next, err := rc.Refresh(ctx, token)
	switch {
	case errors.Is(err, federation.ErrUpstreamRefused):
		log.InfoContext(ctx, "upstream refused the re-check; ending the session", "event", "upstream_recheck_refused", "err", err)
		if _, rerr := b.RevokeSession(ctx, sessionID, "the identity provider refused the re-check", recheckActor); rerr != nil && !errors.Is(rerr, store.ErrNotFound) {
			return fmt.Errorf("end session after upstream refusal: %w", rerr)
		}
		return fmt.Errorf("%w: %w", errUpstreamGone, err)
	case err != nil:
		// Transient: let this refresh through and retry at the next one.
		log.WarnContext(ctx, "upstream re-check failed; retrying at the next refresh", "event", "upstream_recheck_failed", "err", err)
		if uerr := b.cfg.Store.UpdateSession(ctx, sessionID, func(s store.Session) (store.Session, error) {
			if bytes.Equal(s.UpstreamRefreshToken, sealed) {
				s.UpstreamCheckedAt = prev
			}
			return s, nil
		}); uerr != nil && !errors.Is(uerr, store.ErrNotFound) {
			log.WarnContext(ctx, "upstream re-check claim not released", "err", uerr)
		}
		return nil
	}
	resealed, err := b.sealToken(sessionID, next)
	if err != nil {
		return err
	}
	err = b.cfg.Store.UpdateSession(ctx, sessionID, func(s store.Session) (store.Session, error) {
		s.UpstreamRefreshToken, s.UpstreamCheckedAt = resealed, now
		return s, nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil // ended meanwhile; its grants are gone too
	}
	if err != nil {
		return fmt.Errorf("store upstream re-check: %w", err)
	}
	log.DebugContext(ctx, "upstream re-check passed", "event", "upstream_recheck_passed")
	return nil
}

func recheckSID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}
