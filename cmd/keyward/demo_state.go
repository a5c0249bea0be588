package main

// This file is how `keyward admin` finds a running `keyward demo`: the demo
// writes the admin API's address and token file into a per-user folder and
// removes it at exit.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"

	"github.com/keyward/keyward/web/loopback"
)

// demoState is what the demo tells keyward admin.
type demoState struct {
	Server    string `json:"server"`    // base URL of the admin API
	TokenFile string `json:"tokenFile"` // the file holding the admin token
}

// demoStateDir is the per-user folder of the demo's state file: under
// $XDG_RUNTIME_DIR when set, else the temporary folder.
func demoStateDir() string {
	base := os.Getenv("XDG_RUNTIME_DIR")
	if base == "" {
		base = os.TempDir()
	}
	return filepath.Join(base, "keyward-demo-"+strconv.Itoa(os.Getuid()))
}

func demoStatePath() string { return filepath.Join(demoStateDir(), "admin.json") }

// privateDir reports why dir cannot be trusted to hold the demo's state:
// it must be a real folder of this user that nobody else can write to.
func privateDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	switch {
	case !fi.IsDir():
		return fmt.Errorf("%s is not a folder", dir)
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("%s can be written by others (mode %v)", dir, fi.Mode().Perm())
	case !ownedByMe(fi):
		return fmt.Errorf("%s belongs to another user", dir)
	}
	return nil
}

// writeDemoState writes st for keyward admin and returns the file's path.
func writeDemoState(st demoState) (string, error) {
	dir := demoStateDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create %s: %w", dir, err)
	}
	if err := privateDir(dir); err != nil {
		return "", err
	}
	data, err := json.Marshal(st)
	if err != nil {
		return "", err
	}
	path := demoStatePath()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return path, nil
}

// removeDemoState removes the state file at path if it still names server
// (a demo started later may have replaced it).
func removeDemoState(path, server string) {
	if st, err := readDemoStateFile(path); err == nil && st.Server == server {
		_ = os.Remove(path)
	}
}

// readDemoState reads the running demo's state; ok is false when no demo
// left one. A file that cannot be trusted is an error.
func readDemoState() (st demoState, ok bool, err error) {
	path := demoStatePath()
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return st, false, nil
	}
	if err := privateDir(filepath.Dir(path)); err != nil {
		return st, false, fmt.Errorf("ignoring the demo's state file %s: %w", path, err)
	}
	st, err = readDemoStateFile(path)
	if err != nil {
		return st, false, err
	}
	return st, true, nil
}

func readDemoStateFile(path string) (demoState, error) {
	var st demoState
	data, err := os.ReadFile(path)
	if err != nil {
		return st, fmt.Errorf("read the demo's state file: %w", err)
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return st, fmt.Errorf("the demo's state file %s: %w", path, err)
	}
	if u, err := url.Parse(st.Server); err != nil || u.Scheme != "http" || !loopback.HostPort(u.Host) || st.TokenFile == "" {
		return st, fmt.Errorf("the demo's state file %s names no loopback admin API and token file", path)
	}
	return st, nil
}
