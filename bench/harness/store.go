package harness

import (
	"context"
	"sync/atomic"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/store"
)

// countingStore counts the broker's store writes: each is one write
// transaction, and so one fsync unless concurrent writes share a commit.
type countingStore struct {
	broker.Store
	writes *atomic.Int64
}

func (s countingStore) CreateGrant(ctx context.Context, g store.Grant) error {
	s.writes.Add(1)
	return s.Store.CreateGrant(ctx, g)
}

func (s countingStore) UpdateGrant(ctx context.Context, kind store.GrantKind, sig string, u func(store.Grant) (store.Grant, error)) error {
	s.writes.Add(1)
	return s.Store.UpdateGrant(ctx, kind, sig, u)
}

func (s countingStore) DeleteGrant(ctx context.Context, kind store.GrantKind, sig string) error {
	s.writes.Add(1)
	return s.Store.DeleteGrant(ctx, kind, sig)
}

func (s countingStore) DeleteGrantsByRequest(ctx context.Context, requestID string, kinds ...store.GrantKind) (int, error) {
	s.writes.Add(1)
	return s.Store.DeleteGrantsByRequest(ctx, requestID, kinds...)
}

func (s countingStore) CreateLoginAttempt(ctx context.Context, a store.LoginAttempt) error {
	s.writes.Add(1)
	return s.Store.CreateLoginAttempt(ctx, a)
}

func (s countingStore) UpdateLoginAttempt(ctx context.Context, id string, u func(store.LoginAttempt) (store.LoginAttempt, error)) error {
	s.writes.Add(1)
	return s.Store.UpdateLoginAttempt(ctx, id, u)
}

func (s countingStore) DeleteLoginAttempt(ctx context.Context, id string) error {
	s.writes.Add(1)
	return s.Store.DeleteLoginAttempt(ctx, id)
}

func (s countingStore) CreateSession(ctx context.Context, sess store.Session) error {
	s.writes.Add(1)
	return s.Store.CreateSession(ctx, sess)
}

func (s countingStore) UpdateSession(ctx context.Context, id string, u func(store.Session) (store.Session, error)) error {
	s.writes.Add(1)
	return s.Store.UpdateSession(ctx, id, u)
}

func (s countingStore) DeleteSession(ctx context.Context, id string) error {
	s.writes.Add(1)
	return s.Store.DeleteSession(ctx, id)
}

func (s countingStore) UpsertSubject(ctx context.Context, id string, create func() store.Subject, u func(store.Subject) (store.Subject, error)) (store.Subject, error) {
	s.writes.Add(1)
	return s.Store.UpsertSubject(ctx, id, create, u)
}

// Apply is one write transaction, however many records the unit of work
// holds; an empty one writes nothing.
func (s countingStore) Apply(ctx context.Context, b store.Batch) (store.BatchResult, error) {
	if !b.IsEmpty() {
		s.writes.Add(1)
	}
	return s.Store.Apply(ctx, b)
}
