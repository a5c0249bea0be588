package verify

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/keyward/keyward/keys/jwkscache"
)

const (
	defaultMaxAge  = 5 * time.Minute // when the JWKS response has no max-age
	minMaxAge      = time.Minute
	maxMaxAge      = 24 * time.Hour
	maxJWKSBytes   = 1 << 20
	minRSABits     = 2048
	failureBackoff = time.Second // no new fetch this soon after a failed one
)

// keySet caches the issuer's JWKS in a jwkscache.Cache: readers take the
// current key map without locking; fetches run one at a time in a goroutine
// bound to the Verifier's lifetime context, and every caller that needs the
// result waits on the same fetch. The policy: the response's max-age with
// ±10% jitter, an unknown kid refetches at most once per minRefresh, and no
// fetch within min(failureBackoff, minRefresh) of a failed one.
type keySet struct {
	client  *http.Client
	issuer  string
	jwksURL string // set by discovery when not configured; touched only by fetch, which runs one at a time

	cache *jwkscache.Cache[map[string]publicKey]

	fetchErrors atomic.Int64 // failed fetches, for Verifier.KeyFetchErrors
}

// newKeySet returns the key set of issuer; ctx bounds every fetch.
func newKeySet(ctx context.Context, client *http.Client, issuer, jwksURL string, now func() time.Time, minRefresh time.Duration) *keySet {
	ks := &keySet{client: client, issuer: issuer, jwksURL: jwksURL}
	ks.cache = jwkscache.New(ks.fetch, jwkscache.Options{
		MissInterval:   minRefresh,
		FailureBackoff: min(failureBackoff, minRefresh),
		// A key set may be kept up to 10% past the broker's max-age: the
		// broker caps max-age at half its rotation period, so a next key is
		// published at least half a period before it could sign, and an
		// unknown kid is refetched anyway.
		Jitter:  0.1,
		Context: ctx,
		Now:     now,
	})
	return ks
}

type publicKey struct {
	key any       // *rsa.PublicKey, *ecdsa.PublicKey (P-256) or ed25519.PublicKey
	alg string    // the JWK's alg, if it names one
	rsa *rsaPKCS1 // an RSA key prepared for RS256/384/512; nil otherwise and in FIPS 140 mode
}

// get returns the key for kid. A known kid never waits: if the set is past its
// max-age it is refreshed in the background. An unknown kid waits for one
// fetch, at most once per minRefresh; before the first successful fetch every
// caller waits for (or fails fast after) the current attempt.
func (ks *keySet) get(ctx context.Context, kid string) (publicKey, error) {
	if m, ok := ks.cache.Peek(); ok {
		if k, ok := m[kid]; ok {
			ks.cache.Load(ctx) // past max-age: refresh in the background
			return k, nil
		}
	}
	m, ok, err := ks.cache.Refresh(ctx, func(m map[string]publicKey) bool {
		_, ok := m[kid]
		return ok
	})
	if !ok {
		var limited *jwkscache.LimitedError
		if errors.As(err, &limited) {
			err = limited.Last
		}
		return publicKey{}, unavailable("signing keys not loaded", err)
	}
	if k, ok := m[kid]; ok {
		return k, nil
	}
	var limited *jwkscache.LimitedError
	switch {
	case errors.As(err, &limited):
		return publicKey{}, errUnknownKID
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return publicKey{}, unavailable("signing keys not loaded", err)
	case err != nil:
		return publicKey{}, invalidToken(errUnknownKID.Description, err)
	}
	return publicKey{}, errUnknownKID
}

// fetch is the cache's FetchFunc: fetchKeys, counting its failures.
func (ks *keySet) fetch(ctx context.Context) (map[string]publicKey, time.Duration, error) {
	keys, maxAge, err := ks.fetchKeys(ctx)
	if err != nil {
		ks.fetchErrors.Add(1)
	}
	return keys, maxAge, err
}

