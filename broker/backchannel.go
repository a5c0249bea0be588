package broker

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/keyward/keyward/federation"
	"github.com/keyward/keyward/store"
)

// OIDC Back-Channel Logout 1.0, both ways.
//
// Outgoing: when a Keyward session ends (RevokeSession, Deprovision, and
// every other path through the session-ending core of deprovision.go), the
// clients that were issued something in that session get a logout token
// naming the session's sub and sid; no other client learns of it. The store
// tells which clients those are while it deletes the session's grants (the
// same transaction), from the grants' ClientID: codes, tokens, refresh
// families, and a session-client record (recordSessionClient) that outlives
// the short-lived codes and access tokens for as long as the session does.
// Token exchange issues access tokens only, stored without a session id:
// ending a session neither deletes them (the broker refuses those that
// carry its sid claim, checkIssuedToken, and edges drop them by the session
// feed entry) nor tells the exchanging client. The tokens are signed at
// once and queued; backchannelSender.Run (Broker.Run) delivers them, with
// up to logoutAttempts attempts each, until its context ends.
//
// Incoming: an upstream POSTs its logout token to
// /backchannel_logout/{upstream}; BackchannelLogout verifies it, refuses a
// jti already used, and ends every Keyward session of that upstream subject.

const (
	// logoutTokenTTL is the lifetime of an outgoing logout token.
	logoutTokenTTL = 2 * time.Minute
	// logoutAttempts bounds the deliveries of one logout token.
	logoutAttempts = 3
	// logoutTokenType is the typ header of outgoing logout tokens. §2.4
	logoutTokenType = "logout+jwt"
)

// backchannelSender is the outgoing half: it signs logout tokens for the
// clients of an ended session and delivers them from Run. It holds only
// what that needs.
type backchannelSender struct {
	clients    *clientRegistry
	keys       signer
	idAlgs     idTokenAlgorithms // logout tokens are signed like the client's ID tokens
	issuer     string
	client     *http.Client // never follows redirects
	retryDelay time.Duration
	log        *slog.Logger
	now        func() time.Time

	mu      sync.Mutex
	queue   []logoutDelivery
	wake    chan struct{}  // a delivery was queued (capacity 1)
	pending sync.WaitGroup // queued and in-flight deliveries
}

// logoutDelivery is one logout token to POST.
type logoutDelivery struct {
	clientID, uri, sid, token string
}

// newBackchannelSender builds the sender; it does no I/O.
func newBackchannelSender(cfg Config, clients *clientRegistry, log *slog.Logger) *backchannelSender {
	hc := *cfg.BackchannelClient
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &backchannelSender{
		clients:    clients,
		keys:       cfg.Keys,
		idAlgs:     newIDTokenAlgorithms(cfg.Keys, clients),
		issuer:     cfg.Issuer,
		client:     &hc,
		retryDelay: cfg.BackchannelRetryDelay,
		log:        log,
		now:        cfg.Now,
		wake:       make(chan struct{}, 1),
	}
}

// Run delivers the queued logout tokens, each in its own goroutine, until
// ctx ends; then it abandons what is still queued or being retried (logged
// at Warn), waits for the deliveries in flight and returns nil.
func (s *backchannelSender) Run(ctx context.Context) error {
	var inflight sync.WaitGroup
	defer inflight.Wait()
	for {
		select {
		case <-ctx.Done():
			s.mu.Lock()
			left := s.queue
			s.queue = nil
			s.mu.Unlock()
			for _, d := range left {
				s.log.WarnContext(ctx, "back-channel logout abandoned", "client_id", d.clientID, "sid", d.sid, "err", ctx.Err(), "attempt", 0)
				s.pending.Done()
			}
			return nil
		case <-s.wake:
		}
		s.mu.Lock()
		batch := s.queue
		s.queue = nil
		s.mu.Unlock()
		for _, d := range batch {
			inflight.Add(1)
			go func() {
				defer inflight.Done()
				defer s.pending.Done()
				s.deliver(ctx, d)
			}()
		}
	}
}

