package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/store"
	"github.com/keyward/keyward/store/bolt"
)

// keysTestConfig writes a broker config on a bolt file in dir whose session
// secret file holds secret, and returns its path and the bolt file's.
func keysTestConfig(t *testing.T, dir, secret string) (cfgPath, dbPath string) {
	t.Helper()
	dbPath = filepath.Join(dir, "keyward.db")
	secretPath := writeFile(t, dir, "session-secret", secret+"\n")
	cfgPath = writeFile(t, dir, "keyward.yaml", fmt.Sprintf(`issuer: http://127.0.0.1:5556
sessionSecretFile: %s
store: {path: %s}
keys: {algorithm: ES256}
upstreams:
  - {id: corp, issuer: %s, clientID: keyward, clientSecret: upstream-secret}
clients:
  - {id: app, secret: app-secret, redirectURIs: ["http://127.0.0.1:3000/callback"]}
`, secretPath, dbPath, unreachableIssuer(t)))
	return cfgPath, dbPath
}

// buildFromFile assembles the broker from the config at path, as serve
// does, and closes it again.
func buildFromFile(t *testing.T, path string) error {
	t.Helper()
	cfg, sec, err := loadConfigFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	inst, err := build(ctx, cfg, sec, slog.New(slog.DiscardHandler), http.DefaultTransport, nil)
	if err != nil {
		return err
	}
	inst.close()
	return nil
}

// storedKeySet reads the key set from the bolt file at path.
func storedKeySet(t *testing.T, path string) store.KeySet {
	t.Helper()
	st, err := bolt.Open(t.Context(), bolt.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	ks, err := st.GetKeySet(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

// checkNoPlainPrivateKeys fails when a stored current or next key is not
// sealed or its stored bytes parse as a private key.
func checkNoPlainPrivateKeys(t *testing.T, ks store.KeySet) {
	t.Helper()
	n := 0
	for _, k := range ks.Keys {
		if k.State == store.KeyRetired {
			continue
		}
		n++
		if !k.Encrypted {
			t.Errorf("key %s (%s): stored unencrypted", k.ID, k.State)
		}
		if _, err := x509.ParsePKCS8PrivateKey(k.PrivateKey); err == nil {
			t.Errorf("key %s (%s): the stored private key is plain PKCS #8", k.ID, k.State)
		}
		if strings.Contains(string(k.PrivateKey), "PRIVATE KEY") {
			t.Errorf("key %s (%s): the stored private key is PEM", k.ID, k.State)
		}
	}
	if n != 2 {
		t.Errorf("%d current and next keys stored, want 2", n)
	}
}

func TestServeSealsKeysByDefault(t *testing.T) {
	cfgPath, dbPath := keysTestConfig(t, t.TempDir(), "session-secret-0123456789-0123456789-0123456789")
	if err := buildFromFile(t, cfgPath); err != nil { // no keys.encryptionKeyFile
		t.Fatalf("build() = %v", err)
	}
	checkNoPlainPrivateKeys(t, storedKeySet(t, dbPath))
}

// TestServeSealsPlaintextKeySet: a key set stored unencrypted by an older
// version is sealed at the first start, and keeps its keys.
func TestServeSealsPlaintextKeySet(t *testing.T) {
	cfgPath, dbPath := keysTestConfig(t, t.TempDir(), "session-secret-0123456789-0123456789-0123456789")
	st, err := bolt.Open(t.Context(), bolt.Options{Path: dbPath})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	plain := func(kid string, state store.KeyState, activates time.Time) store.SigningKey {
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, _ := x509.MarshalPKCS8PrivateKey(priv)
		pub, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
		return store.SigningKey{ID: kid, Algorithm: "ES256", State: state, PrivateKey: der, PublicKey: pub, CreatedAt: now, ActivatesAt: activates}
	}
	err = st.UpdateKeySet(t.Context(), func(store.KeySet) (store.KeySet, error) {
		return store.KeySet{
			Keys:         []store.SigningKey{plain("old-next", store.KeyNext, now.Add(24*time.Hour)), plain("old-current", store.KeyCurrent, now)},
			NextRotation: now.Add(24 * time.Hour), UpdatedAt: now,
		}, nil
	})
	_ = st.Close()
	if err != nil {
		t.Fatal(err)
	}

	if err := buildFromFile(t, cfgPath); err != nil {
		t.Fatalf("build() = %v", err)
	}
	ks := storedKeySet(t, dbPath)
	checkNoPlainPrivateKeys(t, ks)
	var kids []string
	for _, k := range ks.Keys {
		kids = append(kids, string(k.State)+":"+k.ID)
	}
	if got := strings.Join(kids, " "); got != "next:old-next current:old-current" {
		t.Errorf("stored keys = %s, want the same two keys, sealed", got)
	}
}

// TestServeRefusesChangedSessionSecret: after the session secret changed,
// serve refuses to start and names both ways out; replace-keys then
// retires the unreadable keys and serve starts.
func TestServeRefusesChangedSessionSecret(t *testing.T) {
	dir := t.TempDir()
	cfgPath, dbPath := keysTestConfig(t, dir, "session-secret-0123456789-0123456789-0123456789")
	if err := buildFromFile(t, cfgPath); err != nil {
		t.Fatalf("build() = %v", err)
	}
	old := storedKeySet(t, dbPath)
	writeFile(t, dir, "session-secret", "another-session-secret-0123456789-0123456789\n")

	err := buildFromFile(t, cfgPath)
	if err == nil {
		t.Fatal("build() with a changed session secret = nil, want an error")
	}
	for _, want := range []string{
		"does not open with the key derived from the session secret",
		"the session secret changed",
		"restore the previous session secret",
		"keyward replace-keys -c",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("build() = %q, want it to contain %q", err, want)
		}
	}

	out, code := runCLI(t, "replace-keys", "-c", cfgPath)
	if code != 0 || !strings.Contains(out, "Retired 2 unreadable signing keys") {
		t.Fatalf("replace-keys: code %d, output:\n%s", code, out)
	}
	if err := buildFromFile(t, cfgPath); err != nil {
		t.Fatalf("build() after replace-keys = %v", err)
	}
	ks := storedKeySet(t, dbPath)
	checkNoPlainPrivateKeys(t, ks)
	for _, k := range old.Keys {
		i := slices.IndexFunc(ks.Keys, func(s store.SigningKey) bool { return s.ID == k.ID })
		if i < 0 || ks.Keys[i].State != store.KeyRetired || len(ks.Keys[i].PrivateKey) != 0 {
			t.Errorf("old key %s after replace-keys: want retired, published, without its private key", k.ID)
		}
	}
	out, code = runCLI(t, "replace-keys", "-c", cfgPath)
	if code != 0 || !strings.Contains(out, "nothing replaced") {
		t.Errorf("second replace-keys: code %d, output:\n%s", code, out)
	}
}
