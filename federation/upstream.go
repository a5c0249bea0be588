package federation

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/keyward/keyward/web/shed"
)

// defaultTimeout bounds every upstream request when Open is given no client;
// http.DefaultClient has none.
const defaultTimeout = 10 * time.Second

// Upstream is one opened identity provider. It is safe for concurrent use.
type Upstream struct {
	cfg      Config
	client   *http.Client
	provider *oidc.Provider
	verifier *oidc.IDTokenVerifier // built once: it owns the JWKS cache
	oauth2   oauth2.Config
	native   *native // nil: native sign-in is off
	// endSession is discovery's end_session_endpoint ("" when none).
	endSession string
	logger     *slog.Logger
}

// AuthOptions are optional authorization request parameters, sent only when
// set. OIDC Core §3.1.2.1
type AuthOptions struct {
	Prompt    string         // e.g. "login", "consent", "select_account"
	MaxAge    *time.Duration // max_age in whole seconds, rounded up; 0 forces a fresh login
	LoginHint string
}

// Open validates c, runs discovery with httpClient (nil: a client with a 10s
// timeout), and builds the ID-token verifier. Discovery must report exactly
// c.Issuer (a mismatch wraps *oidc.IssuerMismatchError). httpClient is kept
// for later JWKS, token and userinfo requests; give it a timeout.
func (c Config) Open(ctx context.Context, httpClient *http.Client, logger *slog.Logger) (*Upstream, error) {
	c.SetDefaults()
	if err := c.validateOpen(); err != nil {
		return nil, fmt.Errorf("federation: upstream %q: %w", c.ID, err)
	}
	c = c.withDefaults()
	if httpClient == nil {
		httpClient = &http.Client{Timeout: defaultTimeout}
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "federation", "upstream", c.ID)

	// A templated (Azure AD multi-tenant) issuer is discovered at
	// DiscoveryURL, whose document must advertise the template itself;
	// each ID token's iss is then checked against its tid (checkTenant).
	multi := templated(c.Issuer)
	dctx := oidc.ClientContext(ctx, httpClient)
	if multi {
		dctx = oidc.InsecureIssuerURLContext(dctx, c.Issuer)
	}
	provider, err := oidc.NewProvider(dctx, DiscoveryURL(c.Issuer))
	if err != nil {
		return nil, fmt.Errorf("federation: upstream %q: discover %s: %w", c.ID, DiscoveryURL(c.Issuer), redact(err))
	}
	var meta struct {
		Issuer      string   `json:"issuer"`
		AuthMethods []string `json:"token_endpoint_auth_methods_supported"`
		JWKSURI     string   `json:"jwks_uri"`
		Algorithms  []string `json:"id_token_signing_alg_values_supported"`
		EndSession  string   `json:"end_session_endpoint"`
	}
	if err := provider.Claims(&meta); err != nil {
		return nil, fmt.Errorf("federation: upstream %q: read discovery: %w", c.ID, err)
	}
	if multi && meta.Issuer != c.Issuer {
		return nil, fmt.Errorf("federation: upstream %q: discover %s: %w", c.ID, DiscoveryURL(c.Issuer),
			&oidc.IssuerMismatchError{Provided: c.Issuer, Discovered: meta.Issuer})
	}
	endpoint := provider.Endpoint()
	endpoint.AuthStyle = authStyle(meta.AuthMethods)

	u := &Upstream{
		cfg:      c,
		client:   limitedClient(httpClient, shed.New(c.maxConcurrentCalls())),
		provider: provider,
		verifier: provider.Verifier(&oidc.Config{ClientID: c.ClientID, Now: c.Now, SkipIssuerCheck: multi}),
		oauth2: oauth2.Config{
			ClientID:     c.ClientID,
			ClientSecret: c.ClientSecret,
			Endpoint:     endpoint,
			RedirectURL:  c.RedirectURL,
			Scopes:       c.Scopes,
		},
		endSession: meta.EndSession,
		logger:     logger,
	}
	if len(c.NativeClientIDs) > 0 {
		if meta.JWKSURI == "" {
			return nil, fmt.Errorf("federation: upstream %q: discovery has no jwks_uri (needed for native sign-in)", c.ID)
		}
		u.native = newNative(c, httpClient, meta.JWKSURI, meta.Algorithms, logger)
	}
	logger.InfoContext(ctx, "upstream ready", "issuer", c.Issuer, "profile", string(c.Profile),
		"userinfo", provider.UserInfoEndpoint() != "", "native_sign_in", u.native != nil, "allow_rules", !c.Allow.empty())
	return u, nil
}

