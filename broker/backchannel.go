package broker

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
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
// once; delivery runs in the background, bounded by
// Config.BackgroundContext, with up to logoutAttempts attempts.
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

// recordSessionClient records that clientID is being issued tokens in
// session s (a GrantSessionClient grant expiring with the session), so that
// the client is told when the session ends even after its codes and access
// tokens have expired and been collected. Recording it again is a no-op.
func (b *Broker) recordSessionClient(ctx context.Context, s store.Session, clientID string) error {
	err := b.cfg.Store.CreateGrant(ctx, store.Grant{
		Kind:        store.GrantSessionClient,
		Signature:   s.ID + "/" + clientID,
		ClientID:    clientID,
		Subject:     s.Subject,
		SessionID:   s.ID,
		Active:      true,
		RequestedAt: b.cfg.Now().UTC(),
		ExpiresAt:   s.ExpiresAt,
	})
	if err != nil && !errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("record session client: %w", err)
	}
	return nil
}

// notifyLogout tells the clients clientIDs that have a back-channel logout
// URI that session sid of subject has ended. Tokens are signed now;
// delivery is in the background (WaitBackchannelLogout waits for it). A
// client no longer configured, or without a URI, is skipped.
func (b *Broker) notifyLogout(ctx context.Context, subject, sid string, clientIDs []string) {
	for _, id := range clientIDs {
		c, ok := b.clients.get(id)
		if !ok || c.backchannelLogoutURI == "" {
			continue
		}
		tok, err := b.logoutToken(ctx, c.ID, subject, sid)
		if err != nil {
			b.log.ErrorContext(ctx, "back-channel logout: cannot sign logout token", "client_id", c.ID, "sid", sid, "err", err)
			continue
		}
		b.logoutWG.Add(1)
		go func() {
			defer b.logoutWG.Done()
			b.deliverLogout(b.cfg.BackgroundContext, c.ID, c.backchannelLogoutURI, sid, tok)
		}()
	}
}

// logoutToken signs the logout token of session sid of subject for
// clientID. §2.4
func (b *Broker) logoutToken(ctx context.Context, clientID, subject, sid string) (string, error) {
	now := b.cfg.Now()
	claims := map[string]any{
		"iss":    b.cfg.Issuer,
		"aud":    clientID,
		"iat":    now.Unix(),
		"exp":    now.Add(logoutTokenTTL).Unix(),
		"jti":    rand.Text(),
		"sub":    subject,
		"sid":    sid,
		"events": map[string]any{federation.BackchannelLogoutEvent: map[string]any{}},
	}
	return b.cfg.Keys.Sign(ctx, claims, map[string]any{"typ": logoutTokenType})
}

