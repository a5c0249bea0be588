package verify

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/golang-jwt/jwt/v5"

	"github.com/keyward/keyward/web/shed"
)

// Config configures a Verifier. It is also the verifier's part of
// verify.yaml (the yaml tags; the loader decodes into it): SetDefaults
// applies the documented defaults, Validate reports every problem by its YAML
// field path. Keys are camelCase; durations are Go durations ("30s").
type Config struct {
	// Issuer is the exact iss every token must carry: https, or http on a
	// loopback host. A trailing slash is removed, as the broker does.
	// Required.
	Issuer string `yaml:"issuer"`
	// Audiences: a token's aud must contain at least one of them. Required
	// (at least one): the verifier never accepts a token for any audience.
	// A Rule's Audience narrows this per route; it does not replace it.
	Audiences []string `yaml:"audience"`
	// JWKSURL is where the keys are: https, or http on a loopback host.
	// Default: jwks_uri from Issuer's /.well-known/openid-configuration,
	// fetched with the first key fetch.
	JWKSURL string `yaml:"jwksURL,omitempty"`
	// Algorithms is the allowlist of JWS algorithms. Default: RS256, ES256,
	// EdDSA. Supported: RS256/384/512, PS256/384/512, ES256, EdDSA; never
	// none or HS*.
	Algorithms []string `yaml:"algorithms,omitempty"`
	// Leeway is the clock skew allowed for exp, nbf and iat. Default: 30s;
	// at most 1m.
	Leeway time.Duration `yaml:"leeway,omitempty"`
	// MinRefreshInterval bounds refetches caused by an unknown kid to one per
	// interval. Default: 30s.
	MinRefreshInterval time.Duration `yaml:"-"`
	// Cache sizes the cache of verified tokens.
	Cache CacheConfig `yaml:"cache,omitempty"`
	// MaxTokenBytes rejects longer tokens before any parsing. Default: 8192.
	MaxTokenBytes int `yaml:"-"`
	// MaxConcurrentVerifications bounds the signature verifications in
	// flight at once (tokens not found in the cache; cache hits are never
	// limited). Beyond it a check is answered 503 with Retry-After at once
	// instead of queueing. Default: 128 per CPU, at least 256: one
	// verification costs about 60 µs of CPU (docs/performance.md), so 256
	// in flight on 2 cores finish within about 8 ms, and a flood of
	// distinct forged tokens cannot pile up goroutines. Negative (-1): no
	// limit.
	MaxConcurrentVerifications int `yaml:"maxConcurrentVerifications,omitempty"`
	// HTTPClient fetches discovery and JWKS. Default: a client with a 10s
	// timeout.
	HTTPClient *http.Client `yaml:"-"`
	// Now is the clock. Default: time.Now.
	Now func() time.Time `yaml:"-"`
	// UserClaim names the claim whose string value is X-Auth-Request-User
	// (and Claims.User). Default: sub, which Keyward derives from the
	// upstream's own stable subject and never reassigns. "email" takes a
	// verified email only (email_verified true); preferred_username and
	// name can be changed by their owner at most upstreams, so a different
	// person may later carry the same value. A token without the claim is
	// refused by the handler (403).
	UserClaim string `yaml:"userClaim,omitempty"`
	// Revocation, when set, polls the broker's revocation feed (see
	// RevocationConfig). Nil: no feed; deprovisioned people's tokens are
	// accepted until they expire.
	Revocation *RevocationConfig `yaml:"revocationFeed,omitempty"`
}

// CacheConfig sizes the verified-token cache.
type CacheConfig struct {
	// MaxEntries is how many verified tokens are kept (until their exp), so
	// a repeated token costs no signature check; negative (-1) disables the
	// cache. Default: 10000.
	MaxEntries int `yaml:"maxEntries,omitempty"`
}

// The defaults and bounds of Config: their one home (keyward verify's
// verify.yaml takes them from here).
const (
	DefaultLeeway        = 30 * time.Second
	MaxLeeway            = time.Minute
	defaultMinRefresh    = 30 * time.Second
	DefaultCacheEntries  = 10000
	defaultMaxTokenBytes = 8 << 10
)

