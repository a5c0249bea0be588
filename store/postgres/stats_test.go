package postgres_test

import (
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/keyward/keyward/store"
	"github.com/keyward/keyward/store/postgres"
)

// Stats counts one write per write call, one commit per transaction that
// committed (a retried transaction counts once, a failed one not at all),
// and nothing for reads.
func TestStats(t *testing.T) {
	ctx := t.Context()
	s := open(t, migrated(t))
	base := s.Stats()
	delta := func() postgres.WriteStats {
		st := s.Stats()
		return postgres.WriteStats{Writes: st.Writes - base.Writes, Commits: st.Commits - base.Commits}
	}
	must(t, "CreateSession", s.CreateSession(ctx, store.Session{ID: "sess-1", Subject: "alice"}))
	if _, err := s.GetSession(ctx, "sess-1"); err != nil {
		t.Fatal(err)
	}
	if got := delta(); got != (postgres.WriteStats{Writes: 1, Commits: 1}) {
		t.Errorf("Stats after one write and one read = %+v, want 1 write, 1 commit", got)
	}

	failures := 1
	s.SetBeforeCommit(func(string) error {
		if failures > 0 {
			failures--
			return &pgconn.PgError{Code: "40001", Message: "could not serialize access (injected)"}
		}
		return nil
	})
	same := func(x store.Session) (store.Session, error) { return x, nil }
	must(t, "UpdateSession retried once", s.UpdateSession(ctx, "sess-1", same))
	if got := delta(); got != (postgres.WriteStats{Writes: 2, Commits: 2}) {
		t.Errorf("Stats after a write retried once = %+v, want 2 writes, 2 commits", got)
	}
	failures = postgres.MaxAttempts
	if err := s.UpdateSession(ctx, "sess-1", same); err == nil {
		t.Fatal("UpdateSession failing every attempt = nil, want an error")
	}
	if got := delta(); got != (postgres.WriteStats{Writes: 3, Commits: 2}) {
		t.Errorf("Stats after a write that never committed = %+v, want 3 writes, 2 commits", got)
	}
}
