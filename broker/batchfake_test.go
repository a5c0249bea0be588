package broker

// TEMPORARY (until store/bolt implements Apply, branch store-uow): applies
// a Batch sequentially, NOT atomically. Early unit tests only.

import (
	"context"
	"errors"
	"fmt"

	"github.com/keyward/keyward/store"
	"github.com/keyward/keyward/store/bolt"
)

type seqBatchStore struct{ *bolt.Store }

func (s seqBatchStore) Apply(ctx context.Context, b store.Batch) (store.BatchResult, error) {
	var res store.BatchResult
	if b.IsEmpty() {
		return res, nil
	}
	for _, u := range b.GrantUpdates {
		if err := s.UpdateGrant(ctx, u.Kind, u.Signature, u.Update); err != nil {
			return res, fmt.Errorf("update: %w", err)
		}
	}
	for _, id := range b.LoginAttemptDeletes {
		if err := s.DeleteLoginAttempt(ctx, id); err != nil {
			return res, fmt.Errorf("attempt: %w", err)
		}
	}
	for _, k := range b.GrantDeletes {
		if err := s.DeleteGrant(ctx, k.Kind, k.Signature); err != nil && !errors.Is(err, store.ErrNotFound) {
			return res, err
		}
	}
	for _, u := range b.SubjectUpserts {
		sub, err := s.UpsertSubject(ctx, u.ID, u.Create, u.Update)
		if err != nil {
			return res, fmt.Errorf("subject: %w", err)
		}
		res.Subjects = append(res.Subjects, sub)
	}
	for _, x := range b.SessionCreates {
		if err := s.CreateSession(ctx, x); err != nil {
			return res, err
		}
	}
	for _, g := range b.GrantCreates {
		if err := s.CreateGrant(ctx, g); err != nil {
			return res, fmt.Errorf("create: %w", err)
		}
	}
	for _, r := range b.Revocations {
		r, err := s.AppendRevocation(ctx, r)
		if err != nil {
			return res, err
		}
		res.Revocations = append(res.Revocations, r)
	}
	return res, nil
}