// wait blocks until the deliveries queued so far have finished.
func (s *backchannelSender) wait() { s.pending.Wait() }

// recordSessionClient records that clientID is being issued tokens in
// session s (a GrantSessionClient grant expiring with the session), so that
// the client is told when the session ends even after its codes and access
// tokens have expired and been collected. Recording it again is a no-op.
// In the unit of work that creates the session it is gathered there; for
// a session that exists already it is written at once, if missing (a
// conflict in a unit of work would abort it).
func (si *signIn) recordSessionClient(ctx context.Context, s store.Session, clientID string) error {
	g := store.Grant{
		Kind:        store.GrantSessionClient,
		Signature:   s.ID + "/" + clientID,
		ClientID:    clientID,
		Subject:     s.Subject,
		SessionID:   s.ID,
		Active:      true,
		RequestedAt: si.now().UTC(),
		ExpiresAt:   s.ExpiresAt,
	}
	if u := unitFrom(ctx); u != nil && u.createsSession(s.ID) {
		return u.createGrant(g)
	}
	_, err := si.store.GetGrant(ctx, g.Kind, g.Signature)
	if err == nil {
		return nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("record session client: %w", err)
	}
	err = si.store.CreateGrant(ctx, g)
	if err != nil && !errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("record session client: %w", err)
	}
	return nil
}

// notifyLogout tells the clients clientIDs that have a back-channel logout
// URI that session sid of subject has ended. Tokens are signed now;
// delivery is in the background (WaitBackchannelLogout waits for it). A
// client no longer configured, or without a URI, is skipped.
func (s *backchannelSender) notifyLogout(ctx context.Context, subject, sid string, clientIDs []string) {
	for _, id := range clientIDs {
		c, ok := s.clients.get(id)
		if !ok || c.backchannelLogoutURI == "" {
			continue
		}
		tok, err := s.logoutToken(ctx, c.ID, subject, sid)
		if err != nil {
			s.log.ErrorContext(ctx, "back-channel logout: cannot sign logout token", "client_id", c.ID, "sid", sid, "err", err)
			continue
		}
		s.pending.Add(1)
		s.mu.Lock()
		s.queue = append(s.queue, logoutDelivery{clientID: c.ID, uri: c.backchannelLogoutURI, sid: sid, token: tok})
		s.mu.Unlock()
		select {
		case s.wake <- struct{}{}:
		default: // Run is already woken
		}
	}
}

// logoutToken signs the logout token of session sid of subject for
// clientID. §2.4
func (s *backchannelSender) logoutToken(ctx context.Context, clientID, subject, sid string) (string, error) {
	now := s.now()
	claims := map[string]any{
		"iss":    s.issuer,
		"aud":    clientID,
		"iat":    now.Unix(),
		"exp":    now.Add(logoutTokenTTL).Unix(),
		"jti":    rand.Text(),
		"sub":    subject,
		"sid":    sid,
		"events": map[string]any{federation.BackchannelLogoutEvent: map[string]any{}},
	}
	// Signed as the client's ID tokens are, so the verifier it has for
	// them takes it. §2.4
	return s.keys.SignAs(ctx, s.idAlgs.of(clientID), claims, map[string]any{"typ": logoutTokenType})
}

