//go:build !keyward_crashtest

package main

import "github.com/keyward/keyward/store"

// withCrashPoints returns st unchanged. Only the crash-test build (the
// keyward_crashtest tag, crashpoints.go) puts kill points around its writes.
func withCrashPoints(st store.Store) store.Store { return st }
