package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/ory/fosite"

	"github.com/keyward/keyward/store"
	"github.com/keyward/keyward/store/postgres"
	"github.com/keyward/keyward/store/postgres/pgtest"
	"github.com/keyward/keyward/store/storetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 6000, time.UTC)

// migrated returns the DSN of a fresh schema at SchemaVersion.
func migrated(t testing.TB) string {
	t.Helper()
	return migrate(t, pgtest.SchemaDSN(t))
}

// migratedDatabase returns the DSN of a fresh database at SchemaVersion,
// for tests that look at the whole database (locks, settings).
func migratedDatabase(t testing.TB) string {
	t.Helper()
	return migrate(t, pgtest.DSN(t))
}

func migrate(t testing.TB, dsn string) string {
	t.Helper()
	if _, err := postgres.Migrate(context.Background(), dsn, nil); err != nil {
		t.Fatalf("Migrate() = %v, want nil", err)
	}
	return dsn
}

// open opens a store on dsn (Migrate set) and closes it when t ends.
func open(t testing.TB, dsn string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), postgres.Options{DSN: dsn, Migrate: true})
	if err != nil {
		t.Fatalf("Open() = %v, want nil", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestConformance runs the suite on a fresh schema per subtest (a fresh
// database costs about ten times as much), migrated by Open.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, pgtest.SchemaDSN(t)) })
}

func TestMigrateIdempotent(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.DSN(t)
	all, versions := migrationFiles(t)
	applied, err := postgres.Migrate(ctx, dsn, nil)
	if err != nil || !slices.Equal(applied, all) {
		t.Fatalf("Migrate(empty database) = %q, %v; want %q, nil", applied, err, all)
	}
	applied, err = postgres.Migrate(ctx, dsn, nil)
	if err != nil || len(applied) != 0 {
		t.Fatalf("Migrate(migrated database) = %q, %v; want none, nil", applied, err)
	}
	s, err := postgres.Open(ctx, postgres.Options{DSN: dsn})
	if err != nil {
		t.Fatalf("Open(migrated database, Migrate false) = %v, want nil", err)
	}
	_ = s.Close()
	if got := schemaVersions(t, dsn); !slices.Equal(got, versions) {
		t.Errorf("schema_migrations versions = %v, want %v", got, versions)
	}
}

// migrationFiles lists migrations/ as Migrate names what it applied, and
// their versions, 1 to SchemaVersion.
func migrationFiles(t *testing.T) (names []string, versions []int) {
	t.Helper()
	entries, err := os.ReadDir("migrations")
	if err != nil {
		t.Fatalf("read migrations/: %v", err)
	}
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".sql"))
		versions = append(versions, len(versions)+1)
	}
	if len(versions) != postgres.SchemaVersion {
		t.Fatalf("migrations/ has %d files, SchemaVersion is %d", len(versions), postgres.SchemaVersion)
	}
	return names, versions
}

func TestMigrateConcurrent(t *testing.T) {
	dsn := pgtest.DSN(t)
	const n = 4
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		applied []string
		errs    []error
	)
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			got, err := postgres.Migrate(t.Context(), dsn, nil)
			mu.Lock()
			defer mu.Unlock()
			applied = append(applied, got...)
			errs = append(errs, err)
		})
	}
	close(start)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Errorf("concurrent Migrate() = %v, want nil", err)
		}
	}
	all, versions := migrationFiles(t)
	if !slices.Equal(applied, all) {
		t.Errorf("migrations applied by %d concurrent Migrate calls = %q, want %q once", n, applied, all)
	}
	if got := schemaVersions(t, dsn); !slices.Equal(got, versions) {
		t.Errorf("schema_migrations versions = %v, want %v", got, versions)
	}
}

func TestOpenRefusesOlderSchema(t *testing.T) {
	_, err := postgres.Open(t.Context(), postgres.Options{DSN: pgtest.DSN(t)})
	if err == nil {
		t.Fatal("Open(empty database, Migrate false) = nil, want an error")
	}
	for _, want := range []string{"keyward migrate", "version 0", fmt.Sprintf("version %d", postgres.SchemaVersion)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Open(empty database, Migrate false) = %q, want it to mention %q", err, want)
		}
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	ctx := t.Context()
	dsn := migrated(t)
	newer := postgres.SchemaVersion + 1
	exec(t, dsn, "INSERT INTO schema_migrations (version, name) VALUES ($1, 'from_the_future')", newer)
	for _, migrate := range []bool{false, true} {
		_, err := postgres.Open(ctx, postgres.Options{DSN: dsn, Migrate: migrate})
		wantNewer(t, fmt.Sprintf("Open(Migrate: %v)", migrate), err, newer)
	}
	_, err := postgres.Migrate(ctx, dsn, nil)
	wantNewer(t, "Migrate()", err, newer)
}

