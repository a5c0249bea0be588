package broker

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sync"
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

// issueAnchor closes the window between fosite's separate store calls at the
// token endpoint. fosite first marks the record a request is redeemed from
// used (InvalidateAuthorizeCodeSession, RotateRefreshToken), then creates
// the new access and refresh tokens, each in its own transaction. A
// revocation landing in between (reuse detection, /revoke, deprovisioning,
// logout: every one deletes that record with the rest of the family) would
// miss the tokens created after it. So the token endpoint gives each
// request an anchor; the redeem call records the redeemed record in it; and
// every token record created afterwards is followed by a read of that
// record: gone means revoked meanwhile, and the new records are deleted and
// the request refused (errRevokedWhileIssuing). A revocation after that read
// deletes the new records itself, because they are already stored.
type issueAnchor struct {
	mu   sync.Mutex
	kind store.GrantKind
	sig  string
}

type issueAnchorKey struct{}

// withIssueAnchor returns ctx carrying a fresh anchor for one token request.
func withIssueAnchor(ctx context.Context) context.Context {
	return context.WithValue(ctx, issueAnchorKey{}, &issueAnchor{})
}

// setAnchor records the record the request is redeemed from.
func setAnchor(ctx context.Context, kind store.GrantKind, sig string) {
	if a, ok := ctx.Value(issueAnchorKey{}).(*issueAnchor); ok {
		a.mu.Lock()
		a.kind, a.sig = kind, sig
		a.mu.Unlock()
	}
}

// errRevokedWhileIssuing: the grant was revoked while its new tokens were
// being stored; they have been deleted again.
var errRevokedWhileIssuing = errors.New("the grant was revoked while its tokens were being issued")

// checkAnchor runs after a token record of requestID was created; see
// issueAnchor.
func (s *fositeStore) checkAnchor(ctx context.Context, requestID string) error {
	a, ok := ctx.Value(issueAnchorKey{}).(*issueAnchor)
	if !ok {
		return nil
	}
	a.mu.Lock()
	kind, sig := a.kind, a.sig
	a.mu.Unlock()
	if sig == "" {
		return nil
	}
	_, err := s.grants.GetGrant(ctx, kind, sig)
	if err == nil {
		return nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("check %s: %w", kind, err)
	}
	if _, err := s.grants.DeleteGrantsByRequest(ctx, requestID, store.GrantAccessToken, store.GrantRefreshToken); err != nil {
		return fmt.Errorf("delete tokens of a revoked grant: %w", err)
	}
	return errRevokedWhileIssuing
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
	if err := s.grants.CreateGrant(ctx, g); err != nil {
		return fmt.Errorf("create %s: %w", kind, err)
	}
	return nil
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
	g, err := s.grants.GetGrant(ctx, kind, sig)
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

func (s *fositeStore) del(ctx context.Context, kind store.GrantKind, sig string) error {
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

func (s *fositeStore) InvalidateAuthorizeCodeSession(ctx context.Context, sig string) error {
	setAnchor(ctx, store.GrantAuthorizeCode, sig)
	err := s.grants.UpdateGrant(ctx, store.GrantAuthorizeCode, sig, func(g store.Grant) (store.Grant, error) {
		g.Active = false
		return g, nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return fosite.ErrNotFound
	}
	return err
}

// --- PKCE (keyed by the code's signature) and OIDC (keyed by the code)

func (s *fositeStore) CreatePKCERequestSession(ctx context.Context, sig string, r fosite.Requester) error {
	return s.create(ctx, store.GrantPKCE, sig, r, expiry(r, fosite.AuthorizeCode, s.now().Add(s.codeTTL)), "")
}

func (s *fositeStore) GetPKCERequestSession(ctx context.Context, sig string, proto fosite.Session) (fosite.Requester, error) {
	_, r, err := s.get(ctx, store.GrantPKCE, sig, proto)
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
	return s.tokens.denyFamily(ctx, requestID)
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
	if err := s.create(ctx, store.GrantRefreshToken, sig, r, exp, accessSig); err != nil {
		return err
	}
	return s.checkAnchor(ctx, r.GetID())
}

// GetRefreshTokenSession returns a rotated token's request with
// fosite.ErrInactiveToken (fosite then revokes the family: reuse detection),
// except for one use within the grace period after its rotation.
func (s *fositeStore) GetRefreshTokenSession(ctx context.Context, sig string, proto fosite.Session) (fosite.Requester, error) {
	g, r, err := s.get(ctx, store.GrantRefreshToken, sig, proto)
	if err != nil {
		return nil, err
	}
	if !g.Active {
		if s.takeGrace(ctx, g) {
			return r, nil
		}
		return r, fosite.ErrInactiveToken
	}
	return r, nil
}

// errGraceTaken: the one grace use of a rotated refresh token is gone.
var errGraceTaken = errors.New("grace use already taken")

// takeGrace claims, atomically, the single use that a rotated refresh token
// allows within the grace period (a client racing itself). A second use is
// reuse: the caller then reports the token inactive and fosite revokes the
// family.
func (s *fositeStore) takeGrace(ctx context.Context, g store.Grant) bool {
	now := s.now()
	if g.RotatedAt.IsZero() || now.Sub(g.RotatedAt) > s.refreshGrace || !g.GraceUsedAt.IsZero() {
		return false
	}
	err := s.grants.UpdateGrant(ctx, g.Kind, g.Signature, func(old store.Grant) (store.Grant, error) {
		if !old.GraceUsedAt.IsZero() {
			return old, errGraceTaken
		}
		old.GraceUsedAt = now
		return old, nil
	})
	return err == nil
}

func (s *fositeStore) DeleteRefreshTokenSession(ctx context.Context, sig string) error {
	return s.del(ctx, store.GrantRefreshToken, sig)
}

// RotateRefreshToken marks the presented refresh token used. A second
// rotation within the grace period keeps the first rotation time.
func (s *fositeStore) RotateRefreshToken(ctx context.Context, requestID, sig string) error {
	setAnchor(ctx, store.GrantRefreshToken, sig)
	err := s.grants.UpdateGrant(ctx, store.GrantRefreshToken, sig, func(g store.Grant) (store.Grant, error) {
		if g.Active {
			g.Active = false
			g.RotatedAt = s.now()
		}
		return g, nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return fosite.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("rotate refresh token: %w", err)
	}
	// The access token issued with the rotated refresh token is not
	// revoked: it expires within the access-token lifetime.
	return nil
}

// RevokeRefreshToken denies the family's access tokens that may still be
// alive, then removes every refresh token of the family.
func (s *fositeStore) RevokeRefreshToken(ctx context.Context, requestID string) error {
	if err := s.tokens.denyFamily(ctx, requestID); err != nil {
		return err
	}
	_, err := s.grants.DeleteGrantsByRequest(ctx, requestID, store.GrantRefreshToken)
	return err
}