var defaultAlgorithms = []string{"RS256", "ES256", "EdDSA"}

// DefaultAlgorithms is Config.Algorithms' default, fresh on every call.
func DefaultAlgorithms() []string { return slices.Clone(defaultAlgorithms) }

// SupportedAlgorithms lists, sorted, the algorithms Config.Algorithms may
// name: never none or HS*.
func SupportedAlgorithms() []string {
	algs := make([]string, 0, len(supportedAlgorithms))
	for alg := range supportedAlgorithms {
		algs = append(algs, alg)
	}
	slices.Sort(algs)
	return algs
}

// supportedAlgorithms maps each algorithm Keyward can verify to the method
// that checks it; the key type each needs is keyFits.
var supportedAlgorithms = map[string]jwt.SigningMethod{
	"RS256": jwt.SigningMethodRS256, "RS384": jwt.SigningMethodRS384, "RS512": jwt.SigningMethodRS512,
	"PS256": jwt.SigningMethodPS256, "PS384": jwt.SigningMethodPS384, "PS512": jwt.SigningMethodPS512,
	"ES256": jwt.SigningMethodES256, "EdDSA": jwt.SigningMethodEdDSA,
}

// Verifier checks Keyward access tokens offline. It is safe for concurrent use.
type Verifier struct {
	issuer    string
	audiences []string
	methods   map[string]jwt.SigningMethod
	leeway    time.Duration
	maxBytes  int
	now       func() time.Time
	keys      *keySet
	cache     *tokenCache   // nil when disabled
	rev       *revocations  // nil without a revocation feed
	verifying *shed.Limiter // nil: no limit
	userClaim string
	// userClaimRaw: the user claim is none of the typed ones, so it is read
	// from Claims.Raw, which must then be decoded.
	userClaimRaw bool

	sigChecks atomic.Int64 // signature verifications, for tests
	// cacheHits and cacheMisses count the lookups in the verified-token
	// cache (none when it is disabled), for CacheStats.
	cacheHits, cacheMisses atomic.Int64
}

