package broker

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/handler/pkce"

	"github.com/keyward/keyward/store"
)

// grantStore is the part of the store that fosite's records need.
type grantStore interface {
	CreateGrant(ctx context.Context, g store.Grant) error
	GetGrant(ctx context.Context, kind store.GrantKind, signature string) (store.Grant, error)
	UpdateGrant(ctx context.Context, kind store.GrantKind, signature string, updater func(store.Grant) (store.Grant, error)) error
	DeleteGrant(ctx context.Context, kind store.GrantKind, signature string) error
	DeleteGrantsByRequest(ctx context.Context, requestID string, kinds ...store.GrantKind) (int, error)
}

// fositeStore implements fosite's storage interfaces on Keyward's store.
// Records are keyed by token signatures, never tokens; the one record fosite
// keys by the raw authorize code (the OIDC session) is keyed by its hash.
type fositeStore struct {
	grants  grantStore
	clients *clientRegistry
	// refreshGrace: a rotated refresh token still works for this long, so
	// racing refreshes of one client do not revoke the family.
	refreshGrace time.Duration
	// refreshMaxTTL caps a refresh family's lifetime from its first grant.
	refreshMaxTTL time.Duration
	// codeTTL is the lifetime of PKCE and OIDC records (those of the code).
	codeTTL time.Duration
	now     func() time.Time
	// tokens keeps the revocation state of access tokens (accesstoken.go).
	tokens *accessTokens
}

var (
	_ fosite.Storage                     = (*fositeStore)(nil)
	_ oauth2.CoreStorage                 = (*fositeStore)(nil)
	_ oauth2.TokenRevocationStorage      = (*fositeStore)(nil)
	_ pkce.PKCERequestStorage            = (*fositeStore)(nil)
	_ openid.OpenIDConnectRequestStorage = (*fositeStore)(nil)
)

// storedRequest is the serialized fosite.Request (its Client and Session are
// interfaces, so it cannot be unmarshalled whole).
type storedRequest struct {
	ID                string          `json:"id"`
	RequestedAt       time.Time       `json:"requested_at"`
	ClientID          string          `json:"client_id"`
	RequestedScope    []string        `json:"scopes,omitempty"`
	GrantedScope      []string        `json:"granted_scopes,omitempty"`
	RequestedAudience []string        `json:"audiences,omitempty"`
	GrantedAudience   []string        `json:"granted_audiences,omitempty"`
	Form              url.Values      `json:"form,omitempty"`
	Session           json.RawMessage `json:"session"`
}

func (s *fositeStore) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	c, ok := s.clients.get(id)
	if !ok {
		return nil, fosite.ErrNotFound.WithWrap(errUnknownClient)
	}
	return c, nil
}

// ClientAssertionJWTValid reports whether a client-assertion jti is unused.
func (s *fositeStore) ClientAssertionJWTValid(ctx context.Context, jti string) error {
	g, err := s.grants.GetGrant(ctx, store.GrantAssertionJTI, jti)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get assertion jti: %w", err)
	}
	if !g.ExpiresAt.After(time.Now()) {
		return nil
	}
	return fosite.ErrJTIKnown
}

func (s *fositeStore) SetClientAssertionJWT(ctx context.Context, jti string, exp time.Time) error {
	err := s.grants.CreateGrant(ctx, store.Grant{Kind: store.GrantAssertionJTI, Signature: jti, ExpiresAt: exp, RequestedAt: s.now()})
	if errors.Is(err, store.ErrConflict) {
		return fosite.ErrJTIKnown
	}
	return err
}

func (s *fositeStore) create(ctx context.Context, kind store.GrantKind, sig string, r fosite.Requester, expires time.Time, accessSig string) error {
	sess, _ := r.GetSession().(*Session)
	data, err := s.marshal(r)
	if err != nil {
		return err
	}
	g := store.Grant{
		Kind:            kind,
		Signature:       sig,
		RequestID:       r.GetID(),
		ClientID:        r.GetClient().GetID(),
		Active:          true,
		AccessSignature: accessSig,
		RequestedAt:     r.GetRequestedAt(),
		ExpiresAt:       expires,
		Data:            data,
	}
	if sess != nil {
		g.Subject = sess.GetSubject()
		g.SessionID = sess.SessionID
	}
	if kind == store.GrantRefreshToken {
		g.AccessTokenID, g.AccessExpiresAt = issuedAccessToken(r)
	}
	if err := s.createGrant(ctx, g); err != nil {
		return fmt.Errorf("create %s: %w", kind, err)
	}
	return nil
}

// The four low-level writers and the reader below are where the unit of
// work (uow.go) comes in: with one in ctx, writes are gathered into it and
// reads see its pending writes; without one they go to the store at once.

