// Package store defines Keyward's persistent records, the sentinel errors
// ErrNotFound, ErrConflict and ErrUnavailable, and the Store contract that
// every backend implements, including the unit of work (Batch, applied by
// Store.Apply in one transaction, all or nothing).
//
// Backends live in sub-packages: store/bolt (the embedded default) and
// store/postgres. store/storetest is the conformance suite both must pass.
//
// This package imports only the standard library. It must never import
// fosite, broker, keys, web or a database driver; backends import their own
// driver and nothing above store, and only cmd (and test support) imports a
// backend. test/archtest holds them to that.
package store
