package federation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

// ErrNativeNotAccepted: the upstream does not take this ID token for native
// sign-in, because native sign-in is off (no NativeClientIDs) or the token's
// aud names none of its native client IDs. It is decided before any request,
// so another upstream with the same issuer, or a trust rule, may still
// accept the token.
var ErrNativeNotAccepted = errors.New("id token not accepted for native sign-in")

// native verifies the ID tokens an upstream issued to its native apps.
type native struct {
	clientIDs []string
	public    bool
	algs      []string
	keys      *keySet
	verifier  *oidc.IDTokenVerifier // built once: keys is its cache
	now       func() time.Time
}

// newNative builds the native-sign-in verifier of an upstream configured by
// c (defaults filled), with the key set at jwksURI and the signing
// algorithms discovery advertises (none and HMAC never; RS256 when
// discovery names none, OIDC Discovery §3).
//
// It has its own key set rather than the browser verifier's: here the
// client picks the token and so its kid, and go-oidc's key set refetches
// on every unknown kid; this one at most once per 30s.
func newNative(c Config, client *http.Client, jwksURI string, discovered []string, logger *slog.Logger) *native {
	var algs []string
	for _, a := range discovered {
		if slices.Contains(asymmetricAlgs, a) && !slices.Contains(algs, a) {
			algs = append(algs, a)
		}
	}
	if len(algs) == 0 {
		algs = []string{"RS256"}
	}
	joseAlgs := make([]jose.SignatureAlgorithm, len(algs))
	for i, a := range algs {
		joseAlgs[i] = jose.SignatureAlgorithm(a)
	}
	keys := newKeySet(jwksURI, client, joseAlgs, defaultMinRefresh, c.Now, logger.With("key_set", "native"))
	return &native{
		clientIDs: slices.Clone(c.NativeClientIDs),
		public:    c.NativePublicClients,
		algs:      algs,
		keys:      keys,
		verifier: oidc.NewVerifier(c.Issuer, keys, &oidc.Config{
			SkipClientIDCheck:    true, // aud ∈ clientIDs is checked in accepts
			SupportedSigningAlgs: slices.Clone(algs),
			Now:                  c.Now,
		}),
		now: c.Now,
	}
}

// NativePublicClients reports whether clients without a secret may exchange
// this upstream's ID tokens (Config.NativePublicClients).
func (u *Upstream) NativePublicClients() bool { return u.native != nil && u.native.public }

// nativeClaims are the claims read before the signature is checked.
type nativeClaims struct {
	jwt.RegisteredClaims
	AZP string `json:"azp"`
}

