package fakeidp

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/go-jose/go-jose/v4"
)

//go:embed testdata/keys.json
var fixtureJSON []byte

// fixtures parses the embedded keys once; the result is never modified.
var fixtures = sync.OnceValues(func() (map[string][]jose.JSONWebKey, error) {
	var set map[string][]jose.JSONWebKey
	if err := json.Unmarshal(fixtureJSON, &set); err != nil {
		return nil, fmt.Errorf("parse key fixtures: %w", err)
	}
	return set, nil
})

// keyAt returns the i-th signing key for alg: a fixture while they last, a
// freshly generated key afterwards.
func keyAt(alg string, i int) (jose.JSONWebKey, error) {
	set, err := fixtures()
	if err != nil {
		return jose.JSONWebKey{}, err
	}
	if keys := set[alg]; i < len(keys) {
		return keys[i], nil
	}
	kid := fmt.Sprintf("fakeidp-%s-%s", strings.ToLower(alg), strings.ToLower(rand.Text()[:8]))
	switch alg {
	case "RS256":
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return jose.JSONWebKey{}, fmt.Errorf("generate RSA key: %w", err)
		}
		return jose.JSONWebKey{Key: k, KeyID: kid, Algorithm: alg, Use: "sig"}, nil
	case "ES256":
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return jose.JSONWebKey{}, fmt.Errorf("generate P-256 key: %w", err)
		}
		return jose.JSONWebKey{Key: k, KeyID: kid, Algorithm: alg, Use: "sig"}, nil
	}
	return jose.JSONWebKey{}, fmt.Errorf("unsupported algorithm %q", alg)
}

// signJWT signs claims as a compact JWT with key (kid in the header). With
// corrupt set, one bit of the signature is flipped so that verification
// against the published key fails.
func signJWT(key jose.JSONWebKey, claims map[string]any, corrupt bool) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("encode claims: %w", err)
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.SignatureAlgorithm(key.Algorithm), Key: key},
		(&jose.SignerOptions{}).WithType("JWT"),
	)
	if err != nil {
		return "", fmt.Errorf("new signer: %w", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	raw, err := jws.CompactSerialize()
	if err != nil {
		return "", fmt.Errorf("serialize: %w", err)
	}
	if !corrupt {
		return raw, nil
	}
	i := strings.LastIndexByte(raw, '.')
	sig, err := base64.RawURLEncoding.DecodeString(raw[i+1:])
	if err != nil {
		return "", fmt.Errorf("decode signature: %w", err)
	}
	sig[len(sig)/2] ^= 0x01
	return raw[:i+1] + base64.RawURLEncoding.EncodeToString(sig), nil
}

// accessTokenHash is the at_hash claim for RS256 and ES256. OIDC Core §3.1.3.6
func accessTokenHash(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}

// publicJWKS is the key set document for the one published key.
func publicJWKS(key jose.JSONWebKey) jose.JSONWebKeySet {
	return jose.JSONWebKeySet{Keys: []jose.JSONWebKey{key.Public()}}
}