// deliverLogout POSTs token to uri (§2.5), retrying a network error, 429
// or 5xx after BackchannelRetryDelay, then twice that, until ctx ends.
// Another answer than 200 or 204 (a 400: the client refused the token) is
// not retried.
func (b *Broker) deliverLogout(ctx context.Context, clientID, uri, sid, token string) {
	hc := *b.cfg.BackchannelClient
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	body := url.Values{"logout_token": {token}}.Encode()
	delay := b.cfg.BackchannelRetryDelay
	log := b.log.With("client_id", clientID, "sid", sid)
	for attempt := 1; ; attempt++ {
		status, err := postLogout(ctx, &hc, uri, body)
		switch {
		case err == nil && (status == http.StatusOK || status == http.StatusNoContent):
			log.InfoContext(ctx, "back-channel logout delivered", "event", "backchannel_logout_sent", "attempt", attempt)
			return
		case err == nil && status != http.StatusTooManyRequests && status < 500:
			log.WarnContext(ctx, "back-channel logout refused by client", "status", status, "attempt", attempt)
			return
		case attempt == logoutAttempts:
			log.WarnContext(ctx, "back-channel logout failed; giving up", "status", status, "err", err, "attempt", attempt)
			return
		}
		log.DebugContext(ctx, "back-channel logout failed; retrying", "status", status, "err", err, "attempt", attempt, "delay", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			log.WarnContext(ctx, "back-channel logout abandoned", "err", ctx.Err(), "attempt", attempt)
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

// WaitBackchannelLogout blocks until the back-channel logout deliveries
// started so far have finished (delivered, refused, given up or abandoned).
// For tests and graceful shutdown.
func (b *Broker) WaitBackchannelLogout() { b.logoutWG.Wait() }

// Errors of BackchannelLogout, as JSON answers (§2.8: 400 when the logout
// failed).
var (
	errUnknownLogoutUpstream = ErrInvalidRequest.WithDescription("No upstream has that id.")
	errInvalidLogoutToken    = ErrInvalidRequest.WithDescription("The logout token is missing or invalid.")
	errSidOnlyLogout         = ErrInvalidRequest.WithDescription("The logout token has no sub; Keyward ends upstream sessions by subject.")
	errLogoutTokenNoJTI      = ErrInvalidRequest.WithDescription("The logout token has no jti.")
	errLogoutTokenReplayed   = ErrInvalidRequest.WithDescription("The logout token was already used (jti).")
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
func (b *Broker) claimLogoutJTI(ctx context.Context, upstreamID, rawToken string) (release func(), err error) {
	jti, exp, err := logoutTokenID(rawToken)
	if err != nil {
		return nil, errInvalidLogoutToken.WithCause(err)
	}
	if jti == "" {
		return nil, errLogoutTokenNoJTI
	}
	now := b.cfg.Now().UTC()
	if exp.IsZero() {
		exp = now.Add(logoutTokenTTL)
	}
	key := "bcl:" + upstreamID + ":" + jti
	err = b.cfg.Store.CreateGrant(ctx, store.Grant{
		Kind: store.GrantAssertionJTI, Signature: key, RequestedAt: now, ExpiresAt: exp.Add(logoutJTILeeway),
	})
	switch {
	case errors.Is(err, store.ErrConflict):
		return nil, errLogoutTokenReplayed
	case err != nil:
		return nil, ErrServerError.WithCause(fmt.Errorf("record logout token jti: %w", err))
	}
	return func() {
		if err := b.cfg.Store.DeleteGrant(ctx, store.GrantAssertionJTI, key); err != nil {
			b.log.WarnContext(ctx, "upstream logout failed and its jti stays used; the upstream's retry will be refused",
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
func (b *Broker) BackchannelLogout(ctx context.Context, upstreamID, rawToken string) (_ int, err error) {
	up, ok := b.byID[upstreamID]
	if !ok {
		return 0, errUnknownLogoutUpstream
	}
	lc, err := up.VerifyLogoutToken(ctx, rawToken)
	if errors.Is(err, federation.ErrUpstreamUnavailable) {
		// Discovery has not worked yet: the token cannot be checked, so the
		// upstream should send it again later (OIDC Back-Channel Logout §2.8).
		b.log.WarnContext(ctx, "upstream logout token not checked: upstream unavailable", "upstream", upstreamID)
		return 0, ErrTemporarilyUnavailable.WithCause(err)
	}
	if err != nil {
		b.log.InfoContext(ctx, "upstream logout token refused", "upstream", upstreamID, "err", err)
		return 0, errInvalidLogoutToken.WithCause(err)
	}
	if lc.Subject == "" {
		b.log.InfoContext(ctx, "upstream logout token refused: no sub", "upstream", upstreamID)
		return 0, errSidOnlyLogout
	}
	release, err := b.claimLogoutJTI(ctx, upstreamID, rawToken)
	if err != nil {
		b.log.InfoContext(ctx, "upstream logout token refused", "upstream", upstreamID, "err", err)
		return 0, err
	}
	defer func() {
		if err != nil {
			release()
		}
	}()
	subject := SubjectID(upstreamID, lc.Subject)
	sessions, err := b.cfg.Store.ListSessions(ctx, subject)
	if err != nil {
		return 0, ErrServerError.WithCause(fmt.Errorf("list sessions: %w", err))
	}
	actor := "upstream:" + upstreamID
	ended := 0
	for _, s := range sessions {
		if s.UpstreamID != upstreamID {
			continue
		}
		_, err := b.RevokeSession(ctx, s.ID, "back-channel logout from the upstream", actor)
		if errors.Is(err, ErrUnknownSession) {
			continue // ended meanwhile
		}
		if err != nil {
			return ended, ErrServerError.WithCause(err)
		}
		ended++
	}
	b.log.InfoContext(ctx, "upstream back-channel logout", "event", "upstream_logout", "upstream", upstreamID,
		"sub", subject, "sessions", ended)
	return ended, nil
}
