package postgres_test

import (
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/ory/fosite"

	"github.com/keyward/keyward/store"
	"github.com/keyward/keyward/store/postgres"
)

// TestApplySerializationRetry injects serialization failures before the
// COMMIT of an Apply: the whole batch runs again, updaters included, and
// only the successful run is kept (one new grant, one feed entry with the
// next Seq, one subject); when every attempt fails, nothing is kept and the
// error wraps fosite.ErrSerializationFailure.
func TestApplySerializationRetry(t *testing.T) {
	ctx := t.Context()
	s := open(t, migrated(t))
	rt := store.Grant{Kind: store.GrantRefreshToken, Signature: "rt-1", RequestID: "req-1", Active: true}
	must(t, "CreateGrant(rt-1)", s.CreateGrant(ctx, rt))
	failures := 0
	s.SetBeforeCommit(func(op string) error {
		if op == "apply" && failures > 0 {
			failures--
			return &pgconn.PgError{Code: "40001", Message: "could not serialize access (injected)"}
		}
		return nil
	})
	updates, creates := 0, 0
	batch := func(sig string) store.Batch {
		return store.Batch{
			GrantUpdates: []store.GrantUpdate{{Kind: rt.Kind, Signature: rt.Signature, Update: func(g store.Grant) (store.Grant, error) {
				updates++
				if !g.Active {
					return g, errors.New("rt-1 already rotated")
				}
				g.Active = false
				return g, nil
			}}},
			SubjectUpserts: []store.SubjectUpsert{{ID: "alice", Create: func() store.Subject {
				creates++
				return store.Subject{ID: "alice"}
			}, Update: func(x store.Subject) (store.Subject, error) { return x, nil }}},
			GrantCreates: []store.Grant{{Kind: store.GrantRefreshToken, Signature: sig, RequestID: "req-1", Active: true}},
			Revocations:  []store.Revocation{{Kind: store.RevokeToken, TokenID: "jti-" + sig, NotBefore: t0, ExpiresAt: t0}},
		}
	}

	failures = 2
	res, err := s.Apply(ctx, batch("rt-2"))
	must(t, "Apply after 2 injected failures", err)
	if updates != 3 || creates != 3 {
		t.Errorf("after 2 injected failures: updater calls %d, create calls %d; want 3 and 3", updates, creates)
	}
	if len(res.Revocations) != 1 || res.Revocations[0].Seq != 1 || len(res.Subjects) != 1 {
		t.Errorf("Apply after 2 failures = %+v, want one subject and one feed entry with Seq 1 (rolled-back Seqs given back)", res)
	}
	got, err := s.GetGrant(ctx, rt.Kind, rt.Signature)
	must(t, "GetGrant(rt-1)", err)
	if got.Active {
		t.Error("GetGrant(rt-1).Active = true after the retried Apply, want false")
	}
	if n, err := s.DeleteGrantsByRequest(ctx, "req-1", store.GrantRefreshToken); n != 2 || err != nil {
		t.Errorf("DeleteGrantsByRequest(req-1) = %d, %v; want 2 (rt-1 and rt-2 once), nil", n, err)
	}

	must(t, "CreateGrant(rt-1) again", s.CreateGrant(ctx, rt))
	failures = postgres.MaxAttempts
	_, err = s.Apply(ctx, batch("rt-3"))
	if !errors.Is(err, fosite.ErrSerializationFailure) {
		t.Errorf("Apply failing every attempt = %v, want fosite.ErrSerializationFailure", err)
	}
	if _, err := s.GetGrant(ctx, store.GrantRefreshToken, "rt-3"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetGrant(rt-3) after a failed Apply = %v, want ErrNotFound", err)
	}
	if feed, highest, err := s.ListRevocations(ctx, 0, 0); len(feed) != 1 || highest != 1 || err != nil {
		t.Errorf("ListRevocations after a failed Apply = %d entries, highest %d, %v; want 1, 1, nil", len(feed), highest, err)
	}
}
