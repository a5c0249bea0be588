//go:build keyward_crashtest

package main

// Kill points for the crash-safety tests (test/crash), compiled only with
// -tags keyward_crashtest: the product binary has crashpoints_off.go
// instead, and test/crash checks that this file is not part of it.
//
// With KEYWARD_CRASHTEST set, every store write (each call of a method that
// writes, a non-empty Apply being one) prints "keyward-crashtest: <Method>#<n>"
// on stderr before it starts, n counting that method's calls since the
// process started. KEYWARD_CRASHTEST=log only prints them (the tests
// enumerate an operation's write points that way);
// KEYWARD_CRASHTEST=<Method>#<n>:before|after makes the process SIGKILL
// itself just before that write starts (nothing of it stored) or just
// after it returned (stored, its answer never sent): the two sides of every
// commit the broker makes.

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/keyward/keyward/store"
)

const crashEnv = "KEYWARD_CRASHTEST"

type crashStore struct {
	store.Store
	target string // Method#n; empty: log only
	after  bool

	mu     sync.Mutex
	counts map[string]int
}

func withCrashPoints(st store.Store) store.Store {
	spec := os.Getenv(crashEnv)
	if spec == "" {
		return st
	}
	s := &crashStore{Store: st, counts: map[string]int{}}
	if spec != "log" {
		target, when, _ := strings.Cut(spec, ":")
		if !strings.Contains(target, "#") || (when != "before" && when != "after") {
			fmt.Fprintf(os.Stderr, "keyward-crashtest: %s=%q: want log or <Method>#<n>:before|after\n", crashEnv, spec)
			os.Exit(2)
		}
		s.target, s.after = target, when == "after"
	}
	return s
}

// point runs write as the next call of method, killing the process before
// or after it when it is the target.
func (s *crashStore) point(method string, write func() error) error {
	s.mu.Lock()
	s.counts[method]++
	name := fmt.Sprintf("%s#%d", method, s.counts[method])
	s.mu.Unlock()
	fmt.Fprintf(os.Stderr, "keyward-crashtest: %s\n", name)
	hit := name == s.target
	if hit && !s.after {
		die()
	}
	err := write()
	if hit {
		die()
	}
	return err
}

// die is a crash: SIGKILL, no deferred function, no flush, no close.
func die() {
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	time.Sleep(time.Hour) // the signal is on its way
}

func crashPoint[T any](s *crashStore, method string, write func() (T, error)) (T, error) {
	var v T
	err := s.point(method, func() (err error) { v, err = write(); return err })
	return v, err
}

func (s *crashStore) Apply(ctx context.Context, b store.Batch) (store.BatchResult, error) {
	if b.IsEmpty() { // no transaction: not a write point
		return s.Store.Apply(ctx, b)
	}
	return crashPoint(s, "Apply", func() (store.BatchResult, error) { return s.Store.Apply(ctx, b) })
}

func (s *crashStore) CreateLoginAttempt(ctx context.Context, a store.LoginAttempt) error {
	return s.point("CreateLoginAttempt", func() error { return s.Store.CreateLoginAttempt(ctx, a) })
}

func (s *crashStore) UpdateLoginAttempt(ctx context.Context, id string, f func(store.LoginAttempt) (store.LoginAttempt, error)) error {
	return s.point("UpdateLoginAttempt", func() error { return s.Store.UpdateLoginAttempt(ctx, id, f) })
}

func (s *crashStore) DeleteLoginAttempt(ctx context.Context, id string) error {
	return s.point("DeleteLoginAttempt", func() error { return s.Store.DeleteLoginAttempt(ctx, id) })
}

func (s *crashStore) CreateSession(ctx context.Context, x store.Session) error {
	return s.point("CreateSession", func() error { return s.Store.CreateSession(ctx, x) })
}

func (s *crashStore) UpdateSession(ctx context.Context, id string, f func(store.Session) (store.Session, error)) error {
	return s.point("UpdateSession", func() error { return s.Store.UpdateSession(ctx, id, f) })
}

