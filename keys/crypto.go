package keys

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/golang-jwt/jwt/v5"

	"github.com/keyward/keyward/store"
)

// ErrEncryptionKey reports stored private keys that cannot be opened with the
// configured key-encryption key: none is configured, or it is the wrong one.
var ErrEncryptionKey = errors.New("keys: missing or wrong key-encryption key (check keys.encryptionKeyFile)")

// rsaBits is the RS256 modulus size.
const rsaBits = 2048

// newKID returns a random, URL-safe key id with 128 bits of entropy.
func newKID() string {
	return base64.RawURLEncoding.EncodeToString(randomBytes(16))
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	// crypto/rand.Read never returns an error (Go 1.24+); it crashes the
	// program instead of returning predictable bytes.
	_, _ = rand.Read(b)
	return b
}

// generate creates a key of alg and returns it as a record with ID,
// Algorithm, PrivateKey (sealed when aead is set), Encrypted and PublicKey
// filled in; the caller sets State and the times.
func generate(alg string, aead cipher.AEAD) (store.SigningKey, error) {
	var priv crypto.Signer
	var err error
	switch alg {
	case RS256:
		priv, err = rsa.GenerateKey(rand.Reader, rsaBits)
	case ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		err = fmt.Errorf("unsupported algorithm %q", alg)
	}
	if err != nil {
		return store.SigningKey{}, fmt.Errorf("generate %s key: %w", alg, err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return store.SigningKey{}, fmt.Errorf("marshal private key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		return store.SigningKey{}, fmt.Errorf("marshal public key: %w", err)
	}
	k := store.SigningKey{ID: newKID(), Algorithm: alg, PrivateKey: privDER, PublicKey: pubDER}
	if aead != nil {
		k.PrivateKey = seal(aead, k.ID, privDER)
		k.Encrypted = true
	}
	return k, nil
}

// newAEAD returns AES-256-GCM for a 32-byte key-encryption key, or nil for
// none.
func newAEAD(kek []byte) (cipher.AEAD, error) {
	if len(kek) == 0 {
		return nil, nil
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("encryption key: %w", err)
	}
	return cipher.NewGCM(block)
}

// seal encrypts a private key: random 12-byte nonce || ciphertext, with the
// kid as additional data so a sealed key cannot be moved to another record.
func seal(aead cipher.AEAD, kid string, plain []byte) []byte {
	nonce := randomBytes(aead.NonceSize())
	return aead.Seal(nonce, nonce, plain, []byte(kid))
}

// openPrivate returns the PKCS #8 DER of k's private key.
func openPrivate(aead cipher.AEAD, k store.SigningKey) ([]byte, error) {
	if !k.Encrypted {
		return k.PrivateKey, nil
	}
	if aead == nil {
		return nil, fmt.Errorf("open private key %s: it is encrypted at rest but no encryption key is configured: %w", k.ID, ErrEncryptionKey)
	}
	n := aead.NonceSize()
	if len(k.PrivateKey) < n+aead.Overhead() {
		return nil, fmt.Errorf("open private key %s: sealed key is truncated: %w", k.ID, ErrEncryptionKey)
	}
	plain, err := aead.Open(nil, k.PrivateKey[:n], k.PrivateKey[n:], []byte(k.ID))
	if err != nil {
		return nil, fmt.Errorf("open private key %s: it does not decrypt with the configured encryption key: %w: %w", k.ID, ErrEncryptionKey, err)
	}
	return plain, nil
}

// parsed is a key ready for use: the private part only for keys that may
// sign (next and current).
type parsed struct {
	method  jwt.SigningMethod
	private crypto.Signer
	public  crypto.PublicKey
}

// parseKey parses (and, with aead, decrypts) a stored key, checking that its
// type matches its algorithm and that both halves belong together.
func parseKey(aead cipher.AEAD, k store.SigningKey, withPrivate bool) (parsed, error) {
	p := parsed{method: signingMethod(k.Algorithm)}
	if p.method == nil {
		return p, fmt.Errorf("key %s: unsupported algorithm %q", k.ID, k.Algorithm)
	}
	pub, err := x509.ParsePKIXPublicKey(k.PublicKey)
	if err != nil {
		return p, fmt.Errorf("key %s: parse public key: %w", k.ID, err)
	}
	if err := checkType(k.Algorithm, pub); err != nil {
		return p, fmt.Errorf("key %s: %w", k.ID, err)
	}
	p.public = pub
	if !withPrivate {
		return p, nil
	}
	der, err := openPrivate(aead, k)
	if err != nil {
		return p, err
	}
	raw, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return p, fmt.Errorf("key %s: parse private key: %w", k.ID, err)
	}
	priv, ok := raw.(crypto.Signer)
	if !ok {
		return p, fmt.Errorf("key %s: private key of type %T cannot sign", k.ID, raw)
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if eq, ok := priv.Public().(equaler); !ok || !eq.Equal(pub) {
		return p, fmt.Errorf("key %s: private and public key do not match", k.ID)
	}
	// golang-jwt wants the concrete key types (*rsa.PrivateKey,
	// *ecdsa.PrivateKey, ed25519.PrivateKey), which is what PKCS #8 yields.
	p.private = priv
	return p, nil
}

func checkType(alg string, pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if alg == RS256 && k.N.BitLen() >= rsaBits {
			return nil
		}
	case *ecdsa.PublicKey:
		if alg == ES256 && k.Curve == elliptic.P256() {
			return nil
		}
	case ed25519.PublicKey:
		if alg == EdDSA {
			return nil
		}
	}
	return fmt.Errorf("public key of type %T does not fit algorithm %s", pub, alg)
}

func signingMethod(alg string) jwt.SigningMethod {
	switch alg {
	case RS256:
		return jwt.SigningMethodRS256
	case ES256:
		return jwt.SigningMethodES256
	case EdDSA:
		return jwt.SigningMethodEdDSA
	}
	return nil
}
