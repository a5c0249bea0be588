// Package program finds the outside programs tests drive (nginx, caddy,
// chromium, podman, runc, helm): a test needing one that is missing skips
// with a one-line reason saying how to install it, or fails when
// KEYWARD_TEST_REQUIRE_ALL=1 (CI, where .ci/run installs every one).
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
