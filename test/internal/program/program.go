// Package program finds the outside programs tests drive (nginx, caddy,
// chromium, podman, runc, helm, traefik): a test needing one that is missing skips
// with a one-line reason saying how to install it, or fails when
// KEYWARD_TEST_REQUIRE_ALL=1 (CI, where .ci/run installs every one).
//
// It is a test helper: only _test.go files import it.
package program

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// EnvRequireAll turns a skip for want of a program into a failure.
const EnvRequireAll = "KEYWARD_TEST_REQUIRE_ALL"

// Find returns the path of name on PATH (or of the first of paths that
// exists), or skips t (fails it under KEYWARD_TEST_REQUIRE_ALL=1) when
// there is none, with install, the command that installs it
// ("apt-get install nginx").
func Find(t testing.TB, name, install string, paths ...string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv(EnvRequireAll) == "1" {
		t.Fatalf("%s not found (install it: %s) and %s=1", name, install, EnvRequireAll)
	}
	t.Skipf("%s not found; install it to run this test: %s", name, install)
	return ""
}

// Reads declares that a program the test runs reads the files under paths
// (files or folders, walked): it reads each of them itself, so that go
// test's cache, which keys a result on the files the test process opened,
// reruns the test when one of them changes. Without it, a test driving
// helm or go build on the repository could report a cached pass for
// changed sources.
func Reads(t testing.TB, paths ...string) {
	t.Helper()
	for _, root := range paths {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && d.Name() != "." && d.Name() != ".." && strings.HasPrefix(d.Name(), ".") && path != root {
				return filepath.SkipDir // .git and the like
			}
			if d.Type().IsRegular() {
				_, err = os.ReadFile(path)
			}
			return err
		})
		if err != nil {
			t.Fatalf("read the inputs under %s: %v", root, err)
		}
	}
}
