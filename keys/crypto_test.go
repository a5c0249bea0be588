package keys

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/store"
)

func testKEK(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func TestEncryptionAtRest(t *testing.T) {
	st, clock := &memStore{}, newClock()
	cfg := testConfig(t, st, clock)
	cfg.EncryptionKey = testKEK(1)
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

// openWith opens a sealed private key with a 32-byte key-encryption key,
// independently of the package's code: AES-256-GCM, nonce || ciphertext,
// the kid as additional data.
func openWith(t *testing.T, key []byte, k store.SigningKey) ([]byte, error) {
	t.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	n := aead.NonceSize()
	if len(k.PrivateKey) < n {
		return nil, errors.New("too short")
	}
	return aead.Open(nil, k.PrivateKey[:n], k.PrivateKey[n:], []byte(k.ID))
}

// checkSealedWith checks that every current and next key of ks is sealed,
// holds no plain PKCS #8, and opens with key into the private half of its
// public key.
func checkSealedWith(t *testing.T, ks store.KeySet, key []byte) {
	t.Helper()
	for _, k := range ks.Keys {
		if k.State == store.KeyRetired {
			continue
		}
		if !k.Encrypted {
			t.Errorf("key %s: Encrypted = false, want true", k.ID)
		}
		if _, err := x509.ParsePKCS8PrivateKey(k.PrivateKey); err == nil {
			t.Errorf("key %s: stored private key parses as plain PKCS #8", k.ID)
		}
		der, err := openWith(t, key, k)
		if err != nil {
			t.Errorf("key %s: does not open with the expected key-encryption key: %v", k.ID, err)
			continue
		}
		if bytes.Contains(k.PrivateKey, der) {
			t.Errorf("key %s: stored bytes contain the plain private key", k.ID)
		}
		priv, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			t.Fatalf("key %s: opened key: %v", k.ID, err)
		}
		pub, _ := x509.MarshalPKIXPublicKey(priv.(crypto.Signer).Public())
		if !bytes.Equal(pub, k.PublicKey) {
			t.Errorf("key %s: opened private key does not match the public key", k.ID)
		}
	}
}

// derivedKEK is the key-encryption key of a session secret, computed here
// as the documentation states it, so a change of label or hash fails.
func derivedKEK(t *testing.T, secret []byte) []byte {
	t.Helper()
	key, err := hkdf.Key(sha256.New, secret, nil, "keyward key encryption v1", 32)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// makePlaintext rewrites the stored current and next keys as a version
// before default encryption stored them: plain PKCS #8, Encrypted false.
func makePlaintext(t *testing.T, st Store, key []byte) {
	t.Helper()
	err := st.UpdateKeySet(t.Context(), func(ks store.KeySet) (store.KeySet, error) {
		ks.Keys = slices.Clone(ks.Keys)
		for i, k := range ks.Keys {
			if k.State == store.KeyRetired {
				continue
			}
			der, err := openWith(t, key, k)
			if err != nil {
				return ks, err
			}
			ks.Keys[i].PrivateKey, ks.Keys[i].Encrypted = der, false
		}
		return ks, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestSealedByDefault(t *testing.T) {
	st, clock := &memStore{}, newClock()
	cfg := testConfig(t, st, clock) // SessionSecret, no EncryptionKey
	m := mustNew(t, cfg)
	checkSealedWith(t, st.set(), derivedKEK(t, testSessionSecret))
	clock.Advance(24 * time.Hour)
	mustRotate(t, m, true)
	checkSealedWith(t, st.set(), derivedKEK(t, testSessionSecret))

	// A replica with the same session secret opens the keys and signs.
	m2 := mustNew(t, cfg)
	tok, err := m2.Sign(t.Context(), map[string]any{"sub": "alice"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyWithManager(m, tok, clock.Now()); err != nil {
		t.Errorf("token of the second replica: %v", err)
	}
}

func TestStartupLogNamesProtection(t *testing.T) {
	for _, tt := range []struct {
		name string
		file []byte
		want string
	}{
		{"session secret", nil, `key_encryption_key="derived from the session secret"`},
		{"file", testKEK(4), "key_encryption_key=keys.encryptionKeyFile"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			cfg := testConfig(t, &memStore{}, newClock())
			cfg.EncryptionKey = tt.file
			cfg.Logger = slog.New(slog.NewTextHandler(&buf, nil))
			mustNew(t, cfg)
			var lines []string
			for line := range strings.Lines(buf.String()) {
				if strings.Contains(line, "encrypted at rest") {
					lines = append(lines, line)
				}
			}
			if len(lines) != 1 || !strings.Contains(lines[0], "level=INFO") || !strings.Contains(lines[0], tt.want) {
				t.Errorf("start-up log lines about encryption = %q, want one Info line with %s", lines, tt.want)
			}
			for _, secret := range [][]byte{testSessionSecret, derivedKEK(t, testSessionSecret), tt.file} {
				if len(secret) > 0 && bytes.Contains(buf.Bytes(), secret) {
					t.Errorf("the log holds a secret: %s", buf.String())
				}
			}
		})
	}
}

func TestEncryptionKeyErrors(t *testing.T) {
	other := []byte("another-session-secret-0123456789-0123456789")
	tests := []struct {
		name string
		// sealFile seals with this EncryptionKey first (nil: the key derived
		// from testSessionSecret).
		sealFile []byte
		// openSecret and openFile configure the second start.
		openSecret, openFile []byte
		// swap exchanges the sealed private keys of next and current, so
		// each is opened with the other's kid as additional data.
		swap bool
		want []string
	}{
		{name: "session secret changed", openSecret: other,
			want: []string{"does not open with the key derived from the session secret", "the session secret changed"}},
		{name: "encryption key file removed", sealFile: testKEK(1), openSecret: testSessionSecret,
			want: []string{"does not open with the key derived from the session secret", "keys.encryptionKeyFile was removed or changed"}},
		{name: "encryption key file changed", sealFile: testKEK(1), openSecret: testSessionSecret, openFile: testKEK(2),
			want: []string{"does not open with the key in keys.encryptionKeyFile nor with the key derived from the session secret"}},
		{name: "sealed key moved to another kid", openSecret: testSessionSecret, swap: true,
			want: []string{"does not open with the key derived from the session secret"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, clock := &memStore{}, newClock()
			cfg := testConfig(t, st, clock)
			cfg.EncryptionKey = tt.sealFile
			mustNew(t, cfg)
			if tt.swap {
				st.edit(func(ks *store.KeySet) {
					ks.Keys[0].PrivateKey, ks.Keys[1].PrivateKey = ks.Keys[1].PrivateKey, ks.Keys[0].PrivateKey
				})
			}
			v := st.set().Version

			cfg.SessionSecret, cfg.EncryptionKey = tt.openSecret, tt.openFile
			_, err := newLoaded(t, cfg)
			if !errors.Is(err, ErrEncryptionKey) {
				t.Fatalf("New() = %v, want ErrEncryptionKey", err)
			}
			for _, want := range append([]string{"keys: load key set: "}, tt.want...) {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("New() = %q, want it to contain %q", err, want)
				}
			}
			if got := st.set().Version; got != v {
				t.Errorf("Version = %d after the refused start, want %d (nothing written)", got, v)
			}
		})
	}
}

func TestSealsPlaintextOnLoad(t *testing.T) {
	st, clock := &memStore{retries: 1}, newClock()
	cfg := testConfig(t, st, clock)
	first := mustNew(t, cfg)
	makePlaintext(t, st, derivedKEK(t, testSessionSecret)) // as a version before default encryption stored it
	v := st.set().Version

	m := mustNew(t, cfg)
	checkSealedWith(t, st.set(), derivedKEK(t, testSessionSecret))
	if got := st.set().Version; got != v+1 {
		t.Errorf("Version = %d, want %d (one update seals both keys)", got, v+1)
	}
	if got, want := m.SigningKey().ID, first.SigningKey().ID; got != want {
		t.Errorf("SigningKey().ID = %s, want the same key %s", got, want)
	}
	if _, err := m.Sign(t.Context(), map[string]any{"sub": "x"}, nil); err != nil {
		t.Errorf("Sign() = %v", err)
	}
	// A second load changes nothing.
	mustNew(t, cfg)
	if got := st.set().Version; got != v+1 {
		t.Errorf("Version = %d after a second load, want %d", got, v+1)
	}
}

func TestEncryptionKeyFileOverrides(t *testing.T) {
	st, clock := &memStore{}, newClock()
	cfg := testConfig(t, st, clock)
	mustNew(t, cfg) // sealed with the key derived from the session secret

	// Setting keys.encryptionKeyFile re-seals the keys with it.
	cfg.EncryptionKey = testKEK(3)
	m := mustNew(t, cfg)
	checkSealedWith(t, st.set(), testKEK(3))
	if _, err := m.Sign(t.Context(), map[string]any{"sub": "x"}, nil); err != nil {
		t.Errorf("Sign() = %v", err)
	}
	// From now on the file alone opens them, whatever the session secret.
	cfg.SessionSecret = []byte("a-new-session-secret-0123456789-0123456789")
	mustNew(t, cfg)
	cfg.EncryptionKey = nil
	if _, err := newLoaded(t, cfg); !errors.Is(err, ErrEncryptionKey) {
		t.Errorf("New() without the file = %v, want ErrEncryptionKey", err)
	}
}

func TestReplaceUnreadable(t *testing.T) {
	st, clock := &memStore{}, newClock()
	cfg := testConfig(t, st, clock)
	old := mustNew(t, cfg)
	oldCur, oldNext := old.SigningKey().ID, kidsOf(st.set())[store.KeyNext][0]
	tok, err := old.Sign(t.Context(), map[string]any{"sub": "alice", "exp": clock.Now().Add(time.Hour).Unix()}, nil)
	if err != nil {
		t.Fatal(err)
	}

	newSecret := []byte("a-new-session-secret-0123456789-0123456789")
	cfg.SessionSecret = newSecret
	cfg.ReplaceUnreadable = true
	m := mustNew(t, cfg)
	ks := st.set()
	got := kidsOf(ks)
	if len(got[store.KeyCurrent]) != 1 || len(got[store.KeyNext]) != 1 ||
		!slices.Contains(got[store.KeyRetired], oldCur) || !slices.Contains(got[store.KeyRetired], oldNext) ||
		got[store.KeyCurrent][0] == oldCur || got[store.KeyCurrent][0] == oldNext {
		t.Fatalf("key set after replacing = %v, want new current and next keys and %s, %s retired", got, oldCur, oldNext)
	}
	checkSealedWith(t, ks, derivedKEK(t, newSecret))
	// The old current key stays published for the tokens it signed.
	if err := verifyWithManager(m, tok, clock.Now()); err != nil {
		t.Errorf("token signed before the replacement: %v", err)
	}
	if _, err := m.Sign(t.Context(), map[string]any{"sub": "x"}, nil); err != nil {
		t.Errorf("Sign() = %v", err)
	}
	// Readable keys are never replaced.
	v := ks.Version
	mustNew(t, cfg)
	if got := st.set().Version; got != v {
		t.Errorf("Version = %d after a second start with ReplaceUnreadable, want %d", got, v)
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
			_, err := newLoaded(t, testConfig(t, st, clock))
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

// TestOpensKeysSealedBeforeSealPackage opens private keys sealed by the
// code before keys/seal existed (one under keys.encryptionKeyFile, one
// under the key derived from the session secret): the stored format did not
// change, so existing key sets keep opening.
func TestOpensKeysSealedBeforeSealPackage(t *testing.T) {
	tests := []struct {
		name            string
		cfg             Config
		kid, alg        string
		private, public string
	}{
		{
			name: "encryption key file",
			cfg:  Config{EncryptionKey: []byte("0123456789abcdef0123456789abcdef")},
			kid:  "kuHYeeVgJhBZOM7n2ZRsxA", alg: ES256,
			private: "cad4c5feb67f815b7825fd6223d3d6d5ceebf5bb345450d54b0273af6b98e169480226465ec72b5b1e3cad64b61efa56cabcc7378344cdb1503322e3f65f4f300ba1112775851f67b8994695ca0b8685ed78f986ea6944f9adf30db390f0da323699cbb14426a63fc38892d5533405535e42d4e8d1a625ed55d6311ffa1947d53a08f2e15c15f7001ae266dcd79fc98f5349ee6d05bd93c454bad134a147ae65b94548b7f0ef",
			public:  "3059301306072a8648ce3d020106082a8648ce3d03010703420004d117f35dfa023a3213ef842a130bad729e8d79f3bfbd424749c5beac0fd81383412400247fc874b831b9d644efaf30884b1560c740fb19188940f21c31dcec4b",
		},
		{
			name: "derived from the session secret",
			cfg:  Config{SessionSecret: []byte("a session secret of the replicas")},
			kid:  "X9kX1Ku_Ka3W0vnJdO8UfA", alg: EdDSA,
			private: "68b85df4cd4459cdb339be212c53b41257d1fb5a3de795667e0cf038e3c82c4363f9611b532023204e26efeddae49e63a77859dd7c4017650d8a2b084a8a637e11bf8a721131f23f298f6bd0",
			public:  "302a300506032b65700321006219765eb29e79df0627fe9abd662cd26b118e1cf28bde90eb7c81e602a14fee",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keks, err := newKEKs(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			k := store.SigningKey{ID: tt.kid, Algorithm: tt.alg, PrivateKey: mustHex(t, tt.private), Encrypted: true, PublicKey: mustHex(t, tt.public)}
			p, err := parseKey(keks, k, true)
			if err != nil {
				t.Fatalf("parseKey() = %v", err)
			}
			if p.private == nil {
				t.Fatal("parseKey() returned no private key")
			}
			k.ID = "another-kid"
			if _, err := parseKey(keks, k, true); !errors.Is(err, ErrEncryptionKey) {
				t.Errorf("parseKey() under another kid = %v, want ErrEncryptionKey", err)
			}
		})
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