func (s *fositeStore) createGrant(ctx context.Context, g store.Grant) error {
	if u := unitFrom(ctx); u != nil {
		return u.createGrant(g)
	}
	return s.grants.CreateGrant(ctx, g)
}

func (s *fositeStore) getGrant(ctx context.Context, kind store.GrantKind, sig string) (store.Grant, error) {
	fetch := func() (store.Grant, error) { return s.grants.GetGrant(ctx, kind, sig) }
	if u := unitFrom(ctx); u != nil {
		return u.readGrant(kind, sig, fetch)
	}
	return fetch()
}

// update runs fn on the stored record: at commit with a unit of work, at
// once without. A missing record is fosite.ErrNotFound.
func (s *fositeStore) update(ctx context.Context, kind store.GrantKind, sig string, fn func(store.Grant) (store.Grant, error)) error {
	if u := unitFrom(ctx); u != nil {
		return u.updateGrant(kind, sig, fn)
	}
	err := s.grants.UpdateGrant(ctx, kind, sig, fn)
	if errors.Is(err, store.ErrNotFound) {
		return fosite.ErrNotFound
	}
	return err
}

func (s *fositeStore) marshal(r fosite.Requester) ([]byte, error) {
	sess, err := json.Marshal(r.GetSession())
	if err != nil {
		return nil, fmt.Errorf("marshal session: %w", err)
	}
	sr := storedRequest{
		ID:                r.GetID(),
		RequestedAt:       r.GetRequestedAt(),
		ClientID:          r.GetClient().GetID(),
		RequestedScope:    r.GetRequestedScopes(),
		GrantedScope:      r.GetGrantedScopes(),
		RequestedAudience: r.GetRequestedAudience(),
		GrantedAudience:   r.GetGrantedAudience(),
		Form:              r.GetRequestForm(),
		Session:           sess,
	}
	b, err := json.Marshal(sr)
	if err != nil {
		return nil, fmt.Errorf("marshal request: %w", err)
	}
	return b, nil
}

// load rebuilds the request of g. proto is the session prototype fosite
// passes in; it may be nil (revocation does that), then a new one is used.
func (s *fositeStore) load(ctx context.Context, g store.Grant, proto fosite.Session) (fosite.Requester, error) {
	var sr storedRequest
	if err := json.Unmarshal(g.Data, &sr); err != nil {
		return nil, fmt.Errorf("unmarshal request: %w", err)
	}
	if proto == nil {
		proto = newSession()
	}
	if err := json.Unmarshal(sr.Session, proto); err != nil {
		return nil, fmt.Errorf("unmarshal session: %w", err)
	}
	client, err := s.GetClient(ctx, sr.ClientID)
	if err != nil {
		// A client removed from the configuration voids its grants.
		return nil, fosite.ErrNotFound.WithWrap(err)
	}
	return &fosite.Request{
		ID:                sr.ID,
		RequestedAt:       sr.RequestedAt,
		Client:            client,
		RequestedScope:    sr.RequestedScope,
		GrantedScope:      sr.GrantedScope,
		RequestedAudience: sr.RequestedAudience,
		GrantedAudience:   sr.GrantedAudience,
		Form:              sr.Form,
		Session:           proto,
	}, nil
}

// errGrantExpired marks the not-found of an expired record, so that the
// answer can say it expired (descriptions.go).
var errGrantExpired = errors.New("expired")

// get loads a record; an expired one is reported as not found.
func (s *fositeStore) get(ctx context.Context, kind store.GrantKind, sig string, proto fosite.Session) (store.Grant, fosite.Requester, error) {
	g, err := s.getGrant(ctx, kind, sig)
	if errors.Is(err, store.ErrNotFound) {
		return g, nil, fosite.ErrNotFound
	}
	if err != nil {
		return g, nil, fmt.Errorf("get %s: %w", kind, err)
	}
	// fosite computes these expiries with time.Now, so they are checked
	// against the same clock, not the injected one.
	if !g.ExpiresAt.IsZero() && !g.ExpiresAt.After(time.Now()) {
		return g, nil, fosite.ErrNotFound.WithWrap(errGrantExpired)
	}
	r, err := s.load(ctx, g, proto)
	return g, r, err
}

// del removes a record: at commit with a unit of work (a missing record is
// then ignored), at once without (missing: fosite.ErrNotFound).
func (s *fositeStore) del(ctx context.Context, kind store.GrantKind, sig string) error {
	if u := unitFrom(ctx); u != nil {
		return u.deleteGrant(kind, sig)
	}
	err := s.grants.DeleteGrant(ctx, kind, sig)
	if errors.Is(err, store.ErrNotFound) {
		return fosite.ErrNotFound
	}
	return err
}

