package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/keyward/keyward/keys/jwkscache"
)

const (
	// maxJWKSSize bounds a JWKS response body.
	maxJWKSSize = 1 << 20
	// keysMaxAge is how long fetched keys are used before a background
	// refresh, so that a key the issuer withdrew stops verifying even if no
	// token ever misses the cache. A failed refresh keeps the old keys.
	keysMaxAge = time.Hour
	// fetchTimeout bounds one discovery or JWKS request even when the HTTP
	// client has no timeout.
	fetchTimeout = 30 * time.Second
)

// errUnknownKey: the token names a kid the issuer's current JWKS does not
// hold, or no key of the set verifies it.
var errUnknownKey = errors.New("no key of the issuer's key set verifies the token")

// keySet is an oidc.KeySet for one trusted issuer or one upstream (native
// sign-in): the JWKS at url, held in a jwkscache.Cache: fetched on first
// use and again on a cache miss (unknown kid), but at most once per
// interval counted from any fetch, with one fetch shared by all waiters;
// refreshed in the background after keysMaxAge (no jitter). A failed fetch
// keeps the keys already held, so an issuer outage does not stop tokens
// signed with known keys, and the next fetch waits an interval. Safe for
// concurrent use.
type keySet struct {
	url    string
	client *http.Client
	algs   []jose.SignatureAlgorithm
	logger *slog.Logger

	cache *jwkscache.Cache[[]jose.JSONWebKey] // values never modified once set; replaced whole
}

// newKeySet returns the key set at url, fetched at most once per interval.
func newKeySet(url string, client *http.Client, algs []jose.SignatureAlgorithm, interval time.Duration, now func() time.Time, logger *slog.Logger) *keySet {
	k := &keySet{url: url, client: client, algs: algs, logger: logger}
	k.cache = jwkscache.New(k.fetchLogged, jwkscache.Options{
		MissInterval:             interval,
		MissIntervalFromAnyFetch: true,
		FailureBackoff:           interval,
		Now:                      now,
	})
	return k
}

