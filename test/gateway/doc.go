// Package gateway tests `keyward verify` behind real gateways: a real nginx
// (the Debian package) with auth_request, a real Caddy with forward_auth and
// a real Traefik v3 (built from its module by .ci/run) with forwardAuth in
// front of a test application, tokens from a real broker signed in
// through test/fakeidp. The gateway configurations under test (bearer
// tokens, and browser mode) are read from docs/gateways/nginx.md,
// docs/gateways/caddy.md and docs/gateways/traefik.md, so the documented configuration is the tested one.
// Browser mode is driven by a real headless Chromium through chromedp behind
// nginx, and by an HTTP client with a cookie jar behind Caddy and Traefik; the renewal
// of a session of several cookies by an HTTP client behind both.
// TestPagesInChromium opens the pages around sign-in and sign-out (the
// broker's landing page, sign-out confirmation and "Access removed"; the
// gateway's callback error and "You are signed out" pages) in Chromium,
// checks their content and keeps a PNG screenshot of each in the test's
// artifact directory (go test -artifacts -outputdir DIR ./test/gateway).
//
// A missing nginx, caddy, traefik or chromium skips the tests, unless
// KEYWARD_TEST_REQUIRE_ALL=1 (CI), which makes it a failure.
package gateway
