package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/store"
	"github.com/keyward/keyward/store/bolt"
)

// compactTestConfig writes a broker config on a bolt file in dir, listening
// on a free port, and returns its path and the bolt file's.
func compactTestConfig(t *testing.T, dir string) (cfgPath, dbPath string) {
	t.Helper()
	dbPath = filepath.Join(dir, "keyward.db")
	cfgPath = writeFile(t, dir, "keyward.yaml", fmt.Sprintf(`issuer: http://127.0.0.1:5556
listen: 127.0.0.1:0
sessionSecretFile: %s
store: {path: %s}
keys: {algorithm: ES256}
upstreams:
  - {id: corp, issuer: %s, clientID: keyward, clientSecret: upstream-secret}
clients:
  - {id: app, secret: app-secret, redirectURIs: ["http://127.0.0.1:3000/callback"]}
`, writeFile(t, dir, "session-secret", strings.Repeat("s", 32)+"\n"), dbPath, unreachableIssuer(t)))
	return cfgPath, dbPath
}

// growStore writes 2,000 grants of about 2 KB to the bolt file at path,
// expires and collects all but every 20th, and returns the signatures kept.
func growStore(t *testing.T, path string) []string {
	t.Helper()
	ctx := t.Context()
	s, err := bolt.Open(ctx, bolt.Options{Path: path, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	pad := strings.Repeat("x", 2000)
	var kept []string
	for i := range 2000 {
		sig := fmt.Sprintf("sig-%05d", i)
		exp := now.Add(-time.Minute)
		if i%20 == 0 {
			exp = now.Add(time.Hour)
			kept = append(kept, sig)
		}
		err := s.CreateGrant(ctx, store.Grant{Kind: store.GrantRefreshToken, Signature: sig, RequestID: "req-" + sig,
			ClientID: "app", Subject: "alice", Active: true, RequestedAt: now.Add(-time.Hour), ExpiresAt: exp,
			Data: []byte(`{"pad":"` + pad + `"}`)})
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.GarbageCollect(ctx, now); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return kept
}

func sizeOf(t *testing.T, path string) int64 {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Size()
}

// TestCompactCommand: while keyward serve runs on the file, keyward compact
// refuses with a non-zero exit and says why, changing nothing; once serve
// has stopped, compact shrinks the grown file, and serve's records (the key
// set) and the remaining grants all read back.
func TestCompactCommand(t *testing.T) {
	dir := t.TempDir()
	cfgPath, dbPath := compactTestConfig(t, dir)
	kept := growStore(t, dbPath)

	cfg, sec, err := loadConfigFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	logs := &lockedBuffer{}
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, sec, logs) }()
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(logs.String(), "keyward serving"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("serve did not start within 20s:\n%s", logs.String())
		}
	}
	before := sizeOf(t, dbPath)
	out, code := runCLI(t, "compact", "-c", cfgPath, "--wait", "200ms")
	if code == 0 || !strings.Contains(out, "in use by another process") || !strings.Contains(out, "stop the keyward using it first") {
		t.Errorf("keyward compact while serve runs: exit %d, output %q; want non-zero and the reason", code, out)
	}
	if got := sizeOf(t, dbPath); got != before {
		t.Errorf("file size %d → %d after a refused compact", before, got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve ended with %v", err)
	}

	out, code = runCLI(t, "compact", "-c", cfgPath)
	if code != 0 || !strings.Contains(out, "Compacting "+dbPath) || !strings.Contains(out, "Done: ") {
		t.Fatalf("keyward compact after serve stopped: exit %d, output %q", code, out)
	}
	after := sizeOf(t, dbPath)
	if after*3 > before {
		t.Errorf("file %d → %d bytes after compacting a file with 95%% of its records deleted, want under a third", before, after)
	}
	s, err := bolt.Open(t.Context(), bolt.Options{Path: dbPath})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, sig := range kept {
		if _, err := s.GetGrant(t.Context(), store.GrantRefreshToken, sig); err != nil {
			t.Errorf("GetGrant(%s) after compact = %v", sig, err)
		}
	}
	if ks, err := s.GetKeySet(t.Context()); err != nil || len(ks.Keys) == 0 {
		t.Errorf("GetKeySet after compact = %d keys, %v; want serve's keys", len(ks.Keys), err)
	}
}

// keyward compact refuses a PostgreSQL config and a bad --wait, non-zero.
func TestCompactCommandRefuses(t *testing.T) {
	dir := t.TempDir()
	pg := writeFile(t, dir, "pg.yaml", migrateYAML("store: {type: postgres, dsn: 'postgres://kw@127.0.0.1:1/keyward'}"))
	if out, code := runCLI(t, "compact", "-c", pg); code == 0 || !strings.Contains(out, "compact is for store.type bolt") {
		t.Errorf("keyward compact on postgres: exit %d, %q; want a refusal naming store.type", code, out)
	}
	cfgPath, _ := compactTestConfig(t, dir)
	if out, code := runCLI(t, "compact", "-c", cfgPath, "--wait", "0s"); code == 0 || !strings.Contains(out, "--wait") {
		t.Errorf("keyward compact --wait 0s: exit %d, %q; want a refusal", code, out)
	}
	out, code := runCLI(t, "compact", "--help")
	for _, want := range []string{"-c, --config", "--wait", "lock", ".compact", "rename"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("keyward compact --help lacks %q (exit %d):\n%s", want, code, out)
		}
	}
}
