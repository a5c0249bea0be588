// Package fakeidp is a real OpenID Connect provider over HTTP, small enough
// to read in one sitting, that plays the upstream identity provider in
// Keyward's tests and in `keyward demo`.
//
// It owns discovery, the JWKS, the authorization endpoint (auto-approval for
// tests, an HTML login form for the demo), the token endpoint (authorization
// code with PKCE S256, refresh tokens when offline_access is asked for),
// userinfo and end-session, plus knobs that make it misbehave on purpose:
// tampered ID tokens, a tampered discovery issuer, key rotation, injected
// failures and latency, scripted refresh-grant answers (SetRefreshAnswer:
// invalid_grant, Dex's 500 invalid_request, invalid_client, 503, a hang),
// and per-endpoint hit counters. Quirks make it
// behave like a particular provider: Azure AD's templated multi-tenant
// issuer with tid/oid and group overage resolved by a fake Microsoft Graph
// on the same server, groups and username under other claim names (Cognito,
// Keycloak, Auth0), no end_session_endpoint, a trailing-slash issuer,
// email_verified left out, and claims served only by userinfo.
//
// Signing keys come from pre-generated fixtures (testdata/keys.json, written
// by gen_keys.go); they are public and must never protect anything real.
//
// Non-test files must never import "testing" (the demo binary links this
// package), nor any Keyward package: fakeidp speaks only the protocol, so it
// can never agree with Keyward by accident.
package fakeidp
