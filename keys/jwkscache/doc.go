// Package jwkscache is Keyward's one key-set cache: web/verify (the
// broker's JWKS at the gateway) and federation (trusted issuers' and
// upstreams' JWKS) both hold their keys in a Cache.
//
// A Cache holds the last value a fetch returned and refreshes it:
//   - in the background once it is past its max-age (the fetch says how
//     long its value lives, spread by Options.Jitter), while readers keep
//     the value they have: a known kid never waits;
//   - on demand (Refresh, for an unknown kid) at most once per
//     Options.MissInterval;
//   - with one fetch at a time, shared by every caller that waits for it;
//   - never losing the last good value: a failed fetch keeps it, and no
//     fetch starts within Options.FailureBackoff of a failure.
//
// The package knows nothing of JWKs: the caller's fetch function parses
// the set into whatever its verifier needs (T). It imports only the
// standard library, so web/verify stays a leaf (test/archtest checks it).
package jwkscache