func (s *crashStore) DeleteSession(ctx context.Context, id string) error {
	return s.point("DeleteSession", func() error { return s.Store.DeleteSession(ctx, id) })
}

func (s *crashStore) CreateSubject(ctx context.Context, x store.Subject) error {
	return s.point("CreateSubject", func() error { return s.Store.CreateSubject(ctx, x) })
}

func (s *crashStore) UpdateSubject(ctx context.Context, id string, f func(store.Subject) (store.Subject, error)) error {
	return s.point("UpdateSubject", func() error { return s.Store.UpdateSubject(ctx, id, f) })
}

func (s *crashStore) UpsertSubject(ctx context.Context, id string, c func() store.Subject, f func(store.Subject) (store.Subject, error)) (store.Subject, error) {
	return crashPoint(s, "UpsertSubject", func() (store.Subject, error) { return s.Store.UpsertSubject(ctx, id, c, f) })
}

func (s *crashStore) CreateGrant(ctx context.Context, g store.Grant) error {
	return s.point("CreateGrant", func() error { return s.Store.CreateGrant(ctx, g) })
}

func (s *crashStore) UpdateGrant(ctx context.Context, k store.GrantKind, sig string, f func(store.Grant) (store.Grant, error)) error {
	return s.point("UpdateGrant", func() error { return s.Store.UpdateGrant(ctx, k, sig, f) })
}

func (s *crashStore) DeleteGrant(ctx context.Context, k store.GrantKind, sig string) error {
	return s.point("DeleteGrant", func() error { return s.Store.DeleteGrant(ctx, k, sig) })
}

func (s *crashStore) DeleteGrantsByRequest(ctx context.Context, id string, kinds ...store.GrantKind) (int, error) {
	return crashPoint(s, "DeleteGrantsByRequest", func() (int, error) { return s.Store.DeleteGrantsByRequest(ctx, id, kinds...) })
}

func (s *crashStore) UpdateGrantsByRequest(ctx context.Context, id string, kinds []store.GrantKind, f func(store.Grant) (store.Grant, error)) (int, error) {
	return crashPoint(s, "UpdateGrantsByRequest", func() (int, error) { return s.Store.UpdateGrantsByRequest(ctx, id, kinds, f) })
}

func (s *crashStore) DeleteGrantsBySubject(ctx context.Context, subject string) (int, error) {
	return crashPoint(s, "DeleteGrantsBySubject", func() (int, error) { return s.Store.DeleteGrantsBySubject(ctx, subject) })
}

func (s *crashStore) EndSession(ctx context.Context, id string, feed store.Revocation) (store.GrantDeletion, error) {
	return crashPoint(s, "EndSession", func() (store.GrantDeletion, error) { return s.Store.EndSession(ctx, id, feed) })
}

func (s *crashStore) UpdateKeySet(ctx context.Context, f func(store.KeySet) (store.KeySet, error)) error {
	return s.point("UpdateKeySet", func() error { return s.Store.UpdateKeySet(ctx, f) })
}

func (s *crashStore) Deprovision(ctx context.Context, d store.Deprovisioning) (store.DeprovisionResult, error) {
	return crashPoint(s, "Deprovision", func() (store.DeprovisionResult, error) { return s.Store.Deprovision(ctx, d) })
}

func (s *crashStore) AppendRevocation(ctx context.Context, r store.Revocation) (store.Revocation, error) {
	return crashPoint(s, "AppendRevocation", func() (store.Revocation, error) { return s.Store.AppendRevocation(ctx, r) })
}

func (s *crashStore) AppendAudit(ctx context.Context, e store.AuditEvent) (store.AuditEvent, error) {
	return crashPoint(s, "AppendAudit", func() (store.AuditEvent, error) { return s.Store.AppendAudit(ctx, e) })
}

func (s *crashStore) GarbageCollect(ctx context.Context, now time.Time) (store.GCResult, error) {
	return crashPoint(s, "GarbageCollect", func() (store.GCResult, error) { return s.Store.GarbageCollect(ctx, now) })
}