func expiry(r fosite.Requester, t fosite.TokenType, fallback time.Time) time.Time {
	if sess := r.GetSession(); sess != nil {
		if e := sess.GetExpiresAt(t); !e.IsZero() {
			return e
		}
	}
	return fallback
}

// --- authorize codes

func (s *fositeStore) CreateAuthorizeCodeSession(ctx context.Context, sig string, r fosite.Requester) error {
	return s.create(ctx, store.GrantAuthorizeCode, sig, r, expiry(r, fosite.AuthorizeCode, s.now().Add(s.codeTTL)), "")
}

// GetAuthorizeCodeSession returns the request together with
// fosite.ErrInvalidatedAuthorizeCode for a used code, so fosite can revoke
// the tokens issued from it.
func (s *fositeStore) GetAuthorizeCodeSession(ctx context.Context, sig string, proto fosite.Session) (fosite.Requester, error) {
	g, r, err := s.get(ctx, store.GrantAuthorizeCode, sig, proto)
	if err != nil {
		return nil, err
	}
	if !g.Active {
		return r, fosite.ErrInvalidatedAuthorizeCode
	}
	return r, nil
}

// errCodeRaced: the code was redeemed by a concurrent request first (the
// precondition of InvalidateAuthorizeCodeSession, checked at commit).
var errCodeRaced = errors.New("the authorization code was redeemed by a concurrent request")

// InvalidateAuthorizeCodeSession marks the code used, on the condition
// that it is still unused when the unit of work commits: of two
// redemptions racing, one wins.
func (s *fositeStore) InvalidateAuthorizeCodeSession(ctx context.Context, sig string) error {
	if u := unitFrom(ctx); u != nil {
		u.mu.Lock()
		u.redeemedCode = sig
		u.mu.Unlock()
	}
	return s.update(ctx, store.GrantAuthorizeCode, sig, func(g store.Grant) (store.Grant, error) {
		if !g.Active {
			return g, errCodeRaced
		}
		g.Active = false
		return g, nil
	})
}

// --- PKCE (keyed by the code's signature) and OIDC (keyed by the code)

func (s *fositeStore) CreatePKCERequestSession(ctx context.Context, sig string, r fosite.Requester) error {
	return s.create(ctx, store.GrantPKCE, sig, r, expiry(r, fosite.AuthorizeCode, s.now().Add(s.codeTTL)), "")
}

// GetPKCERequestSession finds the PKCE record of a code. A record gone
// because a concurrent request redeemed the code (and deleted it) since
// this request read the code is code reuse: errCodeRaced, whose answer
// revokes what the code was redeemed for, as fosite does for a code
// found used.
func (s *fositeStore) GetPKCERequestSession(ctx context.Context, sig string, proto fosite.Session) (fosite.Requester, error) {
	_, r, err := s.get(ctx, store.GrantPKCE, sig, proto)
	if errors.Is(err, fosite.ErrNotFound) && unitFrom(ctx) != nil {
		if code, cerr := s.grants.GetGrant(ctx, store.GrantAuthorizeCode, sig); cerr == nil && !code.Active {
			return nil, errCodeRaced
		}
	}
	return r, err
}

func (s *fositeStore) DeletePKCERequestSession(ctx context.Context, sig string) error {
	return s.del(ctx, store.GrantPKCE, sig)
}