func wantNewer(t *testing.T, call string, err error, newer int) {
	t.Helper()
	if err == nil {
		t.Errorf("%s on a newer schema = nil, want an error", call)
		return
	}
	for _, want := range []string{"keyward migrate", fmt.Sprintf("version %d", newer), fmt.Sprintf("version %d", postgres.SchemaVersion)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%s on a newer schema = %q, want it to mention %q", call, err, want)
		}
	}
}

// TestConcurrentUpdatersOneRow holds one updater inside its transaction
// while a second updates the same grant: the second waits on the row lock,
// then runs its updater on the first one's result; both succeed and
// neither change is lost.
func TestConcurrentUpdatersOneRow(t *testing.T) {
	ctx := t.Context()
	dsn := migratedDatabase(t)
	s := open(t, dsn)
	g := store.Grant{Kind: store.GrantRefreshToken, Signature: "sig-1", RequestID: "req-1", Data: []byte("a")}
	must(t, "CreateGrant", s.CreateGrant(ctx, g))

	inFirst, releaseFirst := make(chan struct{}), make(chan struct{})
	var first, second atomic.Int32
	firstDone := make(chan error, 1)
	go func() {
		firstDone <- s.UpdateGrant(ctx, g.Kind, g.Signature, func(x store.Grant) (store.Grant, error) {
			if first.Add(1) == 1 {
				close(inFirst)
				<-releaseFirst
			}
			x.Data = append(x.Data, 'b')
			return x, nil
		})
	}()
	<-inFirst
	var secondSaw []byte
	secondDone := make(chan error, 1)
	go func() {
		secondDone <- s.UpdateGrant(ctx, g.Kind, g.Signature, func(x store.Grant) (store.Grant, error) {
			second.Add(1)
			secondSaw = slices.Clone(x.Data)
			x.Data = append(x.Data, 'c')
			return x, nil
		})
	}()
	waitForLockWait(t, dsn, 1)
	close(releaseFirst)
	must(t, "first UpdateGrant", <-firstDone)
	must(t, "second UpdateGrant", <-secondDone)

	got, err := s.GetGrant(ctx, g.Kind, g.Signature)
	must(t, "GetGrant", err)
	if string(got.Data) != "abc" {
		t.Errorf("Data after two concurrent updates = %q, want %q", got.Data, "abc")
	}
	if string(secondSaw) != "ab" {
		t.Errorf("second updater saw Data %q, want the first one's result %q", secondSaw, "ab")
	}
	if first.Load() != 1 || second.Load() != 1 {
		t.Errorf("updater calls = %d, %d; want 1, 1 (a row lock, not a retry)", first.Load(), second.Load())
	}
}

