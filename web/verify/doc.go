// Package verify is Keyward's edge verifier: it checks Keyward access tokens
// (RFC 9068 JWTs) offline against the issuer's JWKS and decides, per route,
// whether a request may pass.
//
// It owns:
//   - Verifier: the JWT checks (size, header, algorithm allowlist, typ, kid,
//     signature, iss, aud, exp, nbf, iat), a JWKS cache that honours
//     Cache-Control max-age with jitter and refetches on an unknown kid at most
//     once per interval, and a bounded cache of verified tokens;
//   - Rules: the route rules of verify.yaml (first match wins, no match denies;
//     a path a backend could route elsewhere is refused, never cleaned);
//   - NewHandler: the forward-auth endpoint /oauth2/auth for nginx auth_request,
//     Traefik forwardAuth, Caddy forward_auth and Envoy ext_authz (HTTP);
//   - Browser: browser mode, sign-in at the edge for web apps (code + PKCE at
//     Keyward, an encrypted session cookie, renewal on page load through
//     /oauth2/start, sign-out) with SafeRedirect guarding every rd;
//   - Verifier.Middleware and ClaimsFromContext for Go services;
//   - with Config.Revocation, a poller of the broker's revocation feed, run by
//     Verifier.Run (New starts no goroutine but one key-set fetch): tokens
//     of revoked subjects and sessions, and revoked tokens by jti, are
//     refused (cached ones too), and a
//     feed unread for longer than MaxStaleness fails closed (503) unless
//     OnStale is allow.
//
// It owns its configuration: Config, RevocationConfig and BrowserConfig are
// also its sections of keyward verify's verify.yaml (yaml tags only, no YAML
// import), with SetDefaults and Validate, which reports *FieldError (the
// binary's one problem type, cmd/config/field.Error) by YAML path, with
// field.CheckURL's URL rule; New and NewBrowser apply the same defaults and
// rules.
//
// Lifecycle: New does no I/O and starts nothing; Run loads the key set at
// once and polls the revocation feed (without Run, the first Verify loads
// the keys and waits for them).
//
// Errors are returned, never logged: an invalid token is a 401 *Error with code
// invalid_token, a rule that does not allow the token a 403 with
// insufficient_scope, and a key set that was never loaded a 503 that matches
// ErrUnavailable.
//
// This package is a leaf: it imports only the standard library, golang-jwt/v5
// (signature checks), filippo.io/bigmod (RS256/384/512 checks with a modulus
// prepared per key), go-jose/v4 (JWK parsing only), golang.org/x/oauth2
// (browser mode's code exchange and refresh grant) and Keyward's small
// helpers that import only the standard library (keys/seal seals the
// browser-mode cookies, keys/jwkscache holds the key set, web/loopback and
// cmd/config/field hold the loopback and URL rules and the problem type,
// web/shed the limit of verifications in flight).
// It must never
// import broker, store, keys, web, fosite, a database driver or a logging
// library; a test runs go list -deps to hold it to that.
package verify
