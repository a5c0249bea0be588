// Package federation is Keyward's relying-party side: one Upstream per
// configured OpenID Connect identity provider, and the trust rules of
// workload federation.
//
// It owns discovery and ID-token verification (go-oidc), the authorization
// code flow with PKCE S256 and a nonce (x/oauth2), the userinfo fallback, the
// mapping of upstream claims to an Identity, and the typed errors that let
// the broker show a clear page without leaking upstream details.
//
// Discovery happens once, in Config.Open, which also builds the one ID-token
// verifier (and so the one JWKS cache) per upstream. Everything else about
// the login (state, sessions, subjects, audit) belongs to broker.
//
// GitHub, the one non-OIDC upstream (OAuth2 without ID tokens), is its own
// type, GitHub (github.go, github_api.go): it implements the same broker
// interface from the REST API (the numeric user id as subject, the primary
// verified email, organisations and teams as groups). Every OIDC provider
// is one Upstream; a type switch exists only for that protocol difference.
//
// A LazyUpstream (lazy.go) follows the lifecycle rule of every component:
// NewLazy does no I/O, Run discovers and retries a failed discovery in the
// background, so one unreachable provider never stops the broker.
//
// Provider quirks are configuration, not a type switch: a Profile presets
// defaults (profile.go); ClaimMapping reads claims by path, with fallbacks
// and a groups prefix (claims.go); Azure AD's templated multi-tenant issuer,
// tenant allowlist and group overage through Microsoft Graph are in
// azure.go; AllowRules, the tenants and Google's hosted domains refuse an
// identity with a *NotAllowedError carrying a person-facing message
// (allow.go), after every verification has passed.
//
// For token exchange (RFC 8693) it verifies subject tokens that were not
// issued to Keyward itself:
//   - native sign-in (native.go): Upstream.VerifyIDToken takes an upstream
//     ID token issued to one of the upstream's native apps
//     (Config.NativeClientIDs) and maps it exactly as a browser sign-in;
//   - workload federation (trust.go, trust_rule.go, trust_keyset.go): Trust
//     matches JWTs from external issuers (CI systems, Kubernetes, cloud
//     identity) against trust rules, and contacts only issuers a rule names.
//
// Both read a presented token's unverified claims (golang-jwt) only to pick
// the issuer and refuse hopeless tokens before any request, and verify with
// go-oidc against a key set (go-jose) that refetches on an unknown kid at
// most once per interval, so a client choosing kids cannot make Keyward
// hammer an issuer.
//
// It owns an upstream's configuration: Config is one entry of keyward.yaml's
// upstreams (yaml tags), with its defaults (SetDefaults, the profiles'
// presets) and its validation by YAML field path (config_validate.go).
//
// This package imports only the standard library, go-oidc, x/oauth2,
// golang-jwt, go-jose and three of Keyward's leaf helpers (cmd/config, the
// shared configuration vocabulary; keys/jwkscache holds every issuer's key
// set; web/loopback decides where http is allowed). It must never import
// broker, store, web or keys itself:
// federation knows nothing about Keyward's own tokens or storage.
// test/archtest holds it to that.
package federation
