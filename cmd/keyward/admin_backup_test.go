package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/store"
	"github.com/keyward/keyward/store/bolt"
)

// TestAdminBackup takes an online copy from a running keyward serve with
// `keyward admin backup`: the copy opens as a store while serve still holds
// the original, and holds its records and key set; the CLI refuses to
// overwrite a file and a wrong token (exit 3).
func TestAdminBackup(t *testing.T) {
	dir := t.TempDir()
	cfgPath, dbPath := compactTestConfig(t, dir)
	kept := growStore(t, dbPath)
	tokenFile := writeFile(t, dir, "admin-token", strings.Repeat("a", 32)+"\n")
	cfgYAML, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath = writeFile(t, dir, "keyward.yaml", string(cfgYAML)+
		fmt.Sprintf("admin: {listen: \"localhost:0\", tokenFile: %s}\n", tokenFile))
	cfg, sec, err := loadConfigFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	logs := &lockedBuffer{}
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, sec, logs) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve ended with %v", err)
		}
	}()
	var adminAddr string
	for deadline := time.Now().Add(20 * time.Second); adminAddr == ""; time.Sleep(20 * time.Millisecond) {
		for _, line := range strings.Split(logs.String(), "\n") {
			var l struct{ Msg, Listen string }
			if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "admin API serving" {
				adminAddr = l.Listen
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start its admin API within 20s:\n%s", logs.String())
		}
	}
	server := "http://" + adminAddr
	out := filepath.Join(dir, "backup.db")
	msg, code := runCLI(t, "admin", "--server", server, "--token-file", tokenFile, "backup", "-o", out)
	if code != 0 || !strings.Contains(msg, "Wrote "+out) {
		t.Fatalf("keyward admin backup: exit %d, %q", code, msg)
	}
	if _, err := os.Stat(out + ".partial"); !os.IsNotExist(err) {
		t.Errorf("%s.partial left behind: %v", out, err)
	}
	s, err := bolt.Open(t.Context(), bolt.Options{Path: out})
	if err != nil {
		t.Fatalf("open the backup while serve runs on the original: %v", err)
	}
	defer s.Close()
	for _, sig := range kept {
		if _, err := s.GetGrant(t.Context(), store.GrantRefreshToken, sig); err != nil {
			t.Errorf("GetGrant(%s) in the backup = %v", sig, err)
		}
	}
	if ks, err := s.GetKeySet(t.Context()); err != nil || len(ks.Keys) == 0 {
		t.Errorf("GetKeySet in the backup = %d keys, %v; want serve's keys", len(ks.Keys), err)
	}

	if msg, code := runCLI(t, "admin", "--server", server, "--token-file", tokenFile, "backup", "-o", out); code != 1 || !strings.Contains(msg, "exists") {
		t.Errorf("keyward admin backup onto an existing file: exit %d, %q; want 1 and a refusal", code, msg)
	}
	wrong := writeFile(t, dir, "wrong-token", strings.Repeat("b", 32)+"\n")
	other := filepath.Join(dir, "other.db")
	if msg, code := runCLI(t, "admin", "--server", server, "--token-file", wrong, "backup", "-o", other); code != exitUnauthorized {
		t.Errorf("keyward admin backup with a wrong token: exit %d, %q; want %d", code, msg, exitUnauthorized)
	}
	if _, err := os.Stat(other); !os.IsNotExist(err) {
		t.Errorf("a refused backup left %s: %v", other, err)
	}
	if _, err := os.Stat(other + ".partial"); !os.IsNotExist(err) {
		t.Errorf("a refused backup left %s.partial: %v", other, err)
	}
}

// Without a bbolt store (the admin API of a PostgreSQL broker) the backup
// endpoint answers 404 and the CLI says what to do instead, exit 2.
func TestAdminBackupWithoutBolt(t *testing.T) {
	e := newAdminTestEnv(t)
	out := filepath.Join(t.TempDir(), "backup.db")
	msg, code := e.admin(t, "backup", "-o", out)
	if code != exitNotFound || !strings.Contains(msg, "store.type bolt only") {
		t.Errorf("keyward admin backup without a bolt store: exit %d, %q; want %d and the reason", code, msg, exitNotFound)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a refused backup left %s: %v", out, err)
	}
}