// deliver POSTs d's token to its uri (§2.5), retrying a network error,
// 429 or 5xx after BackchannelRetryDelay, then twice that, until ctx ends.
// Another answer than 200 or 204 (a 400: the client refused the token) is
// not retried.
func (s *backchannelSender) deliver(ctx context.Context, d logoutDelivery) {
	body := url.Values{"logout_token": {d.token}}.Encode()
	delay := s.retryDelay
	log := s.log.With("client_id", d.clientID, "sid", d.sid)
	for attempt := 1; ; attempt++ {
		status, err := postLogout(ctx, s.client, d.uri, body)
		switch {
		case err == nil && (status == http.StatusOK || status == http.StatusNoContent):
			log.InfoContext(ctx, "back-channel logout delivered", "event", "backchannel_logout_sent", "attempt", attempt)
			return
		case err == nil && status != http.StatusTooManyRequests && status < 500:
			log.WarnContext(ctx, "back-channel logout refused by client", "event", "backchannel_logout_failed", "status", status, "attempt", attempt)
			return
		case attempt == logoutAttempts:
			log.WarnContext(ctx, "back-channel logout failed; giving up", "event", "backchannel_logout_failed", "status", status, "err", err, "attempt", attempt)
			return
		}
		log.DebugContext(ctx, "back-channel logout failed; retrying", "status", status, "err", err, "attempt", attempt, "delay", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			log.WarnContext(ctx, "back-channel logout abandoned", "event", "backchannel_logout_failed", "err", ctx.Err(), "attempt", attempt)
			return
		case <-t.C:
		}
		delay *= 2
	}
}

