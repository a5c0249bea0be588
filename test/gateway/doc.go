// Package gateway tests `keyward verify` behind real gateways: a real nginx
// (the Debian package) with auth_request in front of a test application,
// tokens from a real broker signed in through test/fakeidp. The nginx
// configurations under test (bearer tokens, and browser mode) are read from
// docs/gateways/nginx.md, so the documented configuration is the tested one.
// Browser mode is driven by a real headless Chromium through chromedp.
//
// A missing nginx or chromium skips the tests, unless
// KEYWARD_TEST_REQUIRE_ALL=1 (CI), which makes it a failure.
package gateway
