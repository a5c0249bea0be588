// Package broker is Keyward's OpenID Provider: it assembles fosite (code
// flow with PKCE, refresh with rotation and reuse detection, revocation,
// introspection), runs the login state machine that sends people to an
// upstream identity provider and back, keeps Keyward's single sign-on
// sessions, and decides what goes into every token.
//
// Where fosite needs the *http.Request, package web passes it through;
// everything Keyward decides itself takes typed values and returns typed
// results or an *Error.
//
// broker imports store (records and sentinels), keys, federation and the
// leaf helpers under internal/ (seal, loopback). It must never import web,
// web/verify, cmd, a store backend or a database driver; test/archtest
// holds it (and any package under broker/) to that.
package broker
