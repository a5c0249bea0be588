// Package web is the broker's HTTP surface: routes, middleware (request id,
// access log, recovery, body limits, security headers), the glue between
// HTTP and the broker's OAuth endpoints, cookies, and the HTML pages
// (html/template with embedded assets).
//
// web imports broker, keys (the admin API's view of the key set), store
// (records and sentinels), cmd/config (the pages section's problems),
// prometheus and the standard library; it never
// imports a store backend or a database driver. The edge verifier lives in
// the separate leaf package web/verify, which must never import web.
// test/archtest holds it to that.
package web
