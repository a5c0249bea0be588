package federation

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// TestParseSubjectToken: the one decode of a subject token refuses what
// golang-jwt's unverified parse refused, and is stricter where a lenient
// reading could differ from what was signed.
func TestParseSubjectToken(t *testing.T) {
	hdr := b64(`{"alg":"RS256","kid":"k1"}`)
	sig := b64("sig")
	ok := hdr + "." + b64(`{"iss":"https://ci.example","aud":["a","b"],"exp":1700000000.9,"iat":1699999000,"jti":"j","n":12345678901234567890}`) + "." + sig
	tok, err := ParseSubjectToken(ok)
	if err != nil {
		t.Fatalf("ParseSubjectToken(valid) = %v", err)
	}
	if tok.Issuer() != "https://ci.example" || tok.alg != "RS256" || tok.kid != "k1" || tok.jti != "j" ||
		len(tok.audience) != 2 || tok.exp.Unix() != 1700000000 || tok.iat.Unix() != 1699999000 || !tok.nbf.IsZero() {
		t.Errorf("ParseSubjectToken(valid) = %+v", tok)
	}
	if got := tok.claims["n"]; got == nil || got.(interface{ String() string }).String() != "12345678901234567890" {
		t.Errorf("claims[n] = %v, want the json.Number", got)
	}
	if tok.signingInput != ok[:strings.LastIndexByte(ok, '.')] {
		t.Errorf("signingInput is not header.payload")
	}
	claims := func(c string) string { return hdr + "." + b64(c) + "." + sig }
	bad := map[string]string{
		"two segments":      hdr + "." + b64(`{}`),
		"four segments":     claims(`{}`) + ".x",
		"padded":            hdr + "=." + b64(`{}`) + "." + sig,
		"header not json":   b64("nope") + "." + b64(`{}`) + "." + sig,
		"no alg":            b64(`{"kid":"k"}`) + "." + b64(`{}`) + "." + sig,
		"alg not string":    b64(`{"alg":1}`) + "." + b64(`{}`) + "." + sig,
		"ALG not alg":       b64(`{"ALG":"RS256"}`) + "." + b64(`{}`) + "." + sig,
		"kid not string":    b64(`{"alg":"RS256","kid":1}`) + "." + b64(`{}`) + "." + sig,
		"crit":              b64(`{"alg":"RS256","crit":["b64"],"b64":false}`) + "." + b64(`{}`) + "." + sig,
		"claims array":      claims(`[]`),
		"claims null":       claims(`null`),
		"trailing data":     claims(`{"iss":"x"} {}`),
		"iss number":        claims(`{"iss":1}`),
		"sub object":        claims(`{"sub":{}}`),
		"jti number":        claims(`{"jti":1}`),
		"aud number":        claims(`{"aud":1}`),
		"aud mixed":         claims(`{"aud":["a",1]}`),
		"exp string":        claims(`{"exp":"1700000000"}`),
		"nbf bool":          claims(`{"nbf":true}`),
		"iat huge":          claims(`{"iat":1e300}`),
		"signature invalid": hdr + "." + b64(`{}`) + ".*",
		"too large":         claims(`{"x":"` + strings.Repeat("a", 16<<10) + `"}`),
	}
	for name, raw := range bad {
		if _, err := ParseSubjectToken(raw); err == nil {
			t.Errorf("ParseSubjectToken(%s) = nil, want error", name)
		}
	}
}

// TestVerifySignature: each alg needs a key of its own type (and curve),
// a signature made by it, over exactly the signing input.
func TestVerifySignature(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	edPub, edKey, _ := ed25519.GenerateKey(rand.Reader)
	sign := func(m jwt.SigningMethod, key any) *SubjectToken {
		raw, err := jwt.NewWithClaims(m, jwt.MapClaims{"iss": "x"}).SignedString(key)
		if err != nil {
			t.Fatalf("sign %s: %v", m.Alg(), err)
		}
		tok, err := ParseSubjectToken(raw)
		if err != nil {
			t.Fatalf("parse %s: %v", m.Alg(), err)
		}
		return tok
	}
	tests := []struct {
		name string
		tok  *SubjectToken
		key  any
		ok   bool
	}{
		{"RS256", sign(jwt.SigningMethodRS256, rsaKey), &rsaKey.PublicKey, true},
		{"PS256", sign(jwt.SigningMethodPS256, rsaKey), &rsaKey.PublicKey, true},
		{"RS512", sign(jwt.SigningMethodRS512, rsaKey), &rsaKey.PublicKey, true},
		{"ES256", sign(jwt.SigningMethodES256, p256), &p256.PublicKey, true},
		{"ES384", sign(jwt.SigningMethodES384, p384), &p384.PublicKey, true},
		{"EdDSA", sign(jwt.SigningMethodEdDSA, edKey), edPub, true},
		{"RS256 with an EC key", sign(jwt.SigningMethodRS256, rsaKey), &p256.PublicKey, false},
		{"ES256 with an RSA key", sign(jwt.SigningMethodES256, p256), &rsaKey.PublicKey, false},
		{"ES256 with a P-384 key", sign(jwt.SigningMethodES256, p256), &p384.PublicKey, false},
		{"ES384 with a P-256 key", sign(jwt.SigningMethodES384, p384), &p256.PublicKey, false},
		{"EdDSA with an RSA key", sign(jwt.SigningMethodEdDSA, edKey), &rsaKey.PublicKey, false},
		{"HS256 with the secret", sign(jwt.SigningMethodHS256, []byte("secret")), []byte("secret"), false},
	}
	for _, tt := range tests {
		err := verifySignature(tt.tok.alg, tt.key, tt.tok.signingInput, tt.tok.sig)
		if (err == nil) != tt.ok {
			t.Errorf("%s: verifySignature() = %v, want ok %v", tt.name, err, tt.ok)
		}
		if tt.ok {
			// One byte of the claims changed: the signature no longer matches.
			in := []byte(tt.tok.signingInput)
			in[len(in)-2] ^= 1
			if verifySignature(tt.tok.alg, tt.key, string(in), tt.tok.sig) == nil {
				t.Errorf("%s: tampered signing input verifies", tt.name)
			}
		}
	}
}