// VerifySignature implements oidc.KeySet: it verifies raw with the cached
// key named by its kid (any cached key if it has none), refetching the set
// on a miss when the rate limit allows, and returns the payload. A known kid
// whose key does not verify is not a miss: forged tokens cause no fetches.
func (k *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	jws, err := jose.ParseSignedCompact(raw, k.algs)
	if err != nil {
		return nil, fmt.Errorf("parse jws: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("parse jws: want exactly one signature")
	}
	kid := jws.Signatures[0].Header.KeyID
	keys := k.cached(ctx)
	payload, found := verifyWith(jws, keys, kid)
	if payload != nil {
		return payload, nil
	}
	if found {
		return nil, errors.New("signature does not verify")
	}
	keys, fetchErr := k.refresh(ctx)
	if payload, _ := verifyWith(jws, keys, kid); payload != nil {
		return payload, nil
	}
	if fetchErr != nil {
		return nil, fmt.Errorf("%w (kid %q; last key fetch: %w)", errUnknownKey, kid, fetchErr)
	}
	return nil, fmt.Errorf("%w (kid %q)", errUnknownKey, kid)
}

// verify is VerifySignature for a token decoded once (trust rules): the
// same key choice, refetch and alg rules, with the signature checked over
// the decoded segments instead of parsing raw again. A key whose JWK alg is
// set must name the token's alg, and its type must be the alg's.
func (k *keySet) verify(ctx context.Context, tok *SubjectToken) error {
	if !slices.Contains(k.algs, jose.SignatureAlgorithm(tok.alg)) {
		return fmt.Errorf("alg: %q is not allowed for this issuer", clean(tok.alg, 20))
	}
	ok, found := verifyTokenWith(tok, k.cached(ctx))
	if ok {
		return nil
	}
	if found {
		return errors.New("signature does not verify")
	}
	keys, fetchErr := k.refresh(ctx)
	if ok, _ := verifyTokenWith(tok, keys); ok {
		return nil
	}
	if fetchErr != nil {
		return fmt.Errorf("%w (kid %q; last key fetch: %w)", errUnknownKey, tok.kid, fetchErr)
	}
	return fmt.Errorf("%w (kid %q)", errUnknownKey, tok.kid)
}

// verifyTokenWith is verifyWith for a decoded token.
func verifyTokenWith(tok *SubjectToken, keys []jose.JSONWebKey) (ok, found bool) {
	for i := range keys {
		key := &keys[i]
		if tok.kid != "" && key.KeyID != tok.kid {
			continue
		}
		if key.Algorithm != "" && key.Algorithm != tok.alg {
			continue
		}
		found = true
		if verifySignature(tok.alg, key.Key, tok.signingInput, tok.sig) == nil {
			return true, true
		}
	}
	return false, found
}

// ensure makes sure a key for kid is cached, fetching the set if needed and
// allowed, so that the caller can tell an unreachable issuer
// (ErrIssuerUnavailable) from a kid the issuer does not publish
// (ErrInvalidIDToken) before verifying. An empty kid needs any key.
func (k *keySet) ensure(ctx context.Context, kid string) error {
	if hasKid(k.cached(ctx), kid) {
		return nil
	}
	keys, err := k.refresh(ctx)
	switch {
	case hasKid(keys, kid):
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("%w: fetch keys: %w", ErrIssuerUnavailable, context.Cause(ctx))
	case err != nil:
		return fmt.Errorf("%w: fetch keys: %w", ErrIssuerUnavailable, err)
	}
	return fmt.Errorf("%w: %w (kid %q)", ErrInvalidIDToken, errUnknownKey, kid)
}

func hasKid(keys []jose.JSONWebKey, kid string) bool {
	for _, key := range keys {
		if kid == "" || key.KeyID == kid {
			return true
		}
	}
	return false
}

// verifyWith tries the keys named kid (all keys if kid is empty). found
// reports whether any key was tried.
func verifyWith(jws *jose.JSONWebSignature, keys []jose.JSONWebKey, kid string) (payload []byte, found bool) {
	alg := jws.Signatures[0].Header.Algorithm
	for i := range keys {
		key := &keys[i]
		if kid != "" && key.KeyID != kid {
			continue
		}
		if key.Algorithm != "" && key.Algorithm != alg {
			continue
		}
		found = true
		if p, err := jws.Verify(key); err == nil {
			return p, true
		}
	}
	return nil, found
}

// cached returns the keys held now, starting a background refresh when they
// are older than keysMaxAge.
func (k *keySet) cached(ctx context.Context) []jose.JSONWebKey {
	keys, _ := k.cache.Load(ctx)
	return keys
}

// refresh fetches the set unless a fetch started less than interval ago,
// waits for the running or new fetch (or ctx), and returns the keys held
// afterwards with the outcome of the last fetch.
func (k *keySet) refresh(ctx context.Context) ([]jose.JSONWebKey, error) {
	keys, _, err := k.cache.Refresh(ctx, nil)
	if limited, ok := errors.AsType[*jwkscache.LimitedError](err); ok {
		err = limited.Last
	}
	return keys, err
}

// fetchLogged is the cache's FetchFunc: fetch, logging a failure.
func (k *keySet) fetchLogged(ctx context.Context) ([]jose.JSONWebKey, time.Duration, error) {
	keys, err := k.fetch(ctx)
	if err != nil {
		held, _ := k.cache.Peek()
		k.logger.WarnContext(ctx, "issuer key set fetch failed; keeping cached keys",
			"keys_cached", len(held), "err", err)
	}
	return keys, keysMaxAge, err
}

// fetch GETs and parses the JWKS. Keys that go-jose cannot parse, private
// or symmetric keys, and encryption keys are skipped, not fatal.
func (k *keySet) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch keys: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch keys: %w", redact(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch keys: %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSSize+1))
	if err != nil {
		return nil, fmt.Errorf("fetch keys: read body: %w", err)
	}
	if len(body) > maxJWKSSize {
		return nil, errors.New("fetch keys: response larger than 1 MiB")
	}
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, errors.New("fetch keys: response is not a JSON key set")
	}
	keys := make([]jose.JSONWebKey, 0, len(doc.Keys))
	for _, rawKey := range doc.Keys {
		var key jose.JSONWebKey
		if err := key.UnmarshalJSON(rawKey); err != nil {
			k.logger.DebugContext(ctx, "skipping unparsable key in issuer key set", "err", err)
			continue
		}
		if !key.Valid() || !key.IsPublic() || key.Use == "enc" {
			continue
		}
		keys = append(keys, key)
	}
	k.logger.DebugContext(ctx, "issuer key set fetched", "keys", len(keys))
	return keys, nil
}