// codeKey hashes a raw authorize code: fosite keys the OIDC record by the
// code itself, and codes are never stored.
func codeKey(code string) string {
	h := sha256.Sum256([]byte(code))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

func (s *fositeStore) CreateOpenIDConnectSession(ctx context.Context, code string, r fosite.Requester) error {
	return s.create(ctx, store.GrantOIDC, codeKey(code), r, expiry(r, fosite.AuthorizeCode, s.now().Add(s.codeTTL)), "")
}

func (s *fositeStore) GetOpenIDConnectSession(ctx context.Context, code string, r fosite.Requester) (fosite.Requester, error) {
	_, req, err := s.get(ctx, store.GrantOIDC, codeKey(code), r.GetSession())
	if errors.Is(err, fosite.ErrNotFound) {
		return nil, openid.ErrNoSessionFound
	}
	return req, err
}

func (s *fositeStore) DeleteOpenIDConnectSession(ctx context.Context, code string) error {
	return s.del(ctx, store.GrantOIDC, codeKey(code))
}

// --- access tokens: self-contained, nothing stored (accesstoken.go)

// CreateAccessTokenSession stores nothing. The access token's jti and
// expiry go on the family record written in the same request: the refresh
// token (create), or, for a code redemption, the authorize code.
func (s *fositeStore) CreateAccessTokenSession(ctx context.Context, _ string, r fosite.Requester) error {
	return s.recordAccessOnCode(ctx, r)
}

// GetAccessTokenSession finds nothing: access tokens are verified from
// their claims (accessTokens.verify), never looked up by signature.
func (s *fositeStore) GetAccessTokenSession(context.Context, string, fosite.Session) (fosite.Requester, error) {
	return nil, fosite.ErrNotFound
}

// DeleteAccessTokenSession has nothing to delete.
func (s *fositeStore) DeleteAccessTokenSession(context.Context, string) error { return nil }

// RevokeAccessToken denies the access tokens of the family requestID that
// may still be alive (code reuse, a refused grant).
func (s *fositeStore) RevokeAccessToken(ctx context.Context, requestID string) error {
	return s.tokens.denyFamily(context.WithoutCancel(ctx), requestID) // stands though the client has gone
}

// --- refresh tokens

// CreateRefreshTokenSession stores a refresh token, capping its expiry at the
// family's absolute lifetime (fosite slides it on every refresh).
func (s *fositeStore) CreateRefreshTokenSession(ctx context.Context, sig, accessSig string, r fosite.Requester) error {
	exp := expiry(r, fosite.RefreshToken, s.now().Add(s.refreshMaxTTL))
	if sess, ok := r.GetSession().(*Session); ok && !sess.FamilyStart.IsZero() && s.refreshMaxTTL > 0 {
		if limit := sess.FamilyStart.Add(s.refreshMaxTTL); exp.After(limit) {
			exp = limit
			// HMAC validation reads the expiry from the session.
			sess.SetExpiresAt(fosite.RefreshToken, limit)
		}
	}
	return s.create(ctx, store.GrantRefreshToken, sig, r, exp, accessSig)
}

// GetRefreshTokenSession returns a rotated token's request with
// fosite.ErrInactiveToken (fosite then revokes the family at once: reuse
// detection), except while its one grace use is free. It writes nothing:
// the grace use is claimed at commit (RotateRefreshToken).
func (s *fositeStore) GetRefreshTokenSession(ctx context.Context, sig string, proto fosite.Session) (fosite.Requester, error) {
	g, r, err := s.get(ctx, store.GrantRefreshToken, sig, proto)
	if err != nil {
		return nil, err
	}
	if !g.Active && !s.graceFree(g, s.now()) {
		return r, fosite.ErrInactiveToken
	}
	return r, nil
}

// graceFree reports whether the rotated refresh token g still has its one
// use within the grace period after its rotation (a client racing itself).
func (s *fositeStore) graceFree(g store.Grant, now time.Time) bool {
	return !g.Active && !g.RotatedAt.IsZero() && now.Sub(g.RotatedAt) <= s.refreshGrace && g.GraceUsedAt.IsZero()
}

// errRefreshRaced: the refresh token was no longer the family's current
// one when the refresh committed, and its grace use was gone (the
// precondition of RotateRefreshToken).
var errRefreshRaced = errors.New("the refresh token was used by a concurrent request")

// DeleteRefreshTokenSession removes one refresh token at once: fosite
// calls it only on reuse, and revocations are never gathered into a unit
// of work (the request fails, but the revocation must stand). A token
// already gone is no error: a concurrent request that detected the same
// reuse removed it (fosite would answer invalid_request, "retry").
func (s *fositeStore) DeleteRefreshTokenSession(ctx context.Context, sig string) error {
	// Not even a client that hangs up at once (a thief's) stops it.
	err := s.grants.DeleteGrant(context.WithoutCancel(ctx), store.GrantRefreshToken, sig)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// RotateRefreshToken marks the presented refresh token used, on the
// condition, checked at commit, that it is still the family's current one
// or that its one grace use is free and within the grace window (then the
// grace use is taken and the first rotation time kept). The access token
// issued with the rotated refresh token is not revoked: it expires within
// the access-token lifetime.
func (s *fositeStore) RotateRefreshToken(ctx context.Context, requestID, sig string) error {
	now := s.now()
	err := s.update(ctx, store.GrantRefreshToken, sig, func(g store.Grant) (store.Grant, error) {
		switch {
		case g.Active:
			g.Active = false
			g.RotatedAt = now
		case s.graceFree(g, now):
			g.GraceUsedAt = now
		default:
			return g, errRefreshRaced
		}
		return g, nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return fosite.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("rotate refresh token: %w", err)
	}
	return nil
}

// RevokeRefreshToken denies the family's access tokens that may still be
// alive, then removes every refresh token of the family; at once, and even
// when the client has gone away meanwhile (a detected reuse must stand).
func (s *fositeStore) RevokeRefreshToken(ctx context.Context, requestID string) error {
	ctx = context.WithoutCancel(ctx)
	if err := s.tokens.denyFamily(ctx, requestID); err != nil {
		return err
	}
	_, err := s.grants.DeleteGrantsByRequest(ctx, requestID, store.GrantRefreshToken)
	return err
}