// authStyle picks how the client authenticates at the token endpoint from
// discovery, so a code is never posted twice as auto-detection would.
// OIDC Discovery §3: the default is client_secret_basic.
func authStyle(methods []string) oauth2.AuthStyle {
	if len(methods) == 0 || slices.Contains(methods, "client_secret_basic") {
		return oauth2.AuthStyleInHeader
	}
	if slices.Contains(methods, "client_secret_post") {
		return oauth2.AuthStyleInParams
	}
	return oauth2.AuthStyleInHeader
}

// ID returns the stable upstream id.
func (u *Upstream) ID() string { return u.cfg.ID }

// Name returns the display name.
func (u *Upstream) Name() string { return u.cfg.Name }

// Issuer returns the exact issuer URL, as configured and as discovery
// reported it.
func (u *Upstream) Issuer() string { return u.cfg.Issuer }

// AuthCodeURL returns the upstream authorization URL for one login: code
// flow with state, nonce and PKCE S256 from pkceVerifier (make it with
// oauth2.GenerateVerifier), plus opts when set.
func (u *Upstream) AuthCodeURL(state, nonce, pkceVerifier string, opts AuthOptions) string {
	params := []oauth2.AuthCodeOption{oidc.Nonce(nonce), oauth2.S256ChallengeOption(pkceVerifier)}
	if opts.Prompt != "" {
		params = append(params, oauth2.SetAuthURLParam("prompt", opts.Prompt))
	}
	if opts.MaxAge != nil {
		secs := int64((*opts.MaxAge + time.Second - 1) / time.Second)
		params = append(params, oauth2.SetAuthURLParam("max_age", strconv.FormatInt(max(secs, 0), 10)))
	}
	if opts.LoginHint != "" {
		params = append(params, oauth2.SetAuthURLParam("login_hint", opts.LoginHint))
	}
	if hd := u.cfg.hostedDomainParam(); hd != "" {
		params = append(params, oauth2.SetAuthURLParam("hd", hd))
	}
	return u.oauth2.AuthCodeURL(state, params...)
}

// EndSessionURL is where a person signs out at the upstream:
// Config.LogoutURL when set, else discovery's end_session_endpoint; "" when
// neither is known. The configured URL wins because a provider's discovery
// may name an endpoint that needs more than the standard parameters
// (Cognito's bare /logout needs client_id and logout_uri). LogoutRequest
// adds the parameters.
func (u *Upstream) EndSessionURL() string {
	if u.cfg.LogoutURL != "" {
		return u.cfg.LogoutURL
	}
	return u.endSession
}

