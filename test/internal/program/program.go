// Package program finds the outside programs tests drive (nginx, caddy,
// chromium, podman, runc): a test needing one that is missing skips with a
// one-line reason naming the Debian package, or fails when
// KEYWARD_TEST_REQUIRE_ALL=1 (CI), where every program must be there.
//
// It is a test helper: only _test.go files import it.
package program

import (
	"os"
	"os/exec"
	"testing"
)

// EnvRequireAll turns a skip for want of a program into a failure.
const EnvRequireAll = "KEYWARD_TEST_REQUIRE_ALL"

// Find returns the path of name on PATH (or of the first of paths that
// exists), or skips t (fails it under KEYWARD_TEST_REQUIRE_ALL=1) when
// there is none, naming the Debian package pkg that provides it.
func Find(t testing.TB, name, pkg string, paths ...string) string {
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
		t.Fatalf("%s not found (apt-get install %s) and %s=1", name, pkg, EnvRequireAll)
	}
	t.Skipf("%s not found; install the Debian package %s to run this test", name, pkg)
	return ""
}
