package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
)

// KeySize is the length of a key: AES-256.
const KeySize = 32

// Overhead is how many bytes Seal adds to a plaintext: nonce and tag.
const Overhead = 12 + 16

var (
	// ErrTruncated: the message is shorter than a nonce and a tag, so it
	// was never produced by Seal.
	ErrTruncated = errors.New("seal: sealed message is truncated")
	// ErrOpen: the message does not open with this key and additional
	// data (another key, other additional data, or altered bytes).
	ErrOpen = errors.New("seal: message does not open with this key")
)

// Key seals and opens messages under one AES-256-GCM key. It is safe for
// concurrent use.
type Key struct {
	aead cipher.AEAD
}

// New returns a Key for key, which must be KeySize bytes long.
func New(key []byte) (*Key, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("seal: key is %d bytes, want %d (AES-256)", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return &Key{aead: aead}, nil
}

// Seal encrypts plain under a fresh random nonce, binding it to
// additionalData, and returns nonce || ciphertext || tag.
func (k *Key) Seal(plain, additionalData []byte) []byte {
	n := k.aead.NonceSize()
	nonce := make([]byte, n, n+len(plain)+k.aead.Overhead())
	// crypto/rand.Read never returns an error (Go 1.24+); it crashes the
	// program instead of returning predictable bytes.
	_, _ = rand.Read(nonce)
	return k.aead.Seal(nonce, nonce, plain, additionalData)
}

// Open returns the plaintext of a message Seal produced with this key and
// the same additionalData. It returns ErrTruncated for a message too short
// to be one, and ErrOpen for any other failure.
func (k *Key) Open(sealed, additionalData []byte) ([]byte, error) {
	n := k.aead.NonceSize()
	if len(sealed) < n+k.aead.Overhead() {
		return nil, ErrTruncated
	}
	plain, err := k.aead.Open(nil, sealed[:n], sealed[n:], additionalData)
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}
