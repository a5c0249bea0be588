package keys

import (
	"bytes"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/store"
)

func kek(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func TestEncryptionAtRest(t *testing.T) {
	st, clock := &memStore{}, newClock()
	cfg := testConfig(t, st, clock)
	cfg.EncryptionKey = kek(1)
	m := mustNew(t, cfg)

	checkSealed := func(when string) {
		t.Helper()
		for _, k := range st.set().Keys {
			if k.State == store.KeyRetired {
				if k.PrivateKey != nil || k.Encrypted {
					t.Errorf("%s: retired key %s keeps a private key", when, k.ID)
				}
				continue
			}
			if !k.Encrypted {
				t.Errorf("%s: key %s stored unencrypted", when, k.ID)
			}
			if _, err := x509.ParsePKCS8PrivateKey(k.PrivateKey); err == nil {
				t.Errorf("%s: key %s: stored private key parses as plain PKCS #8", when, k.ID)
			}
		}
	}
	checkSealed("created")
	clock.Advance(24 * time.Hour)
	mustRotate(t, m, true)
	checkSealed("rotated")

	// Another process with the same key-encryption key opens and signs.
	m2 := mustNew(t, cfg)
	tok, err := m2.Sign(t.Context(), map[string]any{"sub": "alice"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyWithManager(m, tok, clock.Now()); err != nil {
		t.Errorf("token of the second process: %v", err)
	}
}

func TestEncryptionKeyErrors(t *testing.T) {
	tests := []struct {
		name string
		kek  []byte
		// swap exchanges the sealed private keys of next and current, so
		// each is opened with the other's kid as additional data.
		swap bool
		want string
	}{
		{name: "no key", kek: nil, want: "no encryption key is configured"},
		{name: "wrong key", kek: kek(2), want: "does not decrypt with the configured encryption key"},
		{name: "sealed key moved to another kid", kek: kek(1), swap: true, want: "does not decrypt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, clock := &memStore{}, newClock()
			cfg := testConfig(t, st, clock)
			cfg.EncryptionKey = kek(1)
			mustNew(t, cfg)
			if tt.swap {
				st.edit(func(ks *store.KeySet) {
					ks.Keys[0].PrivateKey, ks.Keys[1].PrivateKey = ks.Keys[1].PrivateKey, ks.Keys[0].PrivateKey
				})
			}

			cfg.EncryptionKey = tt.kek
			_, err := New(t.Context(), cfg)
			if !errors.Is(err, ErrEncryptionKey) {
				t.Fatalf("New() = %v, want ErrEncryptionKey", err)
			}
			msg := err.Error()
			for _, want := range []string{"keys: load key set: ", "keys.encryptionKeyFile", tt.want} {
				if !strings.Contains(msg, want) {
					t.Errorf("New() = %q, want it to contain %q", msg, want)
				}
			}
		})
	}
}

func TestEncryptOnLoad(t *testing.T) {
	st, clock := &memStore{retries: 1}, newClock()
	plain := mustNew(t, testConfig(t, st, clock))
	for _, k := range st.set().Keys {
		if k.Encrypted {
			t.Fatalf("key %s encrypted without an encryption key", k.ID)
		}
	}

	cfg := testConfig(t, st, clock)
	cfg.EncryptionKey = kek(7)
	m := mustNew(t, cfg)
	for _, k := range st.set().Keys {
		if !k.Encrypted {
			t.Errorf("key %s not encrypted on load", k.ID)
		}
	}
	if got, want := m.SigningKey().ID, plain.SigningKey().ID; got != want {
		t.Errorf("SigningKey().ID = %s, want the same key %s", got, want)
	}
	if _, err := m.Sign(t.Context(), map[string]any{"sub": "x"}, nil); err != nil {
		t.Errorf("Sign() = %v", err)
	}
	// The process without the key can no longer follow the set.
	if err := plain.Reload(t.Context()); !errors.Is(err, ErrEncryptionKey) {
		t.Errorf("Reload() without the key = %v, want ErrEncryptionKey", err)
	}
	// A second load with the key changes nothing.
	v := st.set().Version
	mustNew(t, cfg)
	if got := st.set().Version; got != v {
		t.Errorf("Version = %d after a second load, want %d", got, v)
	}
}

func TestDamagedKeySets(t *testing.T) {
	tests := []struct {
		name string
		edit func(*store.KeySet)
		want string
	}{
		{name: "public key of another algorithm", edit: func(ks *store.KeySet) { ks.Keys[1].Algorithm = RS256 }, want: "does not fit algorithm RS256"},
		{name: "mismatched halves", edit: func(ks *store.KeySet) { ks.Keys[1].PublicKey = ks.Keys[0].PublicKey }, want: "do not match"},
		{name: "unknown state", edit: func(ks *store.KeySet) { ks.Keys[0].State = "lost" }, want: `unknown state "lost"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, clock := &memStore{}, newClock()
			mustNew(t, testConfig(t, st, clock))
			st.edit(tt.edit)
			_, err := New(t.Context(), testConfig(t, st, clock))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestRepairsSetWithoutCurrent(t *testing.T) {
	st, clock := &memStore{}, newClock()
	mustNew(t, testConfig(t, st, clock))
	next := kidsOf(st.set())[store.KeyNext][0]
	st.edit(func(ks *store.KeySet) { ks.Keys = ks.Keys[:1] }) // only the next key is left
	m := mustNew(t, testConfig(t, st, clock))
	if got := m.SigningKey().ID; got != next {
		t.Errorf("SigningKey().ID = %s, want the promoted next key %s", got, next)
	}
	if n := len(kidsOf(st.set())[store.KeyNext]); n != 1 {
		t.Errorf("%d next keys, want 1", n)
	}
}