// TestDeadlockRetried makes UpdateGrantsByRequest the victim of a real
// deadlock (SQLSTATE 40P01) with another session: the store runs the
// transaction again and succeeds.
func TestDeadlockRetried(t *testing.T) {
	ctx := t.Context()
	dsn := migratedDatabase(t)
	// The store's sessions detect the deadlock (after 1 s); the other
	// session never does (1 min), so the store is the one aborted.
	if err := tryExec(dsn, fmt.Sprintf("ALTER DATABASE %s SET deadlock_timeout = '1s'",
		pgx.Identifier{database(t, dsn)}.Sanitize())); err != nil {
		if os.Getenv(pgtest.EnvRequireAll) == "1" {
			t.Fatalf("cannot set deadlock_timeout (the test role needs to be a superuser): %v", err)
		}
		t.Skipf("cannot set deadlock_timeout (needs a superuser): %v", err)
	}
	var logs bytes.Buffer
	s, err := postgres.Open(ctx, postgres.Options{DSN: dsn,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatalf("Open() = %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	// Locked in (kind, signature) order: access_token first.
	a := store.Grant{Kind: store.GrantAccessToken, Signature: "sig-a", RequestID: "req-1"}
	b := store.Grant{Kind: store.GrantRefreshToken, Signature: "sig-b", RequestID: "req-1"}
	must(t, "CreateGrant(a)", s.CreateGrant(ctx, a))
	must(t, "CreateGrant(b)", s.CreateGrant(ctx, b))

	other, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("Connect() = %v", err)
	}
	defer other.Close(context.Background())
	tx, err := other.Begin(ctx)
	must(t, "Begin", err)
	_, err = tx.Exec(ctx, "SET LOCAL deadlock_timeout = '1min'")
	must(t, "SET deadlock_timeout", err)
	_, err = tx.Exec(ctx, "SELECT 1 FROM grants WHERE kind = 'refresh_token' FOR UPDATE")
	must(t, "lock b", err)

	var calls atomic.Int32
	done := make(chan error, 1)
	go func() {
		_, err := s.UpdateGrantsByRequest(ctx, "req-1", nil, func(g store.Grant) (store.Grant, error) {
			calls.Add(1)
			g.Active = true
			return g, nil
		})
		done <- err
	}()
	waitForLockWait(t, dsn, 1) // the store holds a, waits for b
	_, err = tx.Exec(ctx, "SELECT 1 FROM grants WHERE kind = 'access_token' FOR UPDATE")
	must(t, "lock a (granted once the store is aborted)", err)
	must(t, "Commit", tx.Commit(ctx))
	must(t, "UpdateGrantsByRequest", <-done)

	if !strings.Contains(logs.String(), "transaction retried") || !strings.Contains(logs.String(), "sqlstate=40P01") {
		t.Errorf("log has no retry after SQLSTATE 40P01:\n%s", logs.String())
	}
	if calls.Load() != 2 {
		t.Errorf("updater calls = %d, want 2 (one per grant, in the successful run)", calls.Load())
	}
	for _, g := range []store.Grant{a, b} {
		got, err := s.GetGrant(ctx, g.Kind, g.Signature)
		must(t, "GetGrant", err)
		if !got.Active {
			t.Errorf("GetGrant(%s).Active = false, want true", g.Signature)
		}
	}
}

// TestSerializationRetry injects serialization failures before COMMIT: the
// whole transaction runs again, updater included, and only the successful
// run's write is kept; when every attempt fails, the error wraps
// fosite.ErrSerializationFailure.
func TestSerializationRetry(t *testing.T) {
	ctx := t.Context()
	s := open(t, migrated(t))
	must(t, "CreateSession", s.CreateSession(ctx, store.Session{ID: "sess-1", Subject: "alice"}))
	failures := 0
	s.SetBeforeCommit(func(string) error {
		if failures > 0 {
			failures--
			return &pgconn.PgError{Code: "40001", Message: "could not serialize access (injected)"}
		}
		return nil
	})
	calls := 0
	appendGroup := func(x store.Session) (store.Session, error) {
		calls++
		x.Identity.Groups = append(x.Identity.Groups, fmt.Sprintf("g%d", calls))
		return x, nil
	}

	failures = 2
	must(t, "UpdateSession after 2 failures", s.UpdateSession(ctx, "sess-1", appendGroup))
	if calls != 3 {
		t.Errorf("updater calls after 2 injected failures = %d, want 3", calls)
	}
	got, err := s.GetSession(ctx, "sess-1")
	must(t, "GetSession", err)
	if d := cmp.Diff([]string{"g3"}, got.Identity.Groups); d != "" {
		t.Errorf("Groups after the retried update (-want +got):\n%s", d)
	}

	calls, failures = 0, postgres.MaxAttempts
	err = s.UpdateSession(ctx, "sess-1", appendGroup)
	if !errors.Is(err, fosite.ErrSerializationFailure) {
		t.Errorf("UpdateSession failing every attempt = %v, want fosite.ErrSerializationFailure", err)
	}
	if calls != postgres.MaxAttempts {
		t.Errorf("updater calls when every attempt fails = %d, want %d", calls, postgres.MaxAttempts)
	}
	got, err = s.GetSession(ctx, "sess-1")
	must(t, "GetSession", err)
	if d := cmp.Diff([]string{"g3"}, got.Identity.Groups); d != "" {
		t.Errorf("Groups after the failed update (-want +got):\n%s", d)
	}

	// The Seq counters roll back with their transaction: no gap.
	failures = 1
	res, err := s.Deprovision(ctx, store.Deprovisioning{Subject: "alice", At: t0})
	must(t, "Deprovision after 1 failure", err)
	if res.Revocation.Seq != 1 || res.Sessions != 1 {
		t.Errorf("Deprovision after a failed attempt = Seq %d, %d sessions; want Seq 1, 1 session", res.Revocation.Seq, res.Sessions)
	}
	events, err := s.ListAudit(ctx, 0)
	must(t, "ListAudit", err)
	if len(events) != 1 || events[0].Seq != 1 {
		t.Errorf("ListAudit after a retried Deprovision = %+v, want one event with Seq 1", events)
	}
}

// TestUnavailable stops the database under an open store: calls fail with
// store.ErrUnavailable (and updaters are not called), and once the
// database is back the same store works again.
func TestUnavailable(t *testing.T) {
	ctx := t.Context()
	c := pgtest.StartCluster(t)
	s := open(t, c.CreateDatabase(t))
	g := store.Grant{Kind: store.GrantRefreshToken, Signature: "sig-1", RequestID: "req-1", Active: true}
	must(t, "CreateGrant", s.CreateGrant(ctx, g))
	must(t, "Ping", s.Ping(ctx))

	must(t, "Cluster.Stop", c.Stop())
	neverCalled := func(x store.Grant) (store.Grant, error) {
		t.Error("updater called while the database is down")
		return x, nil
	}
	calls := []struct {
		name string
		call func() error
	}{
		{"Ping", func() error { return s.Ping(ctx) }},
		{"GetGrant", func() error { _, err := s.GetGrant(ctx, g.Kind, g.Signature); return err }},
		{"CreateGrant", func() error {
			return s.CreateGrant(ctx, store.Grant{Kind: store.GrantRefreshToken, Signature: "sig-2"})
		}},
		{"UpdateGrant", func() error { return s.UpdateGrant(ctx, g.Kind, g.Signature, neverCalled) }},
		{"AppendAudit", func() error { _, err := s.AppendAudit(ctx, store.AuditEvent{Action: "x"}); return err }},
		{"GarbageCollect", func() error { _, err := s.GarbageCollect(ctx, t0); return err }},
		{"GetGrant with a deadline", func() error {
			ctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			defer cancel()
			_, err := s.GetGrant(ctx, g.Kind, g.Signature)
			return err
		}},
	}
	for _, c := range calls {
		if err := c.call(); !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s while the database is down = %v, want store.ErrUnavailable", c.name, err)
		}
	}
	_, err := postgres.Open(ctx, postgres.Options{DSN: c.DSN()})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Open while the database is down = %v, want store.ErrUnavailable", err)
	}

	must(t, "Cluster.Start", c.Start())
	must(t, "Ping after the restart", s.Ping(ctx))
	got, err := s.GetGrant(ctx, g.Kind, g.Signature)
	must(t, "GetGrant after the restart", err)
	if d := cmp.Diff(g, got); d != "" {
		t.Errorf("GetGrant after the restart (-want +got):\n%s", d)
	}
	must(t, "UpdateGrant after the restart", s.UpdateGrant(ctx, g.Kind, g.Signature, func(x store.Grant) (store.Grant, error) {
		x.Active = false
		return x, nil
	}))
}

