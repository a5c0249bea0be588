package seal

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

func mustNew(t *testing.T, key []byte) *Key {
	t.Helper()
	k, err := New(key)
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	return k
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	k := mustNew(t, bytes.Repeat([]byte{7}, KeySize))
	for _, plain := range [][]byte{nil, {}, []byte("x"), bytes.Repeat([]byte("keyward"), 1000)} {
		sealed := k.Seal(plain, []byte("ad"))
		if len(sealed) != len(plain)+Overhead {
			t.Errorf("len(Seal(%d bytes)) = %d, want %d", len(plain), len(sealed), len(plain)+Overhead)
		}
		got, err := k.Open(sealed, []byte("ad"))
		if err != nil {
			t.Fatalf("Open(Seal(%d bytes)) = %v", len(plain), err)
		}
		if !bytes.Equal(got, plain) {
			t.Errorf("Open(Seal(%q)) = %q", plain, got)
		}
	}
}

// TestOpensOldFormat opens messages sealed by the code this package
// replaced (keys/crypto.go, broker/recheck.go, web/verify/browser_cookie.go
// before issue 13): the stored format did not change.
func TestOpensOldFormat(t *testing.T) {
	tests := []struct {
		name, key, ad, sealed, want string
	}{
		{
			name:   "upstream refresh token (broker)",
			key:    "upstream-token-key-32-bytes-long",
			ad:     "sid-1234",
			sealed: "00d937072847d8d3515b0ba25e589ab2b926a622c885013456c6bac5b41f71fc6dac03768e42bc0c8445131fc1f1f873c44a",
			want:   "upstream-refresh-token",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := mustNew(t, []byte(tt.key))
			got, err := k.Open(mustHex(t, tt.sealed), []byte(tt.ad))
			if err != nil {
				t.Fatalf("Open() = %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("Open() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestOpenRefuses(t *testing.T) {
	key := bytes.Repeat([]byte{1}, KeySize)
	k := mustNew(t, key)
	sealed := k.Seal([]byte("secret"), []byte("kid-1"))
	flipped := func(i int) []byte {
		b := bytes.Clone(sealed)
		b[i] ^= 0x01
		return b
	}
	tests := []struct {
		name   string
		key    []byte
		sealed []byte
		ad     string
		want   error
	}{
		{"wrong key", bytes.Repeat([]byte{2}, KeySize), sealed, "kid-1", ErrOpen},
		{"wrong additional data", key, sealed, "kid-2", ErrOpen},
		{"no additional data", key, sealed, "", ErrOpen},
		{"nonce altered", key, flipped(0), "kid-1", ErrOpen},
		{"ciphertext altered", key, flipped(12), "kid-1", ErrOpen},
		{"tag altered", key, flipped(len(sealed) - 1), "kid-1", ErrOpen},
		{"appended byte", key, append(bytes.Clone(sealed), 0), "kid-1", ErrOpen},
		{"last byte cut", key, sealed[:len(sealed)-1], "kid-1", ErrOpen},
		{"shorter than nonce and tag", key, sealed[:Overhead-1], "kid-1", ErrTruncated},
		{"empty", key, nil, "kid-1", ErrTruncated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := mustNew(t, tt.key).Open(tt.sealed, []byte(tt.ad))
			if !errors.Is(err, tt.want) {
				t.Errorf("Open() = %q, %v, want %v", got, err, tt.want)
			}
			if got != nil {
				t.Errorf("Open() returned plaintext %q with an error", got)
			}
		})
	}
}

// TestNonceUnique seals one plaintext many times: every nonce, and so every
// sealed message, differs.
func TestNonceUnique(t *testing.T) {
	k := mustNew(t, bytes.Repeat([]byte{3}, KeySize))
	seen := map[string]bool{}
	for range 10000 {
		nonce := string(k.Seal([]byte("same"), []byte("same"))[:12])
		if seen[nonce] {
			t.Fatalf("nonce %x used twice", nonce)
		}
		seen[nonce] = true
	}
}

func TestNewKeySize(t *testing.T) {
	for _, n := range []int{0, 16, 24, 31, 33, 64} {
		if _, err := New(make([]byte, n)); err == nil {
			t.Errorf("New(%d bytes) = nil error, want one", n)
		}
	}
}
