package pgtest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/keyward/keyward/store/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestDSN checks that each DSN is its own empty database.
func TestDSN(t *testing.T) {
	ctx := t.Context()
	a, b := pgtest.DSN(t), pgtest.DSN(t)
	connA := connect(t, a)
	if _, err := connA.Exec(ctx, "CREATE TABLE only_in_a (x int)"); err != nil {
		t.Fatalf("CREATE TABLE in the first database = %v", err)
	}
	var nameA, nameB string
	must(t, connA.QueryRow(ctx, "SELECT current_database()").Scan(&nameA))
	connB := connect(t, b)
	must(t, connB.QueryRow(ctx, "SELECT current_database()").Scan(&nameB))
	if nameA == nameB {
		t.Fatalf("two DSN(t) calls gave the same database %q", nameA)
	}
	var exists bool
	must(t, connB.QueryRow(ctx, "SELECT to_regclass('only_in_a') IS NOT NULL").Scan(&exists))
	if exists {
		t.Error("a table created in the first database is visible in the second")
	}
}

// TestSchemaDSN checks that each SchemaDSN is its own empty schema, which
// unqualified names resolve to.
func TestSchemaDSN(t *testing.T) {
	ctx := t.Context()
	a := connect(t, pgtest.SchemaDSN(t))
	if _, err := a.Exec(ctx, "CREATE TABLE only_in_a (x int)"); err != nil {
		t.Fatalf("CREATE TABLE in the first schema = %v", err)
	}
	b := connect(t, pgtest.SchemaDSN(t))
	var schemaA, schemaB string
	must(t, a.QueryRow(ctx, "SELECT current_schema()").Scan(&schemaA))
	must(t, b.QueryRow(ctx, "SELECT current_schema()").Scan(&schemaB))
	if schemaA == schemaB || !strings.HasPrefix(schemaA, "keyward_test_") {
		t.Fatalf("current_schema() = %q and %q, want two keyward_test_ schemas", schemaA, schemaB)
	}
	var exists bool
	must(t, b.QueryRow(ctx, "SELECT to_regclass('only_in_a') IS NOT NULL").Scan(&exists))
	if exists {
		t.Error("a table created in the first schema is visible in the second")
	}
}

// TestClusterStopStart checks that a stopped cluster refuses connections and
// serves its data again after Start, on the same DSN.
func TestClusterStopStart(t *testing.T) {
	ctx := t.Context()
	c := pgtest.StartCluster(t)
	dsn := c.CreateDatabase(t)
	conn := connect(t, dsn)
	if _, err := conn.Exec(ctx, "CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)"); err != nil {
		t.Fatalf("seed = %v", err)
	}
	if err := c.Stop(); err != nil {
		t.Fatalf("Stop() = %v", err)
	}
	if _, err := conn.Exec(ctx, "SELECT 1"); err == nil {
		t.Error("query on a connection to a stopped cluster = nil, want an error")
	}
	_, err := pgx.Connect(ctx, dsn)
	if ce, ok := errors.AsType[*pgconn.ConnectError](err); !ok {
		t.Errorf("Connect to a stopped cluster = %v (%T), want a *pgconn.ConnectError", err, ce)
	}
	if err := c.Start(); err != nil {
		t.Fatalf("Start() = %v", err)
	}
	var x int
	must(t, connect(t, dsn).QueryRow(ctx, "SELECT x FROM kept").Scan(&x))
	if x != 42 {
		t.Errorf("SELECT x after restart = %d, want 42", x)
	}
}

// TestEnvDSN points KEYWARD_TEST_POSTGRES_DSN at a cluster, in both DSN
// forms: DSN and SchemaDSN create their databases there.
func TestEnvDSN(t *testing.T) {
	c := pgtest.StartCluster(t)
	cfg, err := pgx.ParseConfig(c.DSN())
	must(t, err)
	forms := map[string]string{
		"url":           c.DSN(),
		"keyword/value": fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable", cfg.Port),
	}
	for name, admin := range forms {
		t.Run(name, func(t *testing.T) {
			t.Setenv(pgtest.EnvDSN, admin)
			for _, dsn := range []string{pgtest.DSN(t), pgtest.SchemaDSN(t)} {
				got, err := pgx.ParseConfig(dsn)
				must(t, err)
				if got.Port != cfg.Port || !strings.HasPrefix(got.Database, "keyward_") {
					t.Errorf("DSN with %s=%q gives port %d, database %q; want port %d, a keyward_ database",
						pgtest.EnvDSN, admin, got.Port, got.Database, cfg.Port)
				}
				var one int
				must(t, connect(t, dsn).QueryRow(t.Context(), "SELECT 1").Scan(&one))
			}
		})
	}
}

// TestSkipWithoutBinaries checks that a missing server skips the test
// (unless PostgreSQL is required).
func TestSkipWithoutBinaries(t *testing.T) {
	t.Setenv(pgtest.EnvBinDir, t.TempDir())
	t.Setenv(pgtest.EnvRequireAll, "")
	t.Setenv(pgtest.EnvRequirePostgres, "")
	var skipped bool
	t.Run("StartCluster", func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		pgtest.StartCluster(t)
		t.Error("StartCluster without binaries returned")
	})
	if !skipped {
		t.Error("StartCluster without binaries did not skip")
	}
}

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatalf("Connect() = %v", err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