// TestPasswordNeverShown opens stores with a DSN holding a password, on a
// server that is up and one that is down: neither the log nor the error
// shows the password.
func TestPasswordNeverShown(t *testing.T) {
	const password = "s3cret-pa55word"
	dsn := migrated(t) // trust authentication ignores the password
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil || u.Scheme == "" {
		// A key=value DSN from KEYWARD_TEST_POSTGRES_DSN: no user@ to add a
		// password to.
		if os.Getenv(pgtest.EnvRequireAll) == "1" {
			t.Fatalf("the test DSN is not a postgres:// URL with a user, so the password cannot be added")
		}
		t.Skip("the test DSN is not a postgres:// URL with a user; the password cannot be added")
	}
	u.User = url.UserPassword(u.User.Username(), password)
	up := u.String()
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := postgres.Open(t.Context(), postgres.Options{DSN: up, Logger: logger})
	must(t, "Open", err)
	_ = s.Close()

	down := fmt.Sprintf("postgres://postgres:%s@127.0.0.1:1/x?sslmode=disable&connect_timeout=2", password)
	_, err = postgres.Open(t.Context(), postgres.Options{DSN: down, Logger: logger})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Open(refused port) = %v, want store.ErrUnavailable", err)
	}
	_, merr := postgres.Migrate(t.Context(), down, logger)
	_, perr := postgres.Open(t.Context(), postgres.Options{DSN: "postgres://postgres:" + password + "@bad host:x/"})
	for _, out := range []string{logs.String(), fmt.Sprint(err), fmt.Sprint(merr), fmt.Sprint(perr)} {
		if strings.Contains(out, password) {
			t.Errorf("password shown in %q", out)
		}
	}
	if !strings.Contains(logs.String(), "store opened") {
		t.Errorf("log has no open event:\n%s", logs.String())
	}
}

// waitForLockWait waits until n sessions of dsn's database wait for a lock.
func waitForLockWait(t *testing.T, dsn string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("Connect() = %v", err)
	}
	defer conn.Close(context.Background())
	for {
		var waiting int
		err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting)
		if err != nil {
			t.Fatalf("waiting for %d sessions to wait on a lock: %v", n, err)
		}
		if waiting >= n {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func database(t *testing.T, dsn string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatalf("ParseConfig() = %v", err)
	}
	return cfg.Database
}

func schemaVersions(t *testing.T, dsn string) []int {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatalf("Connect() = %v", err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(t.Context(), "SELECT version FROM schema_migrations ORDER BY version")
	if err != nil {
		t.Fatalf("read schema_migrations: %v", err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatalf("read schema_migrations: %v", err)
	}
	return versions
}

func exec(t *testing.T, dsn, sql string, args ...any) {
	t.Helper()
	if err := tryExec(dsn, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func tryExec(dsn, sql string, args ...any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql, args...)
	return err
}

func must(t *testing.T, call string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s = %v, want nil", call, err)
	}
}
