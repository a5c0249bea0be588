// Package gateway tests `keyward verify` behind real gateways: a real nginx
// (the Debian package) with auth_request in front of a test application,
// tokens from a real broker signed in through test/fakeidp. The nginx
// configuration under test is read from docs/gateways/nginx.md, so the
// documented configuration is the tested one.
//
// A missing nginx skips the tests, unless KEYWARD_TEST_REQUIRE_ALL=1 (CI),
// which makes it a failure.
package gateway
