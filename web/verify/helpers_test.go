package verify

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

// testKey is a signing key and the kid/alg it is published under.
type testKey struct {
	kid  string
	alg  string
	priv crypto.Signer
}

// rsaKey is generated once: RSA generation dominates test time otherwise.
// The key is never modified.
var rsaKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

func newKey(t testing.TB, kid, alg string) testKey {
	t.Helper()
	var priv crypto.Signer
	var err error
	switch alg {
	case "RS256", "PS256":
		priv = rsaKey()
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "EdDSA":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("newKey: unsupported alg %q", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return testKey{kid: kid, alg: alg, priv: priv}
}

func (k testKey) jwk() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: k.alg, Use: "sig"}
}

// keyServer serves discovery and a JWKS, in the manner of go-oidc's
// keyServer: keys can be swapped, the server can fail or block, and every
// JWKS request is counted.
type keyServer struct {
	*httptest.Server
	hits atomic.Int64

	mu           sync.Mutex
	keys         []testKey
	cacheControl string
	status       int           // non-zero: answer /keys with this status
	block        chan struct{} // non-nil: /keys waits until closed
}

func newKeyServer(t testing.TB, keys ...testKey) *keyServer {
	t.Helper()
	ks := &keyServer{keys: keys}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": ks.URL, "jwks_uri": ks.URL + "/keys"})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		ks.hits.Add(1)
		ks.mu.Lock()
		block, status, cc := ks.block, ks.status, ks.cacheControl
		set := jose.JSONWebKeySet{}
		for _, k := range ks.keys {
			set.Keys = append(set.Keys, k.jwk())
		}
		ks.mu.Unlock()
		if block != nil {
			select {
			case <-block:
			case <-r.Context().Done():
				return
			}
		}
		if status != 0 {
			w.WriteHeader(status)
			return
		}
		if cc != "" {
			w.Header().Set("Cache-Control", cc)
		}
		_ = json.NewEncoder(w).Encode(set)
	})
	ks.Server = httptest.NewServer(mux)
	t.Cleanup(ks.Close)
	return ks
}

func (ks *keyServer) setKeys(keys ...testKey) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.keys = keys
}

func (ks *keyServer) setStatus(status int) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.status = status
}

func (ks *keyServer) setCacheControl(cc string) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.cacheControl = cc
}

// blockKeys makes /keys wait until the returned func is called.
func (ks *keyServer) blockKeys() (release func()) {
	ch := make(chan struct{})
	ks.mu.Lock()
	ks.block = ch
	ks.mu.Unlock()
	return sync.OnceFunc(func() {
		ks.mu.Lock()
		ks.block = nil
		ks.mu.Unlock()
		close(ch)
	})
}

// fakeClock is an injected clock, advanced by tests.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

const testAudience = "orders-api"

// newVerifier builds a Verifier against ks with clock, then lets mutate
// adjust the config.
func newVerifier(t testing.TB, ks *keyServer, clock *fakeClock, mutate func(*Config)) *Verifier {
	t.Helper()
	cfg := Config{
		Issuer:     ks.URL,
		Audiences:  []string{testAudience},
		HTTPClient: ks.Client(),
		Now:        clock.Now,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	v, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	return v
}

// waitIdle waits until no key fetch is in flight.
func waitIdle(t testing.TB, v *Verifier) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := v.keys.cache.Wait(ctx); err != nil {
		t.Fatal("key fetch did not finish")
	}
}

// claims returns the default claims of a valid token for issuer at now.
func claims(issuer string, now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"iss":                issuer,
		"sub":                "corp|1234",
		"aud":                []string{testAudience},
		"exp":                now.Add(5 * time.Minute).Unix(),
		"iat":                now.Unix(),
		"jti":                "jti-1",
		"client_id":          "shop-web",
		"scope":              "openid orders:read",
		"sid":                "sid-1",
		"idp":                "corp",
		"email":              "ada@example.com",
		"email_verified":     true,
		"name":               "Ada Lovelace",
		"preferred_username": "ada",
		"groups":             []string{"staff", "shop-admins"},
	}
}

// mint signs c with k; header entries in hdr override the defaults (typ
// at+jwt, the key's kid), and a nil value removes one.
func mint(t testing.TB, k testKey, hdr map[string]any, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.GetSigningMethod(k.alg), c)
	tok.Header["typ"] = "at+jwt"
	tok.Header["kid"] = k.kid
	for name, v := range hdr {
		if v == nil {
			delete(tok.Header, name)
		} else {
			tok.Header[name] = v
		}
	}
	s, err := tok.SignedString(k.priv)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return s
}

// with returns a copy of c with the given claims set (nil deletes).
func with(c jwt.MapClaims, kv ...any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for k, v := range c {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

// runVerifier runs v's background work (Run) until the test ends.
func runVerifier(t testing.TB, v *Verifier) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- v.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v, want nil once its context ended", err)
		}
	})
}

// startVerifier runs v (Run loads the key set at once) until the test ends
// and waits until the key set has loaded.
func startVerifier(t testing.TB, v *Verifier) {
	t.Helper()
	runVerifier(t, v)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if _, ok := v.keys.cache.Peek(); ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("Run did not load the key set")
		}
	}
}
