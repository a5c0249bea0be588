package keys

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/keyward/keyward/keys/seal"
)

// benchClaims is a 17-claim access token, the size docs/performance.md
// measures.
func benchClaims(now time.Time) map[string]any {
	return map[string]any{
		"iss": "https://id.example.com", "sub": "u_8f3a9c2e1b7d4f60", "aud": []string{"api"},
		"exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(), "nbf": now.Unix(),
		"jti": "b1f6d0e4-5c3a-4f7e-9a2b-8d1c3e5f7a90", "client_id": "web", "scope": "openid email profile",
		"auth_time": now.Unix(), "sid": "s_4c2e7a9b", "idp": "corp", "email": "alice@example.com",
		"email_verified": true, "name": "Alice Example", "preferred_username": "alice",
		"groups": []string{"staff", "eng"},
	}
}

func BenchmarkSign(b *testing.B) {
	for _, alg := range []string{RS256, ES256, EdDSA} {
		b.Run(alg, func(b *testing.B) {
			clock := newClock()
			cfg := testConfig(b, &memStore{}, clock)
			cfg.Algorithm = alg
			m := mustNew(b, cfg)
			claims, header := benchClaims(clock.Now()), map[string]any{"typ": "at+jwt"}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Sign(b.Context(), claims, header); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSignatureVerify is what a verifier pays per token of each
// algorithm: golang-jwt parses and checks the signature of a token Sign
// made, with the public key PublicKey gives for its kid (web/verify's
// hand-written RS256 path is faster; see docs/performance.md).
func BenchmarkSignatureVerify(b *testing.B) {
	for _, alg := range []string{RS256, ES256, EdDSA} {
		b.Run(alg, func(b *testing.B) {
			clock := newClock()
			cfg := testConfig(b, &memStore{}, clock)
			cfg.Algorithm = alg
			m := mustNew(b, cfg)
			tok, err := m.Sign(b.Context(), benchClaims(clock.Now()), map[string]any{"typ": "at+jwt"})
			if err != nil {
				b.Fatal(err)
			}
			keyFunc := func(t *jwt.Token) (any, error) {
				kid, _ := t.Header["kid"].(string)
				k, ok := m.PublicKey(kid)
				if !ok {
					return nil, jwt.ErrTokenUnverifiable
				}
				return k.Public, nil
			}
			parser := jwt.NewParser(jwt.WithValidMethods([]string{alg}), jwt.WithoutClaimsValidation())
			b.ReportAllocs()
			for b.Loop() {
				if _, err := parser.Parse(tok, keyFunc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSignBare is the reference for BenchmarkSign: golang-jwt alone,
// with the key at hand.
func BenchmarkSignBare(b *testing.B) {
	for _, alg := range []string{RS256, ES256, EdDSA} {
		b.Run(alg, func(b *testing.B) {
			sk, err := seal.New(make([]byte, 32))
			if err != nil {
				b.Fatal(err)
			}
			k, err := generate(alg, sk)
			if err != nil {
				b.Fatal(err)
			}
			p, err := parseKey([]kek{{key: sk}}, k, true)
			if err != nil {
				b.Fatal(err)
			}
			claims := benchClaims(time.Now())
			b.ReportAllocs()
			for b.Loop() {
				tok := jwt.NewWithClaims(p.method, jwt.MapClaims(claims))
				tok.Header["kid"], tok.Header["typ"] = k.ID, "at+jwt"
				if _, err := tok.SignedString(p.private); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkJWKS(b *testing.B) {
	clock := newClock()
	m := mustNew(b, testConfig(b, &memStore{}, clock))
	b.ReportAllocs()
	for b.Loop() {
		if body, maxAge := m.JWKS(); len(body) == 0 || maxAge <= 0 {
			b.Fatal("empty JWKS")
		}
	}
}

func BenchmarkPublicKey(b *testing.B) {
	clock := newClock()
	m := mustNew(b, testConfig(b, &memStore{}, clock))
	kid := m.SigningKey().ID
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := m.PublicKey(kid); !ok {
			b.Fatal("kid not found")
		}
	}
}
