// Package federation is Keyward's relying-party side: one Upstream per
// configured OpenID Connect identity provider.
//
// It owns discovery and ID-token verification (go-oidc), the authorization
// code flow with PKCE S256 and a nonce (x/oauth2), the userinfo fallback, the
// mapping of upstream claims to an Identity, and the typed errors that let
// the broker show a clear page without leaking upstream details.
//
// Discovery happens once, in Config.Open, which also builds the one ID-token
// verifier (and so the one JWKS cache) per upstream. Everything else about
// the login (state, sessions, subjects, allow rules) belongs to broker.
//
// This package imports only the standard library, go-oidc and x/oauth2. It
// must never import broker, store, web or keys: federation knows nothing
// about Keyward's own tokens or storage.
package federation
