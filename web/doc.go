// Package web is the broker's HTTP surface: routes, middleware (request id,
// access log, recovery, body limits, security headers), the glue between
// HTTP and the broker's OAuth endpoints, cookies, and the HTML pages
// (html/template with embedded assets).
//
// web imports broker and the standard library; it never imports a store
// backend. The edge verifier lives in the separate leaf package web/verify,
// which must never import web.
package web