// New returns a Verifier. It applies cfg's defaults (SetDefaults, except that
// Issuer is taken exactly as given) and refuses a cfg that Validate would
// refuse, except for what only verify.yaml demands (the revocation feed's
// poll-interval bounds and its secret file). It does no I/O and starts no
// goroutine: Run loads the key set at once and polls the revocation feed.
// Without Run the first Verify fetches the key set and waits for it, so the
// first request finds the keys either way (the issuer need not be up when
// New is called); until a key set has loaded, Verify fails with an error
// matching ErrUnavailable (503). ctx is the verifier's lifetime: it bounds
// every key fetch, including the background refreshes a Verify starts;
// cancel it to stop them.
func New(ctx context.Context, cfg Config) (*Verifier, error) {
	if cfg.Revocation != nil {
		rc := *cfg.Revocation // the caller's stays as it was
		cfg.Revocation = &rc
	}
	cfg.setDefaults()
	if err := cfg.validate(false); err != nil {
		return nil, fmt.Errorf("verify config: %w", err)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if rc := cfg.Revocation; rc != nil && rc.HTTPClient == nil {
		rc.HTTPClient = cfg.HTTPClient
	}
	v := &Verifier{
		issuer:    cfg.Issuer,
		audiences: cfg.Audiences,
		methods:   make(map[string]jwt.SigningMethod, len(cfg.Algorithms)),
		leeway:    cfg.Leeway,
		maxBytes:  cfg.MaxTokenBytes,
		now:       cfg.Now,
		userClaim: cfg.UserClaim,
		keys:      newKeySet(ctx, cfg.HTTPClient, cfg.Issuer, cfg.JWKSURL, cfg.Now, cfg.MinRefreshInterval),
	}
	for _, alg := range cfg.Algorithms {
		v.methods[alg] = supportedAlgorithms[alg]
	}
	switch cfg.UserClaim {
	case "sub", "email", "preferred_username", "name":
	default:
		v.userClaimRaw = true
	}
	if cfg.Cache.MaxEntries > 0 {
		v.cache = newTokenCache(cfg.Cache.MaxEntries)
	}
	v.verifying = shed.New(cfg.MaxConcurrentVerifications)
	if cfg.Revocation != nil {
		v.rev = newRevocations(*cfg.Revocation, cfg.Leeway, cfg.Now)
	}
	return v, nil
}

// Run does the verifier's background work until ctx ends: it starts loading
// the key set at once (one fetch, joined by the requests that arrive
// meanwhile, so the first of them finds the keys), and with a revocation
// feed it polls the feed every Interval. Without Run, a verifier with a feed
// never reads it, so it treats the feed as stale (onStale decides: deny
// refuses every token). Run returns nil once ctx has ended.
func (v *Verifier) Run(ctx context.Context) error {
	v.keys.cache.Prefetch(ctx)
	if v.rev != nil {
		v.rev.run(ctx)
		return nil
	}
	<-ctx.Done()
	return nil
}

// CacheStats returns how many lookups in the verified-token cache found a
// token verified before (hits) and how many had to verify it (misses),
// since New; both 0 when the cache is disabled.
func (v *Verifier) CacheStats() (hits, misses int64) {
	return v.cacheHits.Load(), v.cacheMisses.Load()
}

// KeyFetchErrors counts the failed fetches of the issuer's signing keys
// (discovery or JWKS: no answer, an error status, a body that is not a key
// set) since New.
func (v *Verifier) KeyFetchErrors() int64 {
	return v.keys.fetchErrors.Load()
}

// Verify checks token and returns its claims; route rules are the caller's
// (Rule.Authorize). Errors are *Error: 401 invalid_token (with an
// *ExpiredError cause for an expired token), or 503 matching ErrUnavailable
// when no key set has ever loaded or ctx ended while waiting for one. A token
// verified before is answered from the cache, as the same *Claims, until its
// exp (leeway is not added on a hit). With a revocation feed, every answer,
// cached or not, is also checked against it: a revoked token is 401
// invalid_token "token revoked" (cause ErrRevoked); while the feed is stale
// and the verifier fails closed, 503 matching ErrUnavailable and
// ErrRevocationStale.
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	return v.verifyCached(ctx, token, true)
}

// verifyCached is Verify. With raw false the caller promises not to read
// Claims.Raw: when no cache would share the claims, they are then decoded
// without building Raw (nil).
func (v *Verifier) verifyCached(ctx context.Context, token string, raw bool) (*Claims, error) {
	if len(token) > v.maxBytes {
		return nil, errTooLarge
	}
	now := v.now()
	var key [32]byte
	if v.cache != nil {
		// No copy of the token: Sum256 neither keeps nor changes its input.
		key = sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token)))
		if c, ok := v.cache.get(&key, now); ok {
			v.cacheHits.Add(1)
			if v.rev != nil {
				if err := v.rev.check(ctx, c, now); err != nil {
					return nil, err
				}
			}
			return c, nil
		}
		v.cacheMisses.Add(1)
	}
	if !v.verifying.TryAcquire() {
		return nil, errOverloaded
	}
	c, err := v.verify(ctx, token, now, raw || v.cache != nil || v.userClaimRaw)
	v.verifying.Release()
	if err != nil {
		return nil, err
	}
	if v.rev != nil {
		if err := v.rev.check(ctx, c, now); err != nil {
			return nil, err
		}
	}
	if v.cache != nil {
		v.cache.put(&key, c, now)
	}
	return c, nil
}

var b64 = base64.RawURLEncoding.Strict()

type header struct {
	Alg  string          `json:"alg"`
	Typ  string          `json:"typ"`
	Kid  string          `json:"kid"`
	Crit json.RawMessage `json:"crit"`
}

