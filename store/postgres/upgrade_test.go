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
	// The schema as it was before version 4 (0005 and 0006 are written to run again).
	exec(t, dsn, "DELETE FROM schema_migrations WHERE version >= 4")
	applied, err := postgres.Migrate(ctx, dsn, nil)
	if err != nil || !slices.Equal(applied, []string{"0004_stateless_access_tokens", "0005_console", "0006_audit_subject"}) {
		t.Fatalf("Migrate() = %q, %v; want 0004, 0005 and 0006 applied", applied, err)
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

// Migration 0005 keeps the subjects a version-4 schema holds, with empty
// disabled-why fields, and makes them searchable.
func TestMigration0005KeepsSubjects(t *testing.T) {
	ctx := t.Context()
	dsn := migrated(t)
	// A version-4 schema with a subject in it.
	exec(t, dsn, `DROP INDEX subjects_search_id, subjects_search_email, subjects_search_name,
		subjects_search_upstream_subject, subjects_search_upstream_id, audit_events_target, audit_events_action`)
	exec(t, dsn, `ALTER TABLE subjects DROP COLUMN disabled_at, DROP COLUMN disabled_by, DROP COLUMN disabled_reason`)
	exec(t, dsn, "DELETE FROM schema_migrations WHERE version >= 5")
	exec(t, dsn, `INSERT INTO subjects (id, upstream_id, upstream_subject, email, name, disabled)
		VALUES ('u-1', 'corp', '00u1', 'Old@Example.com', 'Old Timer', true)`)
	applied, err := postgres.Migrate(ctx, dsn, nil)
	if err != nil || !slices.Equal(applied, []string{"0005_console", "0006_audit_subject"}) {
		t.Fatalf("Migrate() = %q, %v; want 0005 applied", applied, err)
	}
	s := open(t, dsn)
	page, err := s.SearchSubjects(ctx, store.SubjectQuery{Prefix: "old@"})
	if err != nil || len(page.Subjects) != 1 {
		t.Fatalf("SearchSubjects(old@) = %+v, %v; want u-1", page, err)
	}
	got := page.Subjects[0]
	if got.ID != "u-1" || !got.Disabled || !got.DisabledAt.IsZero() || got.DisabledBy != "" || got.DisabledReason != "" {
		t.Errorf("u-1 after 0005 = %+v, want disabled with no recorded why", got)
	}
}
