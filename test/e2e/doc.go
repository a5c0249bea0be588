// Package e2e holds Keyward's end-to-end tests: real HTTP between x/oauth2 and
// go-oidc clients, the broker, and a fake upstream identity provider
// (test/fakeidp), with bbolt in a temporary folder.
package e2e