// fetchKeys is discovery when no JWKS URL is known, then the JWKS and its
// max-age.
func (ks *keySet) fetchKeys(ctx context.Context) (map[string]publicKey, time.Duration, error) {
	if ks.client.Timeout == 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	if ks.jwksURL == "" {
		u, err := ks.discover(ctx)
		if err != nil {
			return nil, 0, err
		}
		ks.jwksURL = u
	}
	body, hdr, err := ks.getJSON(ctx, ks.jwksURL)
	if err != nil {
		return nil, 0, fmt.Errorf("fetch jwks: %w", err)
	}
	keys, err := parseJWKS(body)
	if err != nil {
		return nil, 0, fmt.Errorf("parse jwks: %w", err)
	}
	return keys, cacheMaxAge(hdr.Get("Cache-Control")), nil
}

// discover reads jwks_uri from the issuer's discovery document and checks
// that the document names the same issuer (OIDC Discovery §4.3).
func (ks *keySet) discover(ctx context.Context) (string, error) {
	body, _, err := ks.getJSON(ctx, strings.TrimSuffix(ks.issuer, "/")+"/.well-known/openid-configuration")
	if err != nil {
		return "", fmt.Errorf("fetch discovery document: %w", err)
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", fmt.Errorf("parse discovery document: %w", err)
	}
	if doc.Issuer != ks.issuer {
		return "", fmt.Errorf("discovery document names issuer %q, want %q", doc.Issuer, ks.issuer)
	}
	if doc.JWKSURI == "" {
		return "", errors.New("discovery document has no jwks_uri")
	}
	return doc.JWKSURI, nil
}

func (ks *keySet) getJSON(ctx context.Context, url string) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := ks.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", url, err)
	}
	if len(body) > maxJWKSBytes {
		return nil, nil, fmt.Errorf("GET %s: body larger than %d bytes", url, maxJWKSBytes)
	}
	return body, resp.Header, nil
}

// cacheMaxAge reads max-age from a Cache-Control header, bounded to
// [1m, 24h]; no-store and no-cache count as the minimum, absence as 5m.
func cacheMaxAge(cc string) time.Duration {
	for dir := range strings.SplitSeq(cc, ",") {
		dir = strings.ToLower(strings.TrimSpace(dir))
		if dir == "no-store" || dir == "no-cache" {
			return minMaxAge
		}
		if v, ok := strings.CutPrefix(dir, "max-age="); ok {
			n, err := strconv.ParseInt(strings.Trim(v, `"`), 10, 64)
			if err != nil || n < 0 {
				return defaultMaxAge
			}
			if n > int64(maxMaxAge/time.Second) {
				return maxMaxAge
			}
			return max(time.Duration(n)*time.Second, minMaxAge)
		}
	}
	return defaultMaxAge
}

// parseJWKS keeps the signing keys Keyward can use: RSA of at least 2048 bits
// (odd modulus, odd exponent below 2^31), EC P-256 and Ed25519, with a kid
// and use absent or "sig". Other keys are skipped, not errors; a set with no
// usable key is an error. RSA keys are prepared for RS256/384/512 here.
func parseJWKS(body []byte) (map[string]publicKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, err
	}
	keys := make(map[string]publicKey, len(set.Keys))
	for _, raw := range set.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			continue
		}
		if (k.Use != "" && k.Use != "sig") || k.KeyID == "" || !k.Valid() {
			continue
		}
		if _, dup := keys[k.KeyID]; dup {
			continue
		}
		pub := k.Public()
		var prepared *rsaPKCS1
		switch key := pub.Key.(type) {
		case *rsa.PublicKey:
			// Also refuses the keys crypto/rsa would refuse at every check.
			var err error
			if prepared, err = prepareRSA(key); err != nil {
				continue
			}
		case *ecdsa.PublicKey:
			if key.Curve != elliptic.P256() {
				continue
			}
		case ed25519.PublicKey:
		default:
			continue
		}
		keys[k.KeyID] = publicKey{key: pub.Key, alg: k.Algorithm, rsa: prepared}
	}
	if len(keys) == 0 {
		return nil, errors.New("no usable signing key")
	}
	return keys, nil
}
