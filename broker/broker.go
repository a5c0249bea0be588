package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/token/hmac"
	fjwt "github.com/ory/fosite/token/jwt"

	"github.com/keyward/keyward/federation"
	"github.com/keyward/keyward/keys"
	"github.com/keyward/keyward/store"
)

// Store is the part of store.Store the broker uses.
type Store interface {
	grantStore
	batcher // uow.go
	CreateLoginAttempt(ctx context.Context, a store.LoginAttempt) error
	GetLoginAttempt(ctx context.Context, id string) (store.LoginAttempt, error)
	GetLoginAttemptByState(ctx context.Context, state string) (store.LoginAttempt, error)
	UpdateLoginAttempt(ctx context.Context, id string, updater func(store.LoginAttempt) (store.LoginAttempt, error)) error
	DeleteLoginAttempt(ctx context.Context, id string) error
	CreateSession(ctx context.Context, s store.Session) error
	GetSession(ctx context.Context, id string) (store.Session, error)
	UpdateSession(ctx context.Context, id string, updater func(store.Session) (store.Session, error)) error
	DeleteSession(ctx context.Context, id string) error
	GetSubject(ctx context.Context, id string) (store.Subject, error)
	UpsertSubject(ctx context.Context, id string, create func() store.Subject, updater func(store.Subject) (store.Subject, error)) (store.Subject, error)
	ListRevocations(ctx context.Context, after int64, limit int) ([]store.Revocation, int64, error)
	adminStore       // deprovision.go
	accessTokenStore // accesstoken.go
}

// Keys is what the broker needs from the key manager (*keys.Manager).
type Keys interface {
	signer
	// SigningKeyFor is the key SignAs(alg) uses now (its algorithm picks
	// the at_hash function, idtoken.go).
	SigningKeyFor(alg string) keys.Key
	// Algorithms are those the key set holds, its default (keys.algorithm:
	// ID tokens of clients that name none) first.
	Algorithms() []string
	// AccessTokenAlgorithm signs access tokens (keys.accessTokenAlgorithm).
	AccessTokenAlgorithm() string
}

// Upstream is one upstream identity provider (*federation.Upstream, or
// *federation.LazyUpstream, whose optional Ready method says whether it can
// take sign-ins yet: see availability.go).
type Upstream interface {
	ID() string
	Name() string
	// Issuer is the upstream's exact issuer URL.
	Issuer() string
	AuthCodeURL(state, nonce, pkceVerifier string, opts federation.AuthOptions) string
	Exchange(ctx context.Context, code, pkceVerifier, nonce string) (federation.Identity, error)
	// CheckAuthorizationResponseIssuer checks the RFC 9207 iss of an
	// authorization response ("" when absent) before its code is redeemed
	// (callback.go).
	CheckAuthorizationResponseIssuer(iss string) error
	// VerifyIDToken verifies an ID token the upstream issued to a native
	// app (native sign-in). It wraps federation.ErrNativeNotAccepted,
	// without any request, when the upstream does not take the token's
	// audience for native sign-in.
	VerifyIDToken(ctx context.Context, raw string) (federation.Identity, error)
	// NativePublicClients: clients without a secret may exchange the
	// upstream's ID tokens.
	NativePublicClients() bool
	// VerifyLogoutToken verifies a back-channel logout token the upstream
	// sent (backchannel.go).
	VerifyLogoutToken(ctx context.Context, raw string) (federation.LogoutClaims, error)
}

var _ Upstream = (*federation.Upstream)(nil)

