// Package fakegithub is a fake GitHub over HTTP for Keyward's tests: the
// OAuth 2.0 web application flow and the few REST API endpoints a sign-in
// reads, laid out as GitHub Enterprise Server lays them out under one base
// URL (BASE/login/oauth/authorize, BASE/login/oauth/access_token,
// BASE/api/v3/user …).
//
// It owns the authorization endpoint (it approves the configured user at
// once and redirects with a code), the token endpoint (client id and
// secret as form parameters, single-use codes bound to the redirect URI,
// PKCE S256 checked whenever the authorization request carried a
// challenge; errors as GitHub sends them, HTTP 200 with an error field;
// form-encoded answers unless JSON is asked for), and GET /user,
// /user/emails, /user/orgs and /user/teams with page/per_page pagination
// and RFC 8288 Link headers. The knobs change the user between sign-ins
// (a renamed login), the granted scopes (a GitHub App's token has none),
// the page size, and inject failures: a token endpoint error, an API
// status, a next-page link to another host. Per-endpoint hit counters tell
// what was asked.
//
// Non-test files must never import "testing", nor any Keyward package: the
// fake speaks only GitHub's protocol, so it can never agree with Keyward
// by accident.
package fakegithub
