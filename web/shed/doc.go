// Package shed is Keyward's one concurrency limit: a fixed number of slots,
// taken without waiting. Work that finds every slot taken is refused at
// once (the caller answers 503 with Retry-After) instead of queueing behind
// work the process cannot finish any faster: past the point where the CPU
// or the store is saturated, more requests in flight only add latency,
// memory and goroutines.
//
// web uses one Limiter per endpoint class (token, browser, admin),
// web/verify one for verifications that miss its token cache, and
// federation one per upstream identity provider for the calls Keyward makes
// to it.
//
// It imports only the standard library, so web/verify may use it and stay
// a leaf (test/archtest checks it).
package shed
