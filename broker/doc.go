// Package broker is Keyward's OpenID Provider: it assembles fosite (code
// flow with PKCE, refresh with rotation and reuse detection, revocation,
// introspection), runs the login state machine that sends people to an
// upstream identity provider and back, keeps Keyward's single sign-on
// sessions, and decides what goes into every token.
//
// It is split by flow into types that each hold only their own
// dependencies; New assembles them into the *Broker, a facade of one-line
// delegations (facade.go) that web and cmd use:
//   - signIn (login.go, callback.go, loginlimit.go): /authorize, single
//     sign-on, the provider chooser, the upstream's callback, and the
//     login-attempt rate limit;
//   - tokenEndpoint (endpoints.go) with exchangeHandler (exchange.go,
//     exchange_native.go): /token, the token-exchange grant, /revoke,
//     /introspect, /userinfo;
//   - rpLogout (logout.go): /end_session; backchannelSender and
//     backchannelReceiver (backchannel.go): logout tokens to clients and
//     from upstreams;
//   - admin (admin.go, deprovision.go, revocations.go): deprovisioning,
//     reinstating, ending sessions (the one way every flow ends one), the
//     audit trail, the revocation feed, the listings.
//
// The rules several parts share are small types too: subjects
// (subjects.go, tokenstate.go: whether a person may still get or use
// tokens), claimRules (callback.go: what goes into them) and recheck
// (recheck.go: the upstream re-check). fosite is composed once, factory by
// factory, in composeFosite (broker.go), on the storage adapter fositeStore
// (fositestore.go). A token request, and each sign-in step that issues a
// code, is one unit of work (uow.go): its writes are gathered in the
// request's context and stored with one store.Apply; races are decided
// there, at commit.
//
// Where fosite needs the *http.Request, package web passes it through, and
// OAuth protocol answers (error redirects, token-endpoint JSON) are written
// here, through fosite; every error_description sentence Keyward writes
// itself is in descriptions.go. Everything else Keyward decides takes typed
// values and returns typed results: a browser flow that cannot go on
// returns a *Refusal (a RefusalKind and the facts a page may name), and web
// decides the page, its status and its wording. Protocol errors of
// Keyward's own JSON endpoints are *Error.
//
// Lifecycle: New(Config) does no I/O and starts nothing; the background
// work (delivering back-channel logout tokens) runs in Run(ctx), which
// returns when ctx ends.
//
// broker imports store (records and sentinels), keys, federation and the
// leaf helpers keys/seal and web/loopback. It must never import web,
// web/verify, cmd, a store backend or a database driver; test/archtest
// holds it (and any package under broker/) to that.
package broker
