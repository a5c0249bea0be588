package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/keyward/keyward/federation"
	"github.com/keyward/keyward/keys/seal"
	"github.com/keyward/keyward/store"
)

// Upstream re-check. For an upstream with a re-check interval, the
// callback keeps the upstream's refresh token with the Keyward session,
// sealed with Config.UpstreamTokenKey (AES-256-GCM, the session id as
// additional data). At a Keyward refresh, and at single sign-on (a session
// cookie answering /authorize), once the interval has passed since the
// upstream last vouched for the person, the broker refreshes the upstream
// grant (at most Config.RecheckTimeout):
//   - accepted: the (possibly rotated) token is sealed again and the check
//     time moves to now;
//   - refused (invalid_grant: the person was disabled or signed out
//     there): the Keyward session ends as RevokeSession ends it (grants
//     deleted, session feed entry, back-channel logout, audit event);
//   - anything else says nothing about the person: unavailable (network,
//     timeout, 5xx, other OAuth errors such as Dex's 500 invalid_request
//     for a deleted user) and client_rejected (invalid_client,
//     unauthorized_client: Keyward's own credentials there are wrong,
//     logged at Error and exported as a metric). The use goes on and the
//     next one tries again, until the upstream has not vouched for longer
//     than its maximum age (RecheckMaxAge): then the session ends as for a
//     refusal, the audit reason saying since when and why.
//
// An ended session refuses the refresh with invalid_grant; at single
// sign-on the browser is sent through a fresh upstream sign-in instead
// (login.go), where the upstream decides.
//
// A session of a re-checked upstream without a stored token (signed in
// before the re-check was turned on, or the upstream sent no refresh
// token) cannot be re-checked: it ends once older than the maximum age.
// Grants whose Keyward session no longer exists are refused
// (errRecheckSessionEnded); native sign-in has no session and is not
// re-checked.

// rechecker is the part of an upstream the re-check uses
// (*federation.Upstream has it; other Upstream implementations are never
// re-checked).
type rechecker interface {
	RecheckInterval() time.Duration
	RecheckMaxAge() time.Duration
	Refresh(ctx context.Context, refreshToken string) (string, error)
}

var _ rechecker = (*federation.Upstream)(nil)

// recheckPolicy is how one upstream is re-checked.
type recheckPolicy struct {
	rc       rechecker
	interval time.Duration
	maxAge   time.Duration
}

// recheckActor is the audit actor of a session ended by a re-check.
const recheckActor = "keyward:upstream-recheck"

// Re-check results, the result label of keyward_upstream_recheck_total.
const (
	RecheckPassed         = "passed"          // the upstream vouched for the person
	RecheckRefused        = "refused"         // invalid_grant: the session ended
	RecheckUnavailable    = "unavailable"     // no usable answer (network, timeout, 5xx, another error)
	RecheckClientRejected = "client_rejected" // invalid_client / unauthorized_client
	RecheckMaxAgeExceeded = "max_age"         // a session ended because the upstream had not vouched within its maximum age
)

var recheckResults = []string{RecheckPassed, RecheckRefused, RecheckUnavailable, RecheckClientRejected, RecheckMaxAgeExceeded}

// errUpstreamGone: the upstream refused the re-check and the Keyward
// session was ended.
var errUpstreamGone = errors.New("upstream no longer accepts the person")

// errUnvouched: the upstream has not vouched for the person for longer
// than its maximum age, and the Keyward session was ended.
var errUnvouched = errors.New("upstream has not vouched for the person within its maximum age")

// recheckEnded reports whether a re-check error means the session ended.
func recheckEnded(err error) bool {
	return errors.Is(err, errUpstreamGone) || errors.Is(err, errUnvouched)
}

// errChecked stops the claim of a check another refresh just made.
var errChecked = errors.New("upstream checked recently")

// recheck is the upstream re-check: it keeps the upstreams' refresh
// tokens sealed with the sessions and redeems them when a session is used
// (single sign-on at sign-in, a refresh at the token endpoint) once the
// upstream's interval has passed, ending the session through the
// administration part when the upstream no longer vouches for the person.
type recheck struct {
	store     recheckStore
	upstreams []Upstream
	byID      map[string]Upstream
	key       []byte        // Config.UpstreamTokenKey; nil: off
	timeout   time.Duration // Config.RecheckTimeout
	sessions  *admin        // ends sessions (RevokeSession)
	stats     recheckStats
	log       *slog.Logger
	now       func() time.Time

	// backoff: per upstream, until when re-checks are not attempted
	// because its last one failed, and what that failure was. During an
	// outage every refresh and single sign-on would otherwise wait up to
	// timeout for an upstream that is known to be down; the maximum age
	// still ends sessions meanwhile. In memory: each replica learns it
	// on its own, which costs one timeout per replica.
	backoffMu sync.Mutex
	backoff   map[string]recheckBackoff
}