// Config configures a Broker. Zero durations take the defaults noted.
type Config struct {
	// Issuer is the public base URL; endpoints live under it.
	Issuer    string
	Store     Store
	Keys      Keys
	Upstreams []Upstream
	Clients   []Client
	// RevocationReaders are the client IDs that may read the revocation feed
	// (GET /revocations, HTTP Basic with the client's secret).
	RevocationReaders []string
	// Trust verifies external subject tokens for token exchange (workload
	// federation); nil: only Keyward's own tokens can be exchanged.
	Trust Trust
	// GlobalSecret keys the HMAC of authorize codes and refresh tokens; at
	// least 32 bytes, shared by replicas.
	GlobalSecret []byte
	// UpstreamTokenKey (32 bytes) seals the upstream refresh tokens kept
	// for the upstream re-check (recheck.go). Nil: no upstream token is
	// kept and the re-check is off.
	UpstreamTokenKey []byte
	// RecheckTimeout bounds one upstream re-check (recheck.go); a slower
	// upstream counts as unavailable. Default: 5s.
	RecheckTimeout time.Duration
	// AccessTokenTTL. Default: 5m.
	AccessTokenTTL time.Duration
	// IDTokenTTL. Default: 15m.
	IDTokenTTL time.Duration
	// AuthCodeTTL. Default: 1m.
	AuthCodeTTL time.Duration
	// RefreshTokenIdleTTL: a refresh token unused this long expires. Default: 168h.
	RefreshTokenIdleTTL time.Duration
	// RefreshTokenMaxTTL: no refresh family lives longer. Default: 720h.
	RefreshTokenMaxTTL time.Duration
	// RefreshGracePeriod: a rotated refresh token still works this long. Default: 10s.
	RefreshGracePeriod time.Duration
	// SessionTTL: lifetime of Keyward's single sign-on session. Default: 24h.
	SessionTTL time.Duration
	// LoginTTL: how long a person may take to sign in upstream. Default: 10m.
	LoginTTL time.Duration
	// LoginLimits bounds how fast login attempts are written (loginlimit.go).
	LoginLimits LoginLimits
	// TokenLimits bounds each client's /token requests (tokenlimit.go).
	TokenLimits TokenLimits
	// AccessTokenClaims: identity claims copied into access tokens.
	// Default: DefaultAccessTokenClaims.
	AccessTokenClaims []string
	// Back-channel logout to clients (backchannel.go); Run delivers it.
	// BackchannelClient posts logout tokens. Default: a 5s timeout.
	BackchannelClient *http.Client
	// BackchannelRetryDelay is the wait before the second attempt; it
	// doubles for the third. Default: 1s.
	BackchannelRetryDelay time.Duration
	Logger                *slog.Logger
	Now                   func() time.Time
}

func (c *Config) withDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.AccessTokenTTL, DefaultAccessTokenTTL)
	def(&c.IDTokenTTL, DefaultIDTokenTTL)
	def(&c.AuthCodeTTL, DefaultAuthCodeTTL)
	def(&c.RefreshTokenIdleTTL, DefaultRefreshTokenIdleTTL)
	def(&c.RefreshTokenMaxTTL, DefaultRefreshTokenMaxTTL)
	def(&c.RefreshGracePeriod, DefaultRefreshGracePeriod)
	def(&c.SessionTTL, DefaultSessionTTL)
	def(&c.LoginTTL, 10*time.Minute)
	def(&c.RecheckTimeout, 5*time.Second)
	if len(c.AccessTokenClaims) == 0 {
		c.AccessTokenClaims = DefaultAccessTokenClaims()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.BackchannelClient == nil {
		c.BackchannelClient = &http.Client{Timeout: 5 * time.Second}
	}
	def(&c.BackchannelRetryDelay, time.Second)
	c.Issuer = strings.TrimSuffix(c.Issuer, "/")
}