// VerifyIDToken verifies raw, an ID token this upstream issued to one of its
// native apps (a mobile app that signed in with the upstream's SDK), and
// maps its claims exactly as Exchange does. It is native sign-in's half of
// token exchange.
//
// Before any request it refuses, with ErrNativeNotAccepted, a token when
// native sign-in is off or whose iss is not this upstream's or whose aud
// holds none of Config.NativeClientIDs (with several audiences, azp must be
// one of them too); and with ErrInvalidIDToken one over 16 KiB, expired, or
// signed with an algorithm discovery does not advertise, or typed as an
// access token. Then it checks the signature against the upstream's
// jwks_uri (an unknown kid refetches the keys at most once per 30s;
// ErrIssuerUnavailable when they cannot be fetched), iss, exp (no leeway,
// as for browser sign-in), nbf, and a non-empty sub (ErrInvalidIDToken).
// There is no nonce to compare (the app's own sign-in chose it) and no
// userinfo or Graph request (there is no upstream access token): an Azure
// AD group overage leaves the groups empty, or is refused when
// GroupsOverage is refuse or allow.groups is set. The tenant, hosted
// domain and allow rules apply as in Exchange (*NotAllowedError). The error
// never contains the token.
func (u *Upstream) VerifyIDToken(ctx context.Context, raw string) (Identity, error) {
	const op = "federation: verify native id token"
	n := u.native
	if n == nil {
		return Identity{}, fmt.Errorf("%s: %w: native sign-in is off for upstream %q", op, ErrNativeNotAccepted, u.cfg.ID)
	}
	if len(raw) > maxSubjectToken {
		return Identity{}, fmt.Errorf("%s: %w: larger than 16 KiB", op, ErrInvalidIDToken)
	}
	var pre nativeClaims
	tok, _, err := jwt.NewParser().ParseUnverified(raw, &pre)
	if err != nil {
		return Identity{}, fmt.Errorf("%s: %w: %w", op, ErrInvalidIDToken, err)
	}
	if pre.Issuer != u.cfg.Issuer {
		return Identity{}, fmt.Errorf("%s: %w: iss %q is not the upstream's", op, ErrNativeNotAccepted, clean(pre.Issuer, 100))
	}
	if !n.accepts(pre.Audience, pre.AZP) {
		return Identity{}, fmt.Errorf("%s: %w: aud names no native client id of upstream %q", op, ErrNativeNotAccepted, u.cfg.ID)
	}
	if err := n.precheck(tok, pre); err != nil {
		return Identity{}, fmt.Errorf("%s: %w: %w", op, ErrInvalidIDToken, err)
	}
	kid, _ := tok.Header["kid"].(string)
	if err := n.keys.ensure(ctx, kid); err != nil {
		return Identity{}, fmt.Errorf("%s: %w", op, err)
	}
	idt, err := n.verifier.Verify(ctx, raw)
	if err != nil {
		return Identity{}, fmt.Errorf("%s: %w: %w", op, ErrInvalidIDToken, err)
	}
	if idt.Subject == "" {
		return Identity{}, fmt.Errorf("%s: %w: sub is empty", op, ErrInvalidIDToken)
	}
	claims, err := tokenClaims(idt)
	if err != nil {
		return Identity{}, err
	}
	// The same audience check on the verified claims.
	if azp, _ := claims["azp"].(string); !n.accepts(idt.Audience, azp) {
		return Identity{}, fmt.Errorf("%s: %w: aud names no native client id", op, ErrInvalidIDToken)
	}
	if err := u.cfg.checkTenant(claims); err != nil {
		return Identity{}, err
	}
	m, err := u.mapClaims(claims)
	if err != nil {
		return Identity{}, err
	}
	// A group overage cannot be resolved here: there is no upstream access
	// token to ask Graph with. Refuse only when groups decide.
	if overage(claims) && len(u.cfg.Claims.Groups) > 0 && m.Groups == nil &&
		(u.cfg.GroupsOverage == OverageRefuse || (u.cfg.GroupsOverage == OverageGraph && len(u.cfg.Allow.Groups) > 0)) {
		return Identity{}, u.cfg.overageRefusal(m.Identity, "group overage in a native sign-in (no access token for Graph)")
	}
	if err := u.cfg.admit(m, claims); err != nil {
		return Identity{}, err
	}
	u.logger.DebugContext(ctx, "native id token verified", "sub", m.Subject)
	return m.Identity, nil
}

// accepts reports whether aud names one of the native client IDs and, when
// the token has several audiences, azp does too (OIDC Core §3.1.3.7).
func (n *native) accepts(aud []string, azp string) bool {
	if !slices.ContainsFunc(aud, func(a string) bool { return slices.Contains(n.clientIDs, a) }) {
		return false
	}
	return len(aud) == 1 || slices.Contains(n.clientIDs, azp)
}

// precheck rejects, from unverified claims, tokens that cannot verify, so
// that they cause no key fetch.
func (n *native) precheck(tok *jwt.Token, c nativeClaims) error {
	if alg := tok.Method.Alg(); !slices.Contains(n.algs, alg) {
		return fmt.Errorf("alg: %q is not one the upstream signs with", clean(alg, 20))
	}
	// An access token is not an ID token, whatever its aud. RFC 9068 §2.1
	if typ, _ := tok.Header["typ"].(string); strings.EqualFold(typ, "at+jwt") || strings.EqualFold(typ, "application/at+jwt") {
		return errors.New("typ: an access token is not an id token")
	}
	if c.ExpiresAt == nil {
		return errors.New("exp: required")
	}
	if c.ExpiresAt.Before(n.now()) {
		return fmt.Errorf("exp: expired at %s", c.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return nil
}
