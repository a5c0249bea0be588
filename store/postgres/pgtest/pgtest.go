// Package pgtest gives tests fresh, isolated PostgreSQL databases.
//
// DSN(t) creates an empty database with a random name and drops it when the
// test ends. The server is the one at KEYWARD_TEST_POSTGRES_DSN (a role that
// may CREATE DATABASE) when that is set; otherwise one throwaway cluster per
// test process, started from the PostgreSQL binaries in BinDir on 127.0.0.1
// at a random port, with its data and socket in a temporary folder (no
// fsync: a crash loses it, which is the point). StartCluster(t) always
// starts a cluster of its own, which a test may stop and start again to
// simulate an outage.
//
// Without a usable server the tests skip with a one-line reason, or fail
// when KEYWARD_TEST_REQUIRE_ALL=1 (or KEYWARD_TEST_REQUIRE_POSTGRES=1).
//
// Packages using DSN should run their tests through Main, so that the shared
// cluster stops when they end:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// Each postgres process also gets SIGTERM when the test process dies, so
// none outlives `go test`, even one killed by -timeout; the folder such a
// cluster leaves behind is deleted by the next test process that starts
// one.
//
// It is a test helper: only _test.go files import it.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Environment variables read by this package.
const (
	// EnvDSN names a server to create the test databases on, as a
	// superuser or a role with CREATEDB.
	EnvDSN = "KEYWARD_TEST_POSTGRES_DSN"
	// EnvUser is the account that runs the throwaway cluster when the tests
	// run as root (initdb refuses root). Default: nobody.
	EnvUser = "KEYWARD_TEST_POSTGRES_USER"
	// EnvBinDir overrides BinDir.
	EnvBinDir = "KEYWARD_TEST_POSTGRES_BIN"
	// EnvRequireAll (and EnvRequirePostgres) turn a skip for want of
	// PostgreSQL into a failure.
	EnvRequireAll      = "KEYWARD_TEST_REQUIRE_ALL"
	EnvRequirePostgres = "KEYWARD_TEST_REQUIRE_POSTGRES"
)

// BinDir is where the PostgreSQL server binaries (initdb, postgres) are
// looked for, unless KEYWARD_TEST_POSTGRES_BIN is set.
const BinDir = "/usr/lib/postgresql/15/bin"

// adminTimeout bounds CREATE and DROP DATABASE.
const adminTimeout = 30 * time.Second

var shared struct {
	once    sync.Once
	cluster *Cluster
	err     error
	skip    string
}

// DSN returns a connection string for a new, empty database that no other
// test uses, dropped (with any connection left to it) when t ends.
func DSN(t testing.TB) string {
	t.Helper()
	if dsn := os.Getenv(EnvDSN); dsn != "" {
		return createDatabase(t, dsn)
	}
	return sharedCluster(t).CreateDatabase(t)
}

// SchemaDSN returns a connection string whose search_path is a new, empty
// schema, in a database shared by the tests of this process, dropped (with
// everything in it) when t ends. Creating a schema is much cheaper than
// creating a database; code under test must use unqualified names.
// Database-wide objects (advisory locks, pg_stat_activity) are shared.
func SchemaDSN(t testing.TB) string {
	t.Helper()
	admin := os.Getenv(EnvDSN)
	if admin == "" {
		admin = sharedCluster(t).DSN()
	}
	db, err := sharedDatabase(admin)
	if err != nil {
		t.Fatalf("pgtest: create the database for schemas: %v", err)
	}
	dsn := withDatabase(admin, db)
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	schema := "keyward_test_" + randomHex()
	name := pgx.Identifier{schema}.Sanitize()
	if err := adminExec(ctx, dsn, "CREATE SCHEMA "+name); err != nil {
		t.Fatalf("pgtest: create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
		defer cancel()
		_ = adminExec(ctx, dsn, "DROP SCHEMA IF EXISTS "+name+" CASCADE")
	})
	return withParam(dsn, "search_path", schema)
}

var sharedDatabases struct {
	mu    sync.Mutex
	names map[string]string // admin DSN → database name
}

// sharedDatabase returns the name of this process's database on the server
// at admin for SchemaDSN, creating it on first use; Main drops it.
func sharedDatabase(admin string) (string, error) {
	sharedDatabases.mu.Lock()
	defer sharedDatabases.mu.Unlock()
	if name, ok := sharedDatabases.names[admin]; ok {
		return name, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	name := "keyward_schemas_" + randomHex()
	if err := adminExec(ctx, admin, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", err
	}
	if sharedDatabases.names == nil {
		sharedDatabases.names = map[string]string{}
	}
	sharedDatabases.names[admin] = name
	return name, nil
}

// Main runs the tests, then drops the database of SchemaDSN and stops the
// shared cluster, and exits with the tests' status.
func Main(m *testing.M) {
	code := m.Run()
	sharedDatabases.mu.Lock()
	for admin, name := range sharedDatabases.names {
		dropDatabase(admin, name)
	}
	sharedDatabases.mu.Unlock()
	if c := shared.cluster; c != nil {
		if err := c.remove(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: stop the shared cluster: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}

// sharedCluster returns the cluster of this test process, starting it on
// first use; it skips or fails t when there is none.
func sharedCluster(t testing.TB) *Cluster {
	t.Helper()
	shared.once.Do(func() {
		if reason := unavailable(); reason != "" {
			shared.skip = reason
			return
		}
		shared.cluster, shared.err = startCluster()
	})
	switch {
	case shared.skip != "":
		skip(t, shared.skip)
	case shared.err != nil:
		t.Fatalf("pgtest: start the shared PostgreSQL cluster: %v", shared.err)
	}
	return shared.cluster
}

// skip skips t, or fails it when the environment requires PostgreSQL.
func skip(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv(EnvRequireAll) == "1" || os.Getenv(EnvRequirePostgres) == "1" {
		t.Fatalf("pgtest: %s (required: %s or %s is 1)", reason, EnvRequireAll, EnvRequirePostgres)
	}
	t.Skipf("pgtest: %s", reason)
}

// createDatabase creates a database named at random on the server at
// admin, drops it when t ends, and returns its DSN.
func createDatabase(t testing.TB, admin string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	name := "keyward_test_" + randomHex()
	if err := adminExec(ctx, admin, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() { dropDatabase(admin, name) })
	return withDatabase(admin, name)
}

// dropDatabase drops name, closing the connections left to it. Errors are
// ignored: the database is a throwaway.
func dropDatabase(admin, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	_ = adminExec(ctx, admin, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
}

// adminExec runs one statement on a new connection to admin.
func adminExec(ctx context.Context, admin, sql string) error {
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.Background()) }()
	_, err = conn.Exec(ctx, sql)
	return err
}

// withDatabase returns dsn with its database replaced by name, for URL
// (postgres://) and keyword/value DSNs.
func withDatabase(dsn, name string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err == nil {
			u.Path = "/" + name
			return u.String()
		}
	}
	return dsn + " dbname=" + name // a later keyword wins
}

// withParam returns dsn with the run-time parameter key set to value (value
// must need no quoting).
func withParam(dsn, key, value string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err == nil {
			q := u.Query()
			q.Set(key, value)
			u.RawQuery = q.Encode()
			return u.String()
		}
	}
	return dsn + " " + key + "=" + value
}

func randomHex() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
