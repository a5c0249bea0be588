// Package archtest holds one test over Keyward's whole import graph: which
// package may import which, as the packages' doc.go files say (broker,
// federation, keys, store and its backends, web, web/verify's leaf rule,
// the leaf helpers (keys/seal, keys/jwkscache, web/loopback,
// cmd/config/field), the fakes and the benchmarks). A package added
// without a rule, or an import a rule does not allow, fails it.
//
// It has no code of its own and imports nothing.
package archtest