// Broker is Keyward's OpenID Provider: the assembly of its parts, which
// web and cmd use through it. Each part holds only its own dependencies:
//   - signIn (login.go, callback.go): /authorize, single sign-on, the
//     chooser and the callback;
//   - tokenEndpoint (endpoints.go) and exchangeHandler (exchange.go):
//     /token, token exchange, /revoke, /introspect, /userinfo;
//   - rpLogout (logout.go), backchannelSender and backchannelReceiver
//     (backchannel.go): the three kinds of logout;
//   - admin (admin.go, deprovision.go, revocations.go): deprovisioning,
//     reinstating, ending sessions, audit, the revocation feed;
//
// and the rules they share: subjects (who may still get or use tokens),
// claimRules (what goes into tokens) and recheck (the upstream re-check).
type Broker struct {
	issuer    string
	upstreams []Upstream
	keys      Keys
	discovery []byte

	signIn   *signIn
	tokens   *tokenEndpoint
	rpLogout *rpLogout
	sender   *backchannelSender
	receiver *backchannelReceiver
	admin    *admin
	recheck  *recheck
	// tokenLimits: nil when TokenLimits.InsecureUnlimited.
	tokenLimits *tokenLimiter
}

// New assembles the provider and its parts. It does no I/O and starts
// nothing: background work (back-channel logout deliveries) runs in Run.
func New(cfg Config) (*Broker, error) {
	cfg.withDefaults()
	var errs []error
	if u, err := url.Parse(cfg.Issuer); err != nil || u.Scheme == "" || u.Host == "" {
		errs = append(errs, fmt.Errorf("issuer %q: must be an absolute URL", cfg.Issuer))
	}
	if cfg.Store == nil {
		errs = append(errs, errors.New("store: required"))
	}
	if cfg.Keys == nil {
		errs = append(errs, errors.New("keys: required"))
	}
	if len(cfg.GlobalSecret) < 32 {
		errs = append(errs, errors.New("global secret: at least 32 bytes are required"))
	}
	if len(cfg.Upstreams) == 0 {
		errs = append(errs, errors.New("upstreams: at least one is required"))
	}
	clients, err := newClientRegistry(cfg.Clients)
	if err != nil {
		errs = append(errs, err)
	}
	if cfg.Keys != nil {
		for i, c := range cfg.Clients {
			if err := CheckIDTokenAlgorithm(c.IDTokenSignedResponseAlg, cfg.Keys.Algorithms()); err != nil {
				errs = append(errs, fmt.Errorf("clients[%d].idTokenSignedResponseAlg: %w", i, err))
			}
		}
	}
	log := cfg.Logger.With("component", "broker")
	byID := map[string]Upstream{}
	for _, u := range cfg.Upstreams {
		if _, dup := byID[u.ID()]; dup {
			errs = append(errs, fmt.Errorf("upstreams: id %q is used twice", u.ID()))
		}
		byID[u.ID()] = u
	}
	var limiter *loginLimiter
	if !cfg.LoginLimits.InsecureUnlimited {
		if limiter, err = newLoginLimiter(cfg.LoginLimits); err != nil {
			errs = append(errs, err)
		}
	}
	sender := newBackchannelSender(cfg, clients, log)
	adm := &admin{
		store:   cfg.Store,
		clients: clients,
		readers: cfg.RevocationReaders,
		notify:  sender,
		feedTTL: max(cfg.AccessTokenTTL, cfg.IDTokenTTL),
		log:     log,
		now:     cfg.Now,
	}
	rc := &recheck{
		store: cfg.Store, upstreams: cfg.Upstreams, byID: byID, key: cfg.UpstreamTokenKey, timeout: cfg.RecheckTimeout,
		sessions: adm, log: log, now: cfg.Now,
	}
	if err := rc.initRecheck(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	subs := &subjects{store: cfg.Store, audit: adm, log: log, now: cfg.Now}
	claims := &claimRules{accessClaims: cfg.AccessTokenClaims, now: cfg.Now}
	fstore := &fositeStore{
		grants:        cfg.Store,
		clients:       clients,
		refreshGrace:  cfg.RefreshGracePeriod,
		refreshMaxTTL: cfg.RefreshTokenMaxTTL,
		codeTTL:       cfg.AuthCodeTTL,
		now:           cfg.Now,
		tokens:        &accessTokens{keys: cfg.Keys, issuer: cfg.Issuer, clients: clients, store: cfg.Store, now: cfg.Now},
	}
	exchange := &exchangeHandler{
		issuerURL: cfg.Issuer, accessTTL: cfg.AccessTokenTTL, keys: cfg.Keys, trust: cfg.Trust, fstore: fstore,
		upstreams: cfg.Upstreams, subjects: subs, claims: claims, log: log, now: cfg.Now,
	}
	provider := composeFosite(cfg, fstore, exchange, clients)
	b := &Broker{
		issuer:    cfg.Issuer,
		upstreams: cfg.Upstreams,
		keys:      cfg.Keys,
		signIn: &signIn{
			provider: provider, store: cfg.Store, clients: clients, upstreams: cfg.Upstreams, byID: byID,
			limiter: limiter, recheck: rc, subjects: subs, claims: claims,
			issuer: cfg.Issuer, loginTTL: cfg.LoginTTL, sessionTTL: cfg.SessionTTL, log: log, now: cfg.Now,
		},
		tokens: &tokenEndpoint{
			provider: provider, fstore: fstore, store: cfg.Store, clients: clients, recheck: rc, subjects: subs, log: log,
		},
		rpLogout: &rpLogout{
			store: cfg.Store, clients: clients, upstreams: byID, keys: cfg.Keys, issuer: cfg.Issuer, sessions: adm, log: log,
		},
		sender:   sender,
		receiver: &backchannelReceiver{store: cfg.Store, upstreams: byID, sessions: adm, log: log, now: cfg.Now},
		admin:    adm,
		recheck:  rc,
	}
	b.discovery = b.buildDiscovery()
	if b.tokenLimits, err = newTokenLimiter(cfg.TokenLimits, clients, log, cfg.Now); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	return b, nil
}

// composeFosite builds fosite factory by factory (never ComposeAllEnabled), with
// Keyward's token-exchange grant (exchange) among the token handlers.
func composeFosite(c Config, fstore *fositeStore, exchange *exchangeHandler, clients *clientRegistry) fosite.OAuth2Provider {
	fc := &fosite.Config{
		AccessTokenLifespan:   c.AccessTokenTTL,
		RefreshTokenLifespan:  c.RefreshTokenIdleTTL,
		AuthorizeCodeLifespan: c.AuthCodeTTL,
		IDTokenLifespan:       c.IDTokenTTL,
		IDTokenIssuer:         c.Issuer,
		AccessTokenIssuer:     c.Issuer,
		TokenURL:              c.Issuer + "/token",
		GlobalSecret:          c.GlobalSecret,
		// PKCE S256 for every client; without EnforcePKCE fosite lets a code
		// be redeemed without a verifier after one failed attempt.
		EnforcePKCE:                    true,
		EnforcePKCEForPublicClients:    true,
		EnablePKCEPlainChallengeMethod: false,
		ScopeStrategy:                  fosite.ExactScopeStrategy,
		AudienceMatchingStrategy:       fosite.ExactAudienceMatchingStrategy,
		JWTScopeClaimKey:               fjwt.JWTScopeFieldString,
		RefreshTokenScopes:             []string{"offline_access"},
		ClientSecretsHasher:            secretHasher{},
		MinParameterEntropy:            8,
		AllowedPromptValues:            []string{"login", "none", "consent", "select_account"},
		SendDebugMessagesToClients:     false,
	}
	// Access tokens are signed as keys.accessTokenAlgorithm, ID tokens as
	// each client's idTokenSignedResponseAlg (idtoken.go). The signer that
	// decodes (introspection, id_token_hint) goes by kid, whatever the alg.
	accessSigner := fositeSigner{keys: c.Keys, alg: c.Keys.AccessTokenAlgorithm()}
	idAlgs := newIDTokenAlgorithms(c.Keys, clients)
	hmacStrategy := prefixedHMACStrategy{oauth2.NewHMACSHAStrategyUnPrefixed(&hmac.HMACStrategy{Config: fc}, fc)} // tokenformat.go
	jwtStrategy := &freshJWTStrategy{DefaultJWTStrategy: &oauth2.DefaultJWTStrategy{Signer: accessSigner, HMACSHAStrategy: hmacStrategy, Config: fc}}
	strategy := &compose.CommonStrategy{
		CoreStrategy:               jwtStrategy,
		OpenIDConnectTokenStrategy: newIDTokenStrategy(c.Keys, idAlgs, fc),
		Signer:                     accessSigner,
	}
	exchange.issuer = &oauth2.HandleHelper{AccessTokenStrategy: jwtStrategy, AccessTokenStorage: fstore, Config: fc}
	exchangeFactory := func(fosite.Configurator, any, any) any { return exchange }
	defer skipUnhandledGrants(fc) // once Compose has registered the handlers
	return compose.Compose(fc, fstore, strategy,
		compose.OAuth2AuthorizeExplicitFactory,
		compose.OAuth2ClientCredentialsGrantFactory,
		compose.OAuth2RefreshTokenGrantFactory,
		exchangeFactory, // RFC 8693, Keyward's own handler
		compose.OpenIDConnectExplicitFactory,
		compose.OpenIDConnectRefreshFactory, // after the OAuth2 refresh factory
		introspectionFactory(fstore.tokens), // access tokens from their claims (tokenintrospection.go)
		revocationFactory(fstore.tokens),
		compose.OAuth2PKCEFactory,
	)
}

// skipUnhandledGrants wraps fc's token endpoint handlers in
// unhandledGrantSkipper. fosite's NewAccessResponse asks every handler to
// populate the answer, and each that does not handle the grant answers
// errorsx.WithStack(ErrUnknownRequest), a stack trace captured to be
// ignored: five per token request, 6% of the CPU of a token exchange
// (docs/performance.md, "After #14/#15").
func skipUnhandledGrants(fc *fosite.Config) {
	for i, h := range fc.TokenEndpointHandlers {
		fc.TokenEndpointHandlers[i] = unhandledGrantSkipper{h}
	}
}

// unhandledGrantSkipper answers PopulateTokenEndpointResponse with the bare
// fosite.ErrUnknownRequest, without calling the handler, when the handler
// cannot handle the request: what fosite's own handlers answer then (and
// NewAccessResponse skips), minus the stack trace.
type unhandledGrantSkipper struct {
	fosite.TokenEndpointHandler
}

func (h unhandledGrantSkipper) PopulateTokenEndpointResponse(ctx context.Context, r fosite.AccessRequester, w fosite.AccessResponder) error {
	if !h.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	return h.TokenEndpointHandler.PopulateTokenEndpointResponse(ctx, r, w)
}

// freshJWTStrategy gives every access token a new iat and jti: the refresh
// grant clones the stored session, and fosite never overwrites a non-zero
// iat (ory/fosite#774). The jti is set here, not by fosite (which would
// draw one while signing and keep it nowhere), so the session holds it when
// the family record that may have to deny it is written (accesstoken.go).
type freshJWTStrategy struct {
	*oauth2.DefaultJWTStrategy
}

func (s *freshJWTStrategy) GenerateAccessToken(ctx context.Context, r fosite.Requester) (string, string, error) {
	if sess, ok := r.GetSession().(*Session); ok && sess.AccessClaims != nil {
		sess.AccessClaims.IssuedAt = time.Time{}
		sess.AccessClaims.JTI = randomString(16)
	}
	return s.DefaultJWTStrategy.GenerateAccessToken(ctx, r)
}

// Run does the broker's background work until ctx ends: it delivers the
// back-channel logout tokens of ended sessions (what is still queued or
// being retried then is abandoned). It returns nil once ctx has ended and
// the deliveries in flight have stopped.
func (b *Broker) Run(ctx context.Context) error { return b.sender.Run(ctx) }

// Upstreams lists the configured upstream identity providers.
func (b *Broker) Upstreams() []Upstream { return b.upstreams }

// Issuer is the normalised issuer URL.
func (b *Broker) Issuer() string { return b.issuer }

// keysAlgorithm is the signing algorithm in use.
var _ Keys = (*keys.Manager)(nil)
