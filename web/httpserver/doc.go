// Package httpserver builds every HTTP server the keyward binary starts
// (serve's main, metrics and admin listeners, keyward verify's listeners,
// and the demo's identity provider, app and gateway) with one set of
// hardened settings: header, read, write and idle timeouts, a header size
// limit, and a cap on concurrent connections at which idle keep-alive
// connections make room for new clients.
//
// It owns those defaults and the reasoning behind them, so no caller writes
// an http.Server literal of its own (a test in cmd/keyward checks that).
//
// It imports only the standard library.
// web/verify, a leaf package, does not import it: its handlers are served by
// cmd/keyward through this package.
package httpserver
