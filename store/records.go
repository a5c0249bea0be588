package store

import (
	"net/url"
	"time"
)

// LoginAttempt is an /authorize request waiting for the person to sign in
// upstream. It carries everything needed to finish the request at /callback.
type LoginAttempt struct {
	ID string
	// ClientID of the client that started the flow.
	ClientID string
	// AuthorizeForm is the original, validated /authorize query; the broker
	// re-parses it when the sign-in completes.
	AuthorizeForm url.Values
	// UpstreamID is the chosen upstream; empty while the chooser is shown.
	UpstreamID string
	// State, Nonce and PKCEVerifier are the upstream leg's protection values.
	// State is unique across attempts (the backend indexes it).
	State        string
	Nonce        string
	PKCEVerifier string
	// BrowserBinding is a hash of the value of the cookie set in the browser
	// that started the attempt; the callback must present the same cookie.
	BrowserBinding string
	CreatedAt      time.Time
	ExpiresAt      time.Time
}

// Session is a Keyward single sign-on session.
type Session struct {
	ID              string
	Subject         string
	UpstreamID      string
	UpstreamSubject string
	Identity        Identity
	// AuthTime is when the person last authenticated at the upstream.
	AuthTime   time.Time
	CreatedAt  time.Time
	LastSeenAt time.Time
	ExpiresAt  time.Time
	// UpstreamRefreshToken is the upstream's refresh token, sealed by the
	// broker (AES-256-GCM); never plaintext. Empty: the upstream is not
	// re-checked for this session.
	UpstreamRefreshToken []byte
	// UpstreamCheckedAt is when the upstream last vouched for the person:
	// the sign-in, then each successful re-check.
	UpstreamCheckedAt time.Time
}

// Identity is the mapped identity of a person, as carried into tokens.
type Identity struct {
	Email             string
	EmailVerified     bool
	Name              string
	PreferredUsername string
	Groups            []string
	// Extra holds further mapped claims (string values only).
	Extra map[string]string
}

// Subject is a person or workload known to Keyward. Its ID is the stable,
// opaque `sub` of every token issued to it.
type Subject struct {
	ID              string
	UpstreamID      string
	UpstreamSubject string
	Email           string
	Name            string
	// Disabled subjects may not sign in or receive tokens.
	Disabled bool
	// DisabledAt, DisabledBy and DisabledReason say when, by whom (the
	// audit actor) and why the subject was last disabled: set by
	// Deprovision from its audit event, cleared on reinstatement.
	DisabledAt     time.Time
	DisabledBy     string
	DisabledReason string
	// NotBefore: tokens issued before this instant are void (zero: none).
	NotBefore   time.Time
	CreatedAt   time.Time
	UpdatedAt   time.Time
	LastLoginAt time.Time
}

// GrantKind names the kind of a fosite record.
type GrantKind string

// The grant kinds.
const (
	GrantAuthorizeCode GrantKind = "authorize_code"
	GrantPKCE          GrantKind = "pkce"
	GrantOIDC          GrantKind = "oidc"
	GrantAccessToken   GrantKind = "access_token" // no longer written (self-contained access tokens); upgrades remove old ones
	GrantRefreshToken  GrantKind = "refresh_token"
	// GrantAssertionJTI records a used single-use token id (replay guard):
	// client-assertion jtis, single-use subject tokens, upstream logout
	// tokens.
	GrantAssertionJTI GrantKind = "assertion_jti"
	// GrantSessionClient records that ClientID was issued tokens in the
	// Keyward session SessionID; it lives as long as the session, so the
	// client is known (for back-channel logout) after the codes and tokens
	// themselves have expired.
	GrantSessionClient GrantKind = "session_client"
	// GrantDeniedToken: a revoked access token, keyed by its jti, kept
	// until the token's expiry plus the broker's clock-skew leeway
	// (ExpiresAt), so a point lookup tells whether
	// a self-contained access token was revoked (/revoke, code reuse, a
	// revoked refresh family).
	GrantDeniedToken GrantKind = "denied_token"
	// GrantEndedSession: a Keyward session that was ended (logout, an admin
	// revoke, back-channel logout, a failed upstream re-check), keyed by
	// its id, kept until no token carrying its sid can still be alive
	// (ExpiresAt), so a point lookup tells an ended session from one that
	// merely expired. It carries no SessionID or Subject, so ending the
	// session or deprovisioning its subject does not delete it.
	GrantEndedSession GrantKind = "ended_session"
)

// GrantKinds lists every kind, in a stable order.
var GrantKinds = []GrantKind{GrantAuthorizeCode, GrantPKCE, GrantOIDC, GrantAccessToken, GrantRefreshToken, GrantAssertionJTI, GrantSessionClient, GrantDeniedToken, GrantEndedSession}

// GrantDeletion is what Store.EndSession removed.
type GrantDeletion struct {
	// Grants is how many grants were removed.
	Grants int
	// ClientIDs are the distinct non-empty ClientIDs of the removed grants,
	// sorted; nil when none.
	ClientIDs []string
	// Revocation is the feed entry appended with the deletion, with its
	// Seq; zero when none was asked for.
	Revocation Revocation
}

