package verify

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// Run: go test -run '^$' -bench . -benchmem ./web/verify/
// Compare the handler with BenchmarkBareHandler and Verify with
// BenchmarkGolangJWTParse from the same run (docs/performance.md).

func benchVerifier(b *testing.B, alg string, cacheEntries int) (*Verifier, string) {
	b.Helper()
	e := newEnv(b)
	v := newVerifier(b, e.ks, e.clock, func(c *Config) { c.Cache.MaxEntries = cacheEntries })
	k := map[string]testKey{"RS256": e.rsa, "ES256": e.ec, "EdDSA": e.ed}[alg]
	token := mint(b, k, nil, e.claims)
	if _, err := v.Verify(b.Context(), token); err != nil {
		b.Fatalf("Verify() = %v", err)
	}
	return v, token
}

// cryptoRSA makes v check RSA signatures with crypto/rsa through golang-jwt
// (the path before rsapkcs1.go, and the one in FIPS 140 mode).
func cryptoRSA(v *Verifier) {
	// No fetch is in flight and nothing else reads the map yet.
	m, _ := v.keys.cache.Peek()
	for kid, k := range m {
		k.rsa = nil
		m[kid] = k
	}
}

func benchVerify(b *testing.B, alg string, cacheEntries int) {
	v, token := benchVerifier(b, alg, cacheEntries)
	benchVerifyWith(b, v, token)
}

func benchVerifyWith(b *testing.B, v *Verifier, token string) {
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, token); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyRS256Miss checks the signature with crypto/rsa, as
// golang-jwt does: compare it with BenchmarkGolangJWTParse.
func BenchmarkVerifyRS256Miss(b *testing.B) {
	v, token := benchVerifier(b, "RS256", -1)
	cryptoRSA(v)
	benchVerifyWith(b, v, token)
}

// BenchmarkVerifyRS256MissBigmod is Verify as it runs: the signature is
// checked against the modulus prepared when the key set loaded.
func BenchmarkVerifyRS256MissBigmod(b *testing.B) { benchVerify(b, "RS256", -1) }

func BenchmarkVerifyES256Miss(b *testing.B) { benchVerify(b, "ES256", -1) }
func BenchmarkVerifyEdDSAMiss(b *testing.B) { benchVerify(b, "EdDSA", -1) }
func BenchmarkVerifyRS256Hit(b *testing.B)  { benchVerify(b, "RS256", 0) }

func BenchmarkVerifyRS256HitParallel(b *testing.B) {
	v, token := benchVerifier(b, "RS256", 0)
	ctx := b.Context()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := v.Verify(ctx, token); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkGolangJWTParse is the baseline: golang-jwt's ParseWithClaims with
// the same checks, no cache.
func BenchmarkGolangJWTParse(b *testing.B) {
	e := newEnv(b)
	token := mint(b, e.rsa, nil, e.claims)
	pub := e.rsa.priv.Public()
	p := jwt.NewParser(jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer(e.ks.URL),
		jwt.WithAudience(testAudience), jwt.WithExpirationRequired(), jwt.WithTimeFunc(e.clock.Now))
	keyfunc := func(*jwt.Token) (any, error) { return pub, nil }
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.ParseWithClaims(token, jwt.MapClaims{}, keyfunc); err != nil {
			b.Fatal(err)
		}
	}
}

// nopWriter is a reusable ResponseWriter, so the benchmarks measure the
// handler rather than httptest.ResponseRecorder.
type nopWriter struct {
	h    http.Header
	code int
}

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nopWriter) WriteHeader(code int)        { w.code = code }

func benchServe(b *testing.B, h http.Handler, req *http.Request) {
	b.Helper()
	w := &nopWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		w.code = 0
		h.ServeHTTP(w, req)
		if w.code != http.StatusOK {
			b.Fatalf("status = %d", w.code)
		}
	}
}

func benchHandler(b *testing.B, cacheEntries int, withCryptoRSA bool) {
	v, token := benchVerifier(b, "RS256", cacheEntries)
	if withCryptoRSA {
		cryptoRSA(v)
	}
	req := httptest.NewRequestWithContext(b.Context(), "GET", "/oauth2/auth", nil)
	req.Header.Set("X-Original-Uri", "/orders/123?expand=items")
	req.Header.Set("X-Original-Method", "GET")
	req.Header.Set("X-Forwarded-Host", "api.example.com")
	req.Header.Set("Authorization", "Bearer "+token)
	benchServe(b, NewHandler(v, handlerRules(), HandlerOptions{}), req)
}

// BenchmarkHandlerHit is /oauth2/auth with the verified-token cache.
func BenchmarkHandlerHit(b *testing.B) { benchHandler(b, 0, false) }

// BenchmarkHandlerMiss is /oauth2/auth with the cache disabled: every
// request parses and checks the token and its signature, here with
// crypto/rsa (the path before rsapkcs1.go). Compare it with
// BenchmarkGolangJWTParse from the same run.
func BenchmarkHandlerMiss(b *testing.B) { benchHandler(b, -1, true) }

// BenchmarkHandlerMissBigmod is BenchmarkHandlerMiss as it runs: with the
// modulus prepared per key.
func BenchmarkHandlerMissBigmod(b *testing.B) { benchHandler(b, -1, false) }

// BenchmarkRS256Signature is the signature check alone, 2048-bit key.
func BenchmarkRS256Signature(b *testing.B) {
	priv := rsaKey()
	msg := "eyJhbGciOiJSUzI1NiIsInR5cCI6ImF0K2p3dCJ9.eyJzdWIiOiJhZGEifQ"
	digest := sha256.Sum256([]byte(msg))
	sig, err := rsa.SignPKCS1v15(nil, priv, crypto.SHA256, digest[:])
	if err != nil {
		b.Fatal(err)
	}
	b.Run("crypto-rsa", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			d := sha256.Sum256([]byte(msg))
			if err := rsa.VerifyPKCS1v15(&priv.PublicKey, crypto.SHA256, d[:], sig); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("bigmod", func(b *testing.B) {
		r, err := newRSAPKCS1(&priv.PublicKey)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if err := r.verify(rsaSHA256, msg, sig); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkBareHandler is the floor: an empty 200.
func BenchmarkBareHandler(b *testing.B) {
	req := httptest.NewRequestWithContext(b.Context(), "GET", "/oauth2/auth", nil)
	benchServe(b, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }), req)
}
