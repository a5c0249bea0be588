// Package crash tests Keyward's crash safety by killing real processes: it
// builds `keyward serve` with the keyward_crashtest tag (kill points around
// every store write, cmd/keyward/crashpoints.go), runs it as a subprocess on
// bbolt and on PostgreSQL with test/fakeidp upstream, makes it SIGKILL
// itself just before and just after each write of sign-in, refresh,
// single-use token exchange, deprovisioning and key rotation, restarts it on
// the same store and checks what a client, an administrator and a verifier
// can then observe (docs/architecture.md, "Storage", crash safety).
//
// Its code is all in _test.go files.
package crash
