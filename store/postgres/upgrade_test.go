package postgres_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/keyward/keyward/store"
	"github.com/keyward/keyward/store/postgres"
)

// Migration 0004 removes the access-token records a Keyward from before
// self-contained access tokens wrote, and nothing else.
func TestMigration0004RemovesAccessTokens(t *testing.T) {
	ctx := t.Context()
	dsn := migrated(t)
	s := open(t, dsn)
	for _, g := range []store.Grant{
		{Kind: store.GrantAccessToken, Signature: "at-1", RequestID: "req-1", Subject: "alice", SessionID: "sess-1", ExpiresAt: t0},
		{Kind: store.GrantAccessToken, Signature: "at-2", RequestID: "req-1", Subject: "alice"},
		{Kind: store.GrantRefreshToken, Signature: "rt-1", RequestID: "req-1", Subject: "alice", SessionID: "sess-1"},
	} {
		if err := s.CreateGrant(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	// The schema as it was before version 4.
	exec(t, dsn, "DELETE FROM schema_migrations WHERE version = 4")
	applied, err := postgres.Migrate(ctx, dsn, nil)
	if err != nil || !slices.Equal(applied, []string{"0004_stateless_access_tokens"}) {
		t.Fatalf("Migrate() = %q, %v; want 0004 applied", applied, err)
	}
	for _, sig := range []string{"at-1", "at-2"} {
		if _, err := s.GetGrant(ctx, store.GrantAccessToken, sig); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetGrant(%s) after 0004 = %v, want ErrNotFound", sig, err)
		}
	}
	if _, err := s.GetGrant(ctx, store.GrantRefreshToken, "rt-1"); err != nil {
		t.Errorf("the refresh token did not survive 0004: %v", err)
	}
}