// Exchange redeems code with pkceVerifier, verifies the ID token (signature
// with a discovered algorithm, exact issuer, audience = client id, expiry)
// and its nonce, and maps the claims (see ClaimMapping), asking userinfo as
// Config.Userinfo says. With ProfileAzureAD it checks the tenant and
// resolves a group overage (Config.GroupsOverage). Last it applies the
// hosted domains and the allow rules.
//
// Errors wrap ErrTokenEndpoint, ErrInvalidIDToken, ErrNonceMismatch,
// ErrUserinfo or ErrGraph with a cause fit for logs (upstream bodies cut
// off); an expired ID token also matches *oidc.TokenExpiredError. An
// identity the configuration refuses is a *NotAllowedError, returned only
// once everything else verified.
func (u *Upstream) Exchange(ctx context.Context, code, pkceVerifier, nonce string) (Identity, error) {
	if code == "" || pkceVerifier == "" || nonce == "" {
		return Identity{}, errors.New("federation: exchange code: code, PKCE verifier and nonce are required")
	}
	ctx = oidc.ClientContext(ctx, u.client)
	tok, err := u.oauth2.Exchange(ctx, code, oauth2.VerifierOption(pkceVerifier))
	if err != nil {
		return Identity{}, fmt.Errorf("federation: exchange code: %w: %w", ErrTokenEndpoint, redact(err))
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return Identity{}, fmt.Errorf("federation: exchange code: %w: token response has no id_token", ErrInvalidIDToken)
	}
	idt, err := u.verifier.Verify(ctx, raw)
	if err != nil {
		return Identity{}, fmt.Errorf("federation: verify id token: %w: %w", ErrInvalidIDToken, redact(err))
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return Identity{}, fmt.Errorf("federation: verify id token: %w", ErrNonceMismatch)
	}
	idClaims, err := tokenClaims(idt)
	if err != nil {
		return Identity{}, err
	}
	if _, ok := idClaims["at_hash"]; ok {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil { // OIDC Core §3.1.3.8
			return Identity{}, fmt.Errorf("federation: verify id token: %w: %w", ErrInvalidIDToken, err)
		}
	}
	if err := u.cfg.checkTenant(idClaims); err != nil {
		return Identity{}, err
	}
	claims := idClaims
	m, err := u.mapClaims(claims)
	if err != nil {
		return Identity{}, err
	}
	ask := false
	switch u.cfg.Userinfo {
	case UserinfoAlways:
		ask = true
	case UserinfoAuto:
		cm := u.cfg.Claims
		if overage(idClaims) {
			cm.Groups = nil // Graph answers for the groups, not userinfo
		}
		ask = m.missing(cm)
	}
	if ask && u.provider.UserInfoEndpoint() != "" {
		info, err := u.userinfo(ctx, tok, idt.Subject)
		if err != nil {
			return Identity{}, err
		}
		claims = merge(idClaims, info, u.cfg.Claims)
		if m, err = u.mapClaims(claims); err != nil {
			return Identity{}, err
		}
	}
	if overage(idClaims) && len(u.cfg.Claims.Groups) > 0 && m.Groups == nil {
		switch u.cfg.GroupsOverage {
		case OverageGraph:
			groups, err := u.graphGroups(ctx, tok.AccessToken)
			if err != nil {
				return Identity{}, err
			}
			m.Groups = u.cfg.Claims.prefixed(groups)
		case OverageRefuse:
			return Identity{}, u.cfg.overageRefusal(m.Identity, "group overage and groups_overage is refuse")
		}
	}
	m.Claims = idClaims
	if err := u.cfg.admit(m, claims); err != nil {
		return Identity{}, err
	}
	m.RefreshToken = tok.RefreshToken
	u.logger.DebugContext(ctx, "upstream identity verified", "sub", m.Subject)
	return m.Identity, nil
}

// tokenClaims decodes a verified ID token's claims.
func tokenClaims(idt *oidc.IDToken) (map[string]any, error) {
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return nil, fmt.Errorf("federation: verify id token: %w: %w", ErrInvalidIDToken, err)
	}
	return claims, nil
}

// mapClaims maps claims through the configured claim mapping: the one
// mapping of browser and native sign-in.
func (u *Upstream) mapClaims(claims map[string]any) (mapped, error) {
	m, err := u.cfg.Claims.identity(claims, u.cfg.TrustEmail)
	if err != nil {
		return mapped{}, fmt.Errorf("federation: verify id token: %w: %w", ErrInvalidIDToken, err)
	}
	return m, nil
}

// admit applies the hosted domains and the allow rules to a mapped
// identity; claims are those it was mapped from (m.Claims the ID token's).
func (c Config) admit(m mapped, claims map[string]any) error {
	if err := c.checkHostedDomain(m.Identity, m.Claims); err != nil {
		return err
	}
	return c.allow(m, claims)
}

// prefixed adds GroupsPrefix to groups and drops empty and repeated ones.
func (m ClaimMapping) prefixed(groups []string) []string {
	out := []string{}
	for _, g := range groups {
		if g != "" && !slices.Contains(out, m.GroupsPrefix+g) {
			out = append(out, m.GroupsPrefix+g)
		}
	}
	return out
}

// userinfo fetches the userinfo claims. Their sub must be the ID token's.
// OIDC Core §5.3.2
func (u *Upstream) userinfo(ctx context.Context, tok *oauth2.Token, sub string) (map[string]any, error) {
	info, err := u.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		return nil, fmt.Errorf("federation: fetch userinfo: %w: %w", ErrUserinfo, redact(err))
	}
	if subtle.ConstantTimeCompare([]byte(info.Subject), []byte(sub)) != 1 {
		u.logger.WarnContext(ctx, "userinfo subject differs from id token subject", "sub", sub)
		return nil, fmt.Errorf("federation: fetch userinfo: %w: subject mismatch", ErrUserinfo)
	}
	var claims map[string]any
	if err := info.Claims(&claims); err != nil {
		return nil, fmt.Errorf("federation: fetch userinfo: %w: %w", ErrUserinfo, err)
	}
	return claims, nil
}
