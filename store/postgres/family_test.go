package postgres_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/keyward/keyward/store"
)

// UpdateGrantsByRequest reaches every grant of the request, also one a
// concurrent transaction inserted while this one waited for a row lock of
// the same request. The broker relies on it (accessTokens.denyFamily): a
// refresh that rotates rt-1 and inserts rt-2 with its access token's jti,
// and commits while reuse detection waits for rt-1's lock, must have rt-2
// read, or that access token outlives the family's revocation. Under READ
// COMMITTED the statement's snapshot predates that insert (a phantom).
func TestUpdateGrantsByRequestSeesGrantsInsertedWhileItWaited(t *testing.T) {
	ctx := t.Context()
	dsn := migratedDatabase(t)
	s := open(t, dsn)
	must(t, "CreateGrant(rt-1)", s.CreateGrant(ctx, store.Grant{Kind: store.GrantRefreshToken, Signature: "rt-1", RequestID: "req-1", Active: true}))

	other, err := pgx.Connect(ctx, dsn)
	must(t, "Connect", err)
	defer other.Close(context.Background())
	tx, err := other.Begin(ctx)
	must(t, "Begin", err)
	// The concurrent refresh: rt-1 locked and rotated, rt-2 inserted.
	_, err = tx.Exec(ctx, `UPDATE grants SET active = false WHERE kind = 'refresh_token' AND signature = 'rt-1'`)
	must(t, "rotate rt-1", err)
	_, err = tx.Exec(ctx, `INSERT INTO grants SELECT (jsonb_populate_record(NULL::grants, to_jsonb(g) || '{"signature": "rt-2", "active": true}')).*
		FROM grants g WHERE kind = 'refresh_token' AND signature = 'rt-1'`)
	must(t, "insert rt-2", err)

	var mu sync.Mutex
	var seen []string
	done := make(chan error, 1)
	go func() {
		_, err := s.UpdateGrantsByRequest(ctx, "req-1", nil, func(g store.Grant) (store.Grant, error) {
			mu.Lock()
			seen = append(seen, g.Signature)
			mu.Unlock()
			g.Active = false
			return g, nil
		})
		done <- err
	}()
	waitForLockWait(t, dsn, 1) // the store waits for rt-1
	must(t, "Commit", tx.Commit(ctx))
	must(t, "UpdateGrantsByRequest", <-done)

	mu.Lock()
	defer mu.Unlock()
	if !slices.Contains(seen, "rt-2") {
		t.Errorf("updater saw %v, want rt-2 (committed while the store waited) too", seen)
	}
	if g, err := s.GetGrant(ctx, store.GrantRefreshToken, "rt-2"); err != nil || g.Active {
		t.Errorf("GetGrant(rt-2) = %+v, %v; want it updated (inactive)", g, err)
	}
}