// verify checks token; with raw false the claims are decoded without Raw.
func (v *Verifier) verify(ctx context.Context, token string, now time.Time, raw bool) (*Claims, error) {
	dot1 := strings.IndexByte(token, '.')
	dot2 := strings.LastIndexByte(token, '.')
	if dot1 <= 0 || dot2 <= dot1+1 || dot2 == len(token)-1 || strings.IndexByte(token[dot1+1:dot2], '.') >= 0 {
		return nil, errMalformed
	}
	// One buffer for the three decoded segments; none of them is kept.
	hlen, plen := b64.DecodedLen(dot1), b64.DecodedLen(dot2-dot1-1)
	buf := make([]byte, hlen+plen+b64.DecodedLen(len(token)-dot2-1))
	n, err := b64.Decode(buf[:hlen], []byte(token[:dot1]))
	if err != nil {
		return nil, errBadHeader
	}
	hb := buf[:n]
	var h header
	if err := json.Unmarshal(hb, &h); err != nil {
		return nil, errBadHeader
	}
	method, ok := v.methods[h.Alg]
	if !ok {
		return nil, errAlgorithm
	}
	// RFC 9068 §4: typ must be at+jwt; this also rejects ID tokens.
	if !strings.EqualFold(h.Typ, "at+jwt") && !strings.EqualFold(h.Typ, "application/at+jwt") {
		return nil, errType
	}
	if h.Crit != nil { // RFC 7515 §4.1.11: we understand no extension
		return nil, errCrit
	}
	if h.Kid == "" {
		return nil, errNoKID
	}
	n, err = b64.Decode(buf[hlen+plen:], []byte(token[dot2+1:]))
	if err != nil {
		return nil, errMalformed
	}
	sig := buf[hlen+plen : hlen+plen+n]
	pk, err := v.keys.get(ctx, h.Kid)
	if err != nil {
		return nil, err
	}
	if !keyFits(h.Alg, pk) {
		return nil, errKeyMismatch
	}
	v.sigChecks.Add(1)
	if err := verifySignature(h.Alg, method, token[:dot2], sig, pk); err != nil {
		return nil, errSignature
	}
	n, err = b64.Decode(buf[hlen:hlen+plen], []byte(token[dot1+1:dot2]))
	if err != nil {
		return nil, errBadPayload
	}
	pb := buf[hlen : hlen+n]
	var c *Claims
	if raw {
		var m map[string]any
		if err := json.Unmarshal(pb, &m); err != nil || m == nil {
			return nil, errBadPayload
		}
		c, err = claimsFromMap(m)
	} else {
		c, err = claimsFromJSON(pb)
	}
	if err != nil {
		return nil, err
	}
	if err := v.checkClaims(c, now); err != nil {
		return nil, err
	}
	c.setIdentityHeaders(v.userClaim)
	return c, nil
}

// keyFits reports whether alg may be used with k: the key type must match
// (so an HMAC can never be checked with public key bytes) and so must the
// JWK's alg when it names one.
func keyFits(alg string, k publicKey) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch k.key.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey: // parseJWKS keeps P-256 only
		return alg == "ES256"
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

func (v *Verifier) checkClaims(c *Claims, now time.Time) error {
	if c.Issuer != v.issuer {
		return errIssuer
	}
	if !v.audienceOK(c.Audience) {
		return errAudience
	}
	if c.ExpiresAt.IsZero() {
		return errNoExp
	}
	if c.Subject == "" {
		return errNoSub
	}
	if !now.Before(c.ExpiresAt.Add(v.leeway)) {
		return invalidToken("token expired", &ExpiredError{Expiry: c.ExpiresAt})
	}
	if !c.NotBefore.IsZero() && now.Add(v.leeway).Before(c.NotBefore) {
		return errNotYetValid
	}
	if !c.IssuedAt.IsZero() && now.Add(v.leeway).Before(c.IssuedAt) {
		return errIssuedFuture
	}
	return nil
}

func (v *Verifier) audienceOK(aud []string) bool {
	for _, a := range aud {
		if contains(v.audiences, a) {
			return true
		}
	}
	return false
}
