// Package web is the broker's HTTP surface: routes, middleware (request id,
// access log, recovery, body limits, security headers), the glue between
// HTTP and the broker's OAuth endpoints, cookies, and the HTML pages
// (html/template with embedded assets).
//
// web is also the home of the broker's Prometheus metrics (metrics*.go):
// the HTTP series, gauges read at each scrape (upstreams, keys), the
// revocation feed's readers, the upstream transport's timings, and the
// series counted from the auth events the other packages log (CountEvents
// wraps the slog handler), so that broker, keys and federation never
// import Prometheus.
//
// web imports broker, keys (the admin API's view of the key set), store
// (records and sentinels), cmd/config (the pages section's problems),
// prometheus and the standard library; it never
// imports a store backend or a database driver. The edge verifier lives in
// the separate leaf package web/verify, which must never import web.
// test/archtest holds it to that.
package web
