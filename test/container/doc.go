// Package container tests the Keyward container image
// (deploy/container/Containerfile, built by deploy/container/build.sh): it
// builds the image twice with podman in throwaway storage and checks that
// the builds are identical, reads the image's layers and configuration
// (only the static binary, the CA certificates and the state folder; a
// numeric non-root user; the version label equal to `keyward version`),
// then runs `keyward serve` (bbolt on a volume, read-only root) and
// `keyward verify` from the image with host networking and talks to them
// over HTTP, and `keyward migrate` against PostgreSQL.
//
// Running containers on this machine needs podman with runc, cgroupfs, the
// vfs storage driver and no default ulimits (docs/deployment.md,
// "Container image"); the tests pass exactly those flags.
//
// A missing podman or runc skips the tests, unless KEYWARD_TEST_REQUIRE_ALL=1
// (CI), which makes it a failure. Its code is all in _test.go files.
package container