func postLogout(ctx context.Context, hc *http.Client, uri, body string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, uri, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// backchannelReceiver is the incoming half: it ends the Keyward sessions
// of an upstream subject whose upstream sent a logout token.
type backchannelReceiver struct {
	store     backchannelStore
	upstreams map[string]Upstream // by id
	sessions  *admin              // ends sessions (RevokeSession)
	log       *slog.Logger
	now       func() time.Time
}

// backchannelStore is the part of the store the receiver uses.
type backchannelStore interface {
	CreateGrant(ctx context.Context, g store.Grant) error
	DeleteGrant(ctx context.Context, kind store.GrantKind, signature string) error
	ListSessions(ctx context.Context, subject string) ([]store.Session, error)
}

// Errors of BackchannelLogout, as JSON answers (§2.8: 400 when the logout
// failed).
var (
	errUnknownLogoutUpstream = ErrInvalidRequest.WithDescription(descUnknownLogoutUpstream)
	errInvalidLogoutToken    = ErrInvalidRequest.WithDescription(descInvalidLogoutToken)
	errSidOnlyLogout         = ErrInvalidRequest.WithDescription(descSidOnlyLogout)
	errLogoutTokenNoJTI      = ErrInvalidRequest.WithDescription(descLogoutTokenNoJTI)
	errLogoutTokenReplayed   = ErrInvalidRequest.WithDescription(descLogoutTokenReplayed)
)

// logoutJTILeeway is how long past its exp a used upstream logout token's
// jti is remembered: the clock skew an upstream's exp may be checked with.
const logoutJTILeeway = 5 * time.Minute

// logoutTokenID reads the jti and exp of a logout token that
// VerifyLogoutToken has verified (so its payload is not checked again).
func logoutTokenID(raw string) (jti string, exp time.Time, err error) {
	var c jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(raw, &c); err != nil {
		return "", time.Time{}, fmt.Errorf("parse logout token: %w", err)
	}
	if c.ExpiresAt != nil {
		exp = c.ExpiresAt.Time
	}
	return c.ID, exp, nil
}

// claimLogoutJTI records the jti of a verified upstream logout token until
// its exp (plus logoutJTILeeway), in the store's single-use jti records
// (GrantAssertionJTI, as client assertions and single-use subject tokens),
// keyed by upstream. It returns a release function that forgets the jti
// again, for when the logout then fails and the upstream should retry.
// OIDC Back-Channel Logout §2.6 step 7
func (r *backchannelReceiver) claimLogoutJTI(ctx context.Context, upstreamID, rawToken string) (release func(), err error) {
	jti, exp, err := logoutTokenID(rawToken)
	if err != nil {
		return nil, errInvalidLogoutToken.WithCause(err)
	}
	if jti == "" {
		return nil, errLogoutTokenNoJTI
	}
	now := r.now().UTC()
	if exp.IsZero() {
		exp = now.Add(logoutTokenTTL)
	}
	key := "bcl:" + upstreamID + ":" + jti
	err = r.store.CreateGrant(ctx, store.Grant{
		Kind: store.GrantAssertionJTI, Signature: key, RequestedAt: now, ExpiresAt: exp.Add(logoutJTILeeway),
	})
	switch {
	case errors.Is(err, store.ErrConflict):
		return nil, errLogoutTokenReplayed
	case err != nil:
		return nil, ErrServerError.WithCause(fmt.Errorf("record logout token jti: %w", err))
	}
	return func() {
		if err := r.store.DeleteGrant(ctx, store.GrantAssertionJTI, key); err != nil {
			r.log.WarnContext(ctx, "upstream logout failed and its jti stays used; the upstream's retry will be refused",
				"upstream", upstreamID, "jti", jti, "err", err)
		}
	}, nil
}

// BackchannelLogout handles a back-channel logout token that upstream
// upstreamID sent: it verifies it (Upstream.VerifyLogoutToken) and ends
// every Keyward session of the upstream subject it names, each as
// RevokeSession does (feed entry, audit event with actor
// "upstream:ID", and back-channel logout to Keyward's clients). It returns
// how many sessions ended. A token with only a sid is refused: Keyward does
// not record upstream session ids. A token's jti is used once: a replay
// before its exp is refused (400) and ends nothing; a token without jti is
// refused too. Errors are *Error (400; 503 while the upstream's discovery
// has not worked yet; 500 when the store fails).
func (r *backchannelReceiver) BackchannelLogout(ctx context.Context, upstreamID, rawToken string) (_ int, err error) {
	up, ok := r.upstreams[upstreamID]
	if !ok {
		return 0, errUnknownLogoutUpstream
	}
	lc, err := up.VerifyLogoutToken(ctx, rawToken)
	if errors.Is(err, federation.ErrUpstreamUnavailable) {
		// Discovery has not worked yet: the token cannot be checked, so the
		// upstream should send it again later (OIDC Back-Channel Logout §2.8).
		r.log.WarnContext(ctx, "upstream logout token not checked: upstream unavailable", "upstream", upstreamID)
		return 0, ErrTemporarilyUnavailable.WithCause(err)
	}
	if err != nil {
		r.log.InfoContext(ctx, "upstream logout token refused", "upstream", upstreamID, "err", err)
		return 0, errInvalidLogoutToken.WithCause(err)
	}
	if lc.Subject == "" {
		r.log.InfoContext(ctx, "upstream logout token refused: no sub", "upstream", upstreamID)
		return 0, errSidOnlyLogout
	}
	release, err := r.claimLogoutJTI(ctx, upstreamID, rawToken)
	if err != nil {
		r.log.InfoContext(ctx, "upstream logout token refused", "upstream", upstreamID, "err", err)
		return 0, err
	}
	defer func() {
		if err != nil {
			release()
		}
	}()
	subject := SubjectID(upstreamID, lc.Subject)
	sessions, err := r.store.ListSessions(ctx, subject)
	if err != nil {
		return 0, ErrServerError.WithCause(fmt.Errorf("list sessions: %w", err))
	}
	actor := "upstream:" + upstreamID
	ended := 0
	for _, s := range sessions {
		if s.UpstreamID != upstreamID {
			continue
		}
		_, err := r.sessions.RevokeSession(ctx, s.ID, "back-channel logout from the upstream", actor)
		if errors.Is(err, ErrUnknownSession) {
			continue // ended meanwhile
		}
		if err != nil {
			return ended, ErrServerError.WithCause(err)
		}
		ended++
	}
	r.log.InfoContext(ctx, "upstream back-channel logout", "event", "upstream_logout", "upstream", upstreamID,
		"sub", subject, "sessions", ended)
	return ended, nil
}
