// Package console is Keyward's admin console: server-rendered pages under
// /console on the broker's listener, for help-desk and security staff who
// would rather look than read JSON (issue 20).
//
// It owns its configuration (Config, the `console:` section of
// keyward.yaml), its staff sessions and their cookie, its pages, templates
// and stylesheet. Staff sign in through Keyward itself: the console is an
// OIDC client of its own broker (authorization code with PKCE, the client
// Config.Client describes), and access needs membership of a configured
// group. Every action calls the same *broker.Broker admin operations the
// JSON admin API calls and is audited with the staff member's identity.
//
// It may import broker, keys, store (records and the Searcher types only),
// go-oidc, x/oauth2 and Prometheus's client (the health page reads web's
// revocation-feed reader gauges back from the registry, Options.Metrics,
// rather than keep a second record of the polls); never web (web mounts it as an http.Handler), a
// store backend or cmd.
package console