// Grant is one fosite record: the serialized request behind a code or token,
// keyed by the token's signature (never the token itself).
type Grant struct {
	Kind      GrantKind
	Signature string
	// RequestID is the grant family: every code, access and refresh token
	// descending from one authorization shares it.
	RequestID string
	ClientID  string
	Subject   string
	SessionID string
	// Active is false once a code is used or a refresh token is rotated or
	// revoked.
	Active bool
	// AccessSignature links a refresh token to the access token issued with it.
	AccessSignature string
	// AccessTokenID is the jti of the access token issued together with
	// this code redemption or refresh token, and AccessExpiresAt its
	// expiry: access tokens are not stored, so revoking the family denies
	// that jti until then (RevokeToken entries, GrantDeniedToken grants).
	AccessTokenID   string
	AccessExpiresAt time.Time
	// RotatedAt is when a refresh token was rotated (zero: not rotated).
	RotatedAt time.Time
	// GraceUsedAt is when a rotated refresh token was used within the grace
	// period (zero: not yet); it may be used so once only.
	GraceUsedAt time.Time
	RequestedAt time.Time
	ExpiresAt   time.Time
	// Data is the broker's serialization of the request; opaque to the store.
	Data []byte
}

// KeyState is where a signing key is in its lifecycle.
type KeyState string

// The key states, in lifecycle order.
const (
	// KeyNext: published in the JWKS, not yet signing.
	KeyNext KeyState = "next"
	// KeyCurrent: signs new tokens.
	KeyCurrent KeyState = "current"
	// KeyRetired: published until the last token it signed has expired.
	KeyRetired KeyState = "retired"
)

// SigningKey is one key of the key set.
type SigningKey struct {
	ID        string // the JWK kid
	Algorithm string // RS256 | ES256 | EdDSA
	State     KeyState
	// PrivateKey is PKCS#8 DER, sealed with AES-256-GCM when Encrypted.
	PrivateKey []byte
	Encrypted  bool
	// PublicKey is PKIX DER (never encrypted).
	PublicKey []byte
	CreatedAt time.Time
	// ActivatesAt: when a next key becomes current.
	ActivatesAt time.Time
	// RetiredAt and ExpiresAt: when a key stopped signing, and when it may
	// be deleted (after the last token it signed has expired).
	RetiredAt time.Time
	ExpiresAt time.Time
}

// KeySet is every signing key, rotated as one record.
type KeySet struct {
	Keys []SigningKey
	// NextRotation is when the next key becomes current.
	NextRotation time.Time
	// Version increases by one on every stored change.
	Version   int64
	UpdatedAt time.Time
}

// RevocationKind says what a feed entry revokes.
type RevocationKind string

// The revocation kinds.
const (
	// RevokeSubject: every token of Subject issued before NotBefore.
	RevokeSubject RevocationKind = "subject"
	// RevokeSession: every token carrying sid = SessionID issued before NotBefore.
	RevokeSession RevocationKind = "session"
	// RevokeToken: the one access token whose jti is TokenID, whatever its
	// iat (NotBefore is when it was revoked; ExpiresAt its exp plus the
	// verifiers' leeway).
	RevokeToken RevocationKind = "token"
)

// Revocation is one entry of the revocation feed that edge verifiers poll.
type Revocation struct {
	Seq       int64
	Kind      RevocationKind
	Subject   string
	SessionID string
	// TokenID is the jti of a RevokeToken entry.
	TokenID string
	// NotBefore: tokens issued before it are void.
	NotBefore time.Time
	// ExpiresAt: after it no token issued before NotBefore can still be
	// alive, so the entry may leave the feed.
	ExpiresAt time.Time
	CreatedAt time.Time
}

// AuditEvent records an administrative action.
type AuditEvent struct {
	Seq    int64
	At     time.Time
	Actor  string // who (e.g. "admin-api")
	Action string // what (e.g. "deprovision", "reinstate", "keys.rotate")
	Target string // on whom or what (a subject, a session id, a kid)
	Reason string // why, as given
	// Subject is the person an event on something of theirs concerns (the
	// subject of the session a session.revoke ends); empty when Target is
	// the person, or nobody's.
	Subject string
}

// Deprovisioning is the input of Store.Deprovision.
type Deprovisioning struct {
	Subject string
	At      time.Time // the new NotBefore
	// FeedExpiresAt: when the feed entry may be collected (At + the longest
	// token lifetime).
	FeedExpiresAt time.Time
	Audit         AuditEvent
}

// DeprovisionResult is what Store.Deprovision did.
type DeprovisionResult struct {
	Revocation Revocation
	Sessions   int
	Grants     int
	// SessionClients maps each SessionID of the removed grants to the
	// distinct non-empty ClientIDs of the removed grants with that
	// SessionID, sorted; nil when empty. Grants without a SessionID (tokens
	// issued by token exchange) or without a ClientID are counted in Grants
	// only.
	SessionClients map[string][]string
}