// recheckBackoff is an upstream's failed re-check: none is tried before
// until; why is the failure, for the audit reason.
type recheckBackoff struct {
	until time.Time
	why   string
}

// recheckBackoffFor is how long an upstream whose re-check failed is not
// asked again: long enough that a flood of refreshes during an outage
// costs one timeout per upstream (not per request), short enough that
// service resumes soon after the upstream does.
const recheckBackoffFor = 30 * time.Second

// backingOff says whether upstream is in its back-off at now, and why.
func (rk *recheck) backingOff(upstream string, now time.Time) (string, bool) {
	rk.backoffMu.Lock()
	defer rk.backoffMu.Unlock()
	b, ok := rk.backoff[upstream]
	if !ok || !now.Before(b.until) {
		return "", false
	}
	return b.why, true
}

// backOff starts upstream's back-off at now after the failure why.
func (rk *recheck) backOff(upstream string, now time.Time, why string) {
	rk.backoffMu.Lock()
	defer rk.backoffMu.Unlock()
	if rk.backoff == nil {
		rk.backoff = map[string]recheckBackoff{}
	}
	rk.backoff[upstream] = recheckBackoff{until: now.Add(recheckBackoffFor), why: why}
}

// recheckStore is the part of the store the re-check uses.
type recheckStore interface {
	GetSession(ctx context.Context, id string) (store.Session, error)
	UpdateSession(ctx context.Context, id string, updater func(store.Session) (store.Session, error)) error
}

// initRecheck checks the sealing key and warns when re-checks are
// configured but cannot run.
func (rk *recheck) initRecheck() error {
	if n := len(rk.key); n != 0 && n != 32 {
		return fmt.Errorf("upstream token key: must be 32 bytes, not %d", n)
	}
	if len(rk.key) != 0 {
		return nil
	}
	for _, up := range rk.upstreams {
		if rc, ok := up.(rechecker); ok && rc.RecheckInterval() > 0 {
			rk.log.Warn("upstream re-check is off: no upstream token key configured", "upstream", up.ID())
		}
	}
	return nil
}

// recheckOf returns how up is re-checked; false when it is not.
func (rk *recheck) recheckOf(up Upstream) (recheckPolicy, bool) {
	if len(rk.key) == 0 || up == nil {
		return recheckPolicy{}, false
	}
	rc, ok := up.(rechecker)
	if !ok || rc.RecheckInterval() <= 0 {
		return recheckPolicy{}, false
	}
	// federation validates maxAge >= interval; never let it be shorter.
	return recheckPolicy{rc: rc, interval: rc.RecheckInterval(), maxAge: max(rc.RecheckMaxAge(), rc.RecheckInterval())}, true
}

// sealUpstreamToken seals the upstream refresh token of a new session;
// nil when the upstream is not re-checked or sent no refresh token.
func (rk *recheck) sealUpstreamToken(up Upstream, sessionID, token string) ([]byte, error) {
	p, ok := rk.recheckOf(up)
	if !ok {
		return nil, nil
	}
	if token == "" {
		rk.log.Warn("upstream sent no refresh token: this session cannot be re-checked and ends after the re-check's maximum age",
			"upstream", up.ID(), "sid", recheckSID(sessionID), "max_age", p.maxAge)
		return nil, nil
	}
	return rk.sealToken(sessionID, token)
}

// sealToken is keys/seal's nonce || AES-256-GCM(token), bound to the
// session id.
func (rk *recheck) sealToken(sessionID, token string) ([]byte, error) {
	k, err := seal.New(rk.key)
	if err != nil {
		return nil, fmt.Errorf("seal upstream token: %w", err)
	}
	return k.Seal([]byte(token), []byte(sessionID)), nil
}

