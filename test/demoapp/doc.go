// Package demoapp is the demo application behind `keyward demo`: a small
// relying party of Keyward that signs a person in with the authorization-code
// flow (PKCE S256, state, nonce), verifies the ID token with go-oidc, and
// shows the person and the decoded ID and access tokens; it can refresh the
// tokens and sign out locally. Sessions live in memory.
//
// It is test and demonstration code: it must never import "testing" outside
// _test.go files, nor any Keyward package (it talks to Keyward over HTTP only).
package demoapp
