package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	fjwt "github.com/ory/fosite/token/jwt"

	"github.com/keyward/keyward/federation"
	"github.com/keyward/keyward/keys"
	"github.com/keyward/keyward/store"
)

// Store is the part of store.Store the broker uses.
type Store interface {
	grantStore
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
	adminStore // deprovision.go
}

// Keys is what the broker needs from the key manager (*keys.Manager).
type Keys interface {
	signer
	Algorithm() string
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
	// AccessTokenClaims: identity claims copied into access tokens.
	// Default: DefaultAccessTokenClaims.
	AccessTokenClaims []string
	// Back-channel logout to clients (backchannel.go). BackgroundContext
	// bounds the deliveries, which outlive the request that ended the
	// session: cancel it at shutdown. Default: context.Background().
	BackgroundContext context.Context
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
	if c.BackgroundContext == nil {
		c.BackgroundContext = context.Background()
	}
	if c.BackchannelClient == nil {
		c.BackchannelClient = &http.Client{Timeout: 5 * time.Second}
	}
	def(&c.BackchannelRetryDelay, time.Second)
	c.Issuer = strings.TrimSuffix(c.Issuer, "/")
}

// Broker is Keyward's OpenID Provider.
type Broker struct {
	cfg       Config
	log       *slog.Logger
	provider  fosite.OAuth2Provider
	fstore    *fositeStore
	clients   *clientRegistry
	upstreams []Upstream
	byID      map[string]Upstream
	discovery []byte
	logoutWG  sync.WaitGroup // back-channel logout deliveries in flight
	limiter   *loginLimiter  // nil: LoginLimits.InsecureUnlimited
	stats     recheckStats   // recheck.go
}

// New assembles the provider. It does no I/O.
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
	b := &Broker{
		cfg:       cfg,
		log:       cfg.Logger.With("component", "broker"),
		clients:   clients,
		upstreams: cfg.Upstreams,
		byID:      map[string]Upstream{},
	}
	for _, u := range cfg.Upstreams {
		if _, dup := b.byID[u.ID()]; dup {
			errs = append(errs, fmt.Errorf("upstreams: id %q is used twice", u.ID()))
		}
		b.byID[u.ID()] = u
	}
	if err := b.initRecheck(); err != nil {
		errs = append(errs, err)
	}
	if !cfg.LoginLimits.InsecureUnlimited {
		if b.limiter, err = newLoginLimiter(cfg.LoginLimits); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	b.fstore = &fositeStore{
		grants:        cfg.Store,
		clients:       clients,
		refreshGrace:  cfg.RefreshGracePeriod,
		refreshMaxTTL: cfg.RefreshTokenMaxTTL,
		codeTTL:       cfg.AuthCodeTTL,
		now:           cfg.Now,
	}
	b.provider = b.compose()
	b.discovery = b.buildDiscovery()
	return b, nil
}

// compose builds fosite factory by factory (never ComposeAllEnabled).
func (b *Broker) compose() fosite.OAuth2Provider {
	c := b.cfg
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
	signer := fositeSigner{keys: b.cfg.Keys}
	hmacStrategy := compose.NewOAuth2HMACStrategy(fc)
	jwtStrategy := &freshJWTStrategy{DefaultJWTStrategy: &oauth2.DefaultJWTStrategy{Signer: signer, HMACSHAStrategy: hmacStrategy, Config: fc}}
	strategy := &compose.CommonStrategy{
		CoreStrategy:               jwtStrategy,
		OpenIDConnectTokenStrategy: &openid.DefaultStrategy{Signer: signer, Config: fc},
		Signer:                     signer,
	}
	exchange := func(fosite.Configurator, any, any) any {
		return &exchangeHandler{b: b, issuer: &oauth2.HandleHelper{AccessTokenStrategy: jwtStrategy, AccessTokenStorage: b.fstore, Config: fc}}
	}
	return compose.Compose(fc, b.fstore, strategy,
		compose.OAuth2AuthorizeExplicitFactory,
		compose.OAuth2ClientCredentialsGrantFactory,
		compose.OAuth2RefreshTokenGrantFactory,
		exchange, // RFC 8693, Keyward's own handler
		compose.OpenIDConnectExplicitFactory,
		compose.OpenIDConnectRefreshFactory, // after the OAuth2 refresh factory
		compose.OAuth2TokenIntrospectionFactory,
		compose.OAuth2TokenRevocationFactory,
		compose.OAuth2PKCEFactory,
	)
}

// freshJWTStrategy gives every access token a new iat and jti: the refresh
// grant clones the stored session, and fosite never overwrites a non-zero
// iat (ory/fosite#774).
type freshJWTStrategy struct {
	*oauth2.DefaultJWTStrategy
}

func (s *freshJWTStrategy) GenerateAccessToken(ctx context.Context, r fosite.Requester) (string, string, error) {
	if sess, ok := r.GetSession().(*Session); ok && sess.AccessClaims != nil {
		sess.AccessClaims.IssuedAt = time.Time{}
		sess.AccessClaims.JTI = ""
	}
	return s.DefaultJWTStrategy.GenerateAccessToken(ctx, r)
}

// Upstreams lists the configured upstream identity providers.
func (b *Broker) Upstreams() []Upstream { return b.upstreams }

// Issuer is the normalised issuer URL.
func (b *Broker) Issuer() string { return b.cfg.Issuer }

// keysAlgorithm is the signing algorithm in use.
var _ Keys = (*keys.Manager)(nil)