func (rk *recheck) openToken(sessionID string, sealed []byte) (string, error) {
	k, err := seal.New(rk.key)
	if err != nil {
		return "", fmt.Errorf("open upstream token: %w", err)
	}
	plain, err := k.Open(sealed, []byte(sessionID))
	if err != nil {
		return "", fmt.Errorf("open upstream token: %w", err)
	}
	return string(plain), nil
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
// sessionID through upstream upstreamID. nil: go on. An error for which
// recheckEnded holds: the session was ended, refuse the refresh; wrapping
// errRecheckSessionEnded: the re-check cannot run, refuse the refresh. Any
// other error is a server error.
func (rk *recheck) recheckUpstream(ctx context.Context, sessionID, upstreamID string) error {
	if sessionID == "" || len(rk.key) == 0 {
		return nil
	}
	sess, err := rk.store.GetSession(ctx, sessionID)
	if err == nil && !sess.ExpiresAt.IsZero() && !sess.ExpiresAt.After(rk.now()) {
		err = store.ErrNotFound // expired, not yet collected
	}
	if errors.Is(err, store.ErrNotFound) {
		if _, ok := rk.recheckOf(rk.byID[upstreamID]); ok {
			return errRecheckSessionEnded
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("get session: %w", err)
	}
	return rk.recheckSession(ctx, sess)
}

// recheckSession re-checks the person of the live Keyward session sess at
// its upstream when the interval has passed (at a refresh and at single
// sign-on). nil: go on. An error for which recheckEnded holds: the session
// has been ended. Any other error is a server error.
func (rk *recheck) recheckSession(ctx context.Context, sess store.Session) error {
	p, ok := rk.recheckOf(rk.byID[sess.UpstreamID])
	now := rk.now()
	if !ok || now.Sub(sess.UpstreamCheckedAt) < p.interval {
		return nil
	}
	log := rk.log.With("upstream", sess.UpstreamID, "sub", sess.Subject, "sid", recheckSID(sess.ID))
	if len(sess.UpstreamRefreshToken) == 0 {
		if now.Sub(sess.UpstreamCheckedAt) <= p.maxAge {
			return nil
		}
		return rk.endUnvouched(ctx, log, sess, sess.UpstreamCheckedAt, p.maxAge, "no upstream refresh token was kept for this session")
	}
	if why, ok := rk.backingOff(sess.UpstreamID, now); ok {
		if now.Sub(sess.UpstreamCheckedAt) > p.maxAge {
			return rk.endUnvouched(ctx, log, sess, sess.UpstreamCheckedAt, p.maxAge, why)
		}
		return nil // not asked again before the back-off ends
	}
	// Claim the check (check time = now) so that concurrent uses of the
	// session do not redeem the same upstream token twice, which a
	// rotating upstream would answer with invalid_grant.
	var sealed []byte
	var prev time.Time
	err := rk.store.UpdateSession(ctx, sess.ID, func(s store.Session) (store.Session, error) {
		if len(s.UpstreamRefreshToken) == 0 || now.Sub(s.UpstreamCheckedAt) < p.interval {
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
	// From here on the answer is kept even if the client goes away: a
	// rotating upstream has already spent the old token.
	ctx = context.WithoutCancel(ctx)
	next, err := rk.refreshUpstream(ctx, p, sess.ID, sealed)
	switch {
	case errors.Is(err, federation.ErrUpstreamRefused):
		rk.stats.record(sess.UpstreamID, RecheckRefused)
		log.InfoContext(ctx, "upstream refused the re-check; ending the session", "event", "upstream_recheck_refused", "err", err)
		if _, rerr := rk.sessions.RevokeSession(ctx, sess.ID, "the identity provider refused the re-check (invalid_grant)", recheckActor); rerr != nil && !errors.Is(rerr, store.ErrNotFound) {
			return fmt.Errorf("end session after upstream refusal: %w", rerr)
		}
		return fmt.Errorf("%w: %w", errUpstreamGone, err)
	case err != nil:
		if errors.Is(err, federation.ErrClientRejected) {
			rk.stats.record(sess.UpstreamID, RecheckClientRejected)
			log.ErrorContext(ctx, "the upstream refused Keyward's client credentials at the re-check: fix clientID/clientSecret for this upstream (or allow it the refresh_token grant); sessions end once the re-check's maximum age has passed",
				"event", "upstream_recheck_client_rejected", "err", err, "max_age", p.maxAge)
		} else {
			rk.stats.record(sess.UpstreamID, RecheckUnavailable)
			log.WarnContext(ctx, "upstream re-check failed; retrying at the next use", "event", "upstream_recheck_failed", "err", err,
				"unvouched_since", prev.UTC(), "max_age", p.maxAge)
		}
		rk.backOff(sess.UpstreamID, now, refreshFailure(err))
		if now.Sub(prev) > p.maxAge {
			return rk.endUnvouched(ctx, log, sess, prev, p.maxAge, refreshFailure(err))
		}
		// Release the claim: the next use tries again.
		if uerr := rk.store.UpdateSession(ctx, sess.ID, func(s store.Session) (store.Session, error) {
			if bytes.Equal(s.UpstreamRefreshToken, sealed) {
				s.UpstreamCheckedAt = prev
			}
			return s, nil
		}); uerr != nil && !errors.Is(uerr, store.ErrNotFound) {
			log.WarnContext(ctx, "upstream re-check claim not released", "err", uerr)
		}
		return nil
	}
	rk.stats.record(sess.UpstreamID, RecheckPassed)
	resealed, err := rk.sealToken(sess.ID, next)
	if err != nil {
		return err
	}
	err = rk.store.UpdateSession(ctx, sess.ID, func(s store.Session) (store.Session, error) {
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

// refreshUpstream opens the sealed upstream token and redeems it, within
// Config.RecheckTimeout. A token that cannot be opened (the session secret
// changed) fails like an unavailable upstream: the maximum age then ends
// the session.
func (rk *recheck) refreshUpstream(ctx context.Context, p recheckPolicy, sessionID string, sealed []byte) (string, error) {
	token, err := rk.openToken(sessionID, sealed)
	if err != nil {
		return "", fmt.Errorf("%w: %w", federation.ErrRefreshUnavailable, err)
	}
	ctx, cancel := context.WithTimeout(ctx, rk.timeout)
	defer cancel()
	return p.rc.Refresh(ctx, token)
}

// refreshFailure says, for the audit trail, how the last re-check failed
// (a status and an OAuth code, never a body).
func refreshFailure(err error) string {
	if re := (*federation.RefreshError)(nil); errors.As(err, &re) {
		return re.Error()
	}
	return err.Error()
}

// endUnvouched ends sess because its upstream has not vouched for the
// person since since, longer than maxAge; why says what the last attempt
// got. It returns an error wrapping errUnvouched (or a server error).
func (rk *recheck) endUnvouched(ctx context.Context, log *slog.Logger, sess store.Session, since time.Time, maxAge time.Duration, why string) error {
	reason := fmt.Sprintf("upstream re-check not passed since %s, longer than recheckMaxAge %s; last attempt: %s",
		since.UTC().Format(time.RFC3339), maxAge, why)
	rk.stats.record(sess.UpstreamID, RecheckMaxAgeExceeded)
	log.InfoContext(ctx, "upstream has not vouched for the person within the re-check's maximum age; ending the session",
		"event", "upstream_recheck_expired", "unvouched_since", since.UTC(), "max_age", maxAge, "last_attempt", why)
	if _, err := rk.sessions.RevokeSession(ctx, sess.ID, reason, recheckActor); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("end session after the re-check's maximum age: %w", err)
	}
	return fmt.Errorf("%w: %s", errUnvouched, reason)
}

// recheckStats counts re-check results per upstream for the metrics.
type recheckStats struct {
	mu       sync.Mutex
	counts   map[string]map[string]uint64 // upstream → result → count
	rejected map[string]bool              // upstream → credentials refused at the last answer
}

func (s *recheckStats) record(upstream, result string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.counts == nil {
		s.counts, s.rejected = map[string]map[string]uint64{}, map[string]bool{}
	}
	if s.counts[upstream] == nil {
		s.counts[upstream] = map[string]uint64{}
	}
	s.counts[upstream][result]++
	switch result {
	case RecheckClientRejected:
		s.rejected[upstream] = true
	case RecheckPassed, RecheckRefused: // the upstream accepted Keyward's client
		s.rejected[upstream] = false
	}
}

// RecheckStatus is one re-checked upstream's re-check counters.
type RecheckStatus struct {
	Upstream string
	// Results counts re-checks by result (RecheckPassed, …); every result
	// is present.
	Results map[string]uint64
	// ClientRejected: the upstream's last answer to a re-check refused
	// Keyward's client credentials (invalid_client, unauthorized_client);
	// it clears when the upstream next accepts them.
	ClientRejected bool
}

// RecheckStatus reports the re-check counters of every re-checked
// upstream, in configured order.
func (rk *recheck) RecheckStatus() []RecheckStatus {
	rk.stats.mu.Lock()
	defer rk.stats.mu.Unlock()
	var out []RecheckStatus
	for _, up := range rk.upstreams {
		if _, ok := rk.recheckOf(up); !ok {
			continue
		}
		st := RecheckStatus{Upstream: up.ID(), Results: map[string]uint64{}, ClientRejected: rk.stats.rejected[up.ID()]}
		for _, r := range recheckResults {
			st.Results[r] = rk.stats.counts[up.ID()][r]
		}
		out = append(out, st)
	}
	return out
}

func recheckSID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}
