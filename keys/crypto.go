package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/golang-jwt/jwt/v5"

	"github.com/keyward/keyward/keys/seal"
	"github.com/keyward/keyward/store"
)

// ErrEncryptionKey reports stored private keys that open with none of the
// configured key-encryption keys: the session secret changed (or differs
// between replicas), or keys.encryptionKeyFile was removed or changed.
var ErrEncryptionKey = errors.New("keys: wrong key-encryption key")

// kekInfo is the HKDF info of the key-encryption key derived from the
// session secret: its own label, so no other use of the secret shares it.
const kekInfo = "keyward key encryption v1"

// Where a key-encryption key comes from, as the start-up log says it.
const (
	kekFromSessionSecret = "derived from the session secret"
	kekFromFile          = "keys.encryptionKeyFile"
)

// kek is one key-encryption key (keys/seal: AES-256-GCM) and where it
// came from.
type kek struct {
	key    *seal.Key
	source string
}

// deriveKEK derives the default key-encryption key from the session secret
// every replica shares: HKDF-SHA256, no salt, info kekInfo.
func deriveKEK(sessionSecret []byte) ([]byte, error) {
	return hkdf.Key(sha256.New, sessionSecret, nil, kekInfo, 32)
}

// newKEKs returns the key-encryption keys to try, the one that seals first:
// EncryptionKey when set (then the key derived from the session secret
// still opens keys sealed before the file was configured), else the key
// derived from the session secret.
func newKEKs(cfg Config) ([]kek, error) {
	var out []kek
	add := func(key []byte, source string) error {
		k, err := seal.New(key)
		if err != nil {
			return fmt.Errorf("key-encryption key (%s): %w", source, err)
		}
		out = append(out, kek{key: k, source: source})
		return nil
	}
	if len(cfg.EncryptionKey) > 0 {
		if err := add(cfg.EncryptionKey, kekFromFile); err != nil {
			return nil, err
		}
	}
	if len(cfg.SessionSecret) > 0 {
		key, err := deriveKEK(cfg.SessionSecret)
		if err != nil {
			return nil, fmt.Errorf("derive key-encryption key: %w", err)
		}
		if err := add(key, kekFromSessionSecret); err != nil {
			return nil, err
		}
	}
	return out, nil
}

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
// Algorithm, PrivateKey (sealed with kek), Encrypted and PublicKey filled
// in; the caller sets State and the times.
func generate(alg string, kek *seal.Key) (store.SigningKey, error) {
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
	kid := newKID()
	return store.SigningKey{ID: kid, Algorithm: alg, PrivateKey: sealPrivate(kek, kid, privDER), Encrypted: true, PublicKey: pubDER}, nil
}

// sealPrivate encrypts a private key with the kid as additional data, so a
// sealed key cannot be moved to another record.
func sealPrivate(kek *seal.Key, kid string, plain []byte) []byte {
	return kek.Seal(plain, []byte(kid))
}

// openPrivate returns the PKCS #8 DER of k's private key and the index in
// keks of the key that opened it (-1: stored unencrypted).
func openPrivate(keks []kek, k store.SigningKey) ([]byte, int, error) {
	if !k.Encrypted {
		return k.PrivateKey, -1, nil
	}
	for i, c := range keks {
		plain, err := c.key.Open(k.PrivateKey, []byte(k.ID))
		if errors.Is(err, seal.ErrTruncated) {
			return nil, 0, fmt.Errorf("open private key %s: sealed key is truncated: %w", k.ID, ErrEncryptionKey)
		}
		if err == nil {
			return plain, i, nil
		}
	}
	tried := make([]string, len(keks))
	for i, c := range keks {
		tried[i] = "the key " + c.source
		if c.source == kekFromFile {
			tried[i] = "the key in " + c.source
		}
	}
	return nil, 0, fmt.Errorf("open private key %s: it does not open with %s; it was sealed with another key-encryption key "+
		"(the session secret changed or differs from the other replicas', or keys.encryptionKeyFile was removed or changed): %w",
		k.ID, strings.Join(tried, " nor with "), ErrEncryptionKey)
}

// parsed is a key ready for use: the private part only for keys that may
// sign (next and current).
type parsed struct {
	method  jwt.SigningMethod
	private crypto.Signer
	public  crypto.PublicKey
}

// parseKey parses (and decrypts) a stored key, checking that its type
// matches its algorithm and that both halves belong together.
func parseKey(keks []kek, k store.SigningKey, withPrivate bool) (parsed, error) {
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
	der, _, err := openPrivate(keks, k)
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
