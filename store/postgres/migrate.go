package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// SchemaVersion is the schema version this build reads and writes: the
// number of the newest file in migrations/.
const SchemaVersion = 6

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationLockKey is the pg_advisory_lock key that serialises migrations
// of one database ("keyward" in ASCII).
const migrationLockKey int64 = 0x6b65797761726400

// migration is one file of migrations/, NNNN_name.sql.
type migration struct {
	version int
	name    string // file name without .sql
	sql     string
}

// loadMigrations returns the embedded migrations in order. Their versions
// must run 1, 2, … SchemaVersion without gaps.
func loadMigrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var out []migration
	for _, e := range entries { // ReadDir sorts by name
		name := strings.TrimSuffix(e.Name(), ".sql")
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %s: name must be NNNN_description.sql", e.Name())
		}
		if v != len(out)+1 {
			return nil, fmt.Errorf("migration %s: version %d, want %d (no gaps, no duplicates)", e.Name(), v, len(out)+1)
		}
		b, err := fs.ReadFile(migrationFiles, path.Join("migrations", e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		out = append(out, migration{version: v, name: name, sql: string(b)})
	}
	if len(out) != SchemaVersion {
		return nil, fmt.Errorf("%d migrations embedded, SchemaVersion is %d", len(out), SchemaVersion)
	}
	return out, nil
}

// Migrate brings the database at dsn up to SchemaVersion and returns the
// names of the migrations it applied (none when the schema was current).
// Each migration runs in its own transaction, recorded in the
// schema_migrations table; a session-level advisory lock serialises
// concurrent Migrate calls (and Opens with Options.Migrate), so that a
// second caller waits, then finds nothing to do. It refuses a database
// whose schema is newer than this build. The DSN is never logged.
func Migrate(ctx context.Context, dsn string, logger *slog.Logger) ([]string, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "store/postgres")
	if dsn == "" {
		return nil, errors.New("postgres: migrate: DSN is required")
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, classify("migrate: connect", err, true)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	return migrateConn(ctx, conn, logger)
}

// migrateConn applies the pending migrations on conn under the advisory lock.
func migrateConn(ctx context.Context, conn *pgx.Conn, logger *slog.Logger) (applied []string, err error) {
	migrations, err := loadMigrations()
	if err != nil {
		return nil, fmt.Errorf("postgres: migrate: %w", err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrationLockKey); err != nil {
		return nil, classify("migrate: take the migration lock", err, false)
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pingTimeout)
		defer cancel()
		if _, uerr := conn.Exec(uctx, "SELECT pg_advisory_unlock($1)", migrationLockKey); uerr != nil && err == nil {
			err = classify("migrate: release the migration lock", uerr, false)
		}
	}()
	const createTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`
	if _, err := conn.Exec(ctx, createTable); err != nil {
		return nil, classify("migrate: create schema_migrations", err, false)
	}
	version, err := currentVersion(ctx, conn)
	if err != nil {
		return nil, classify("migrate: read schema version", err, false)
	}
	if version > SchemaVersion {
		return nil, fmt.Errorf("postgres: migrate: %w", newerSchemaError(version))
	}
	for _, m := range migrations[version:] {
		err := pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{}, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name)
			return err
		})
		if err != nil {
			return applied, classify("migrate: apply "+m.name, err, false)
		}
		logger.InfoContext(ctx, "schema migration applied", "version", m.version, "name", m.name)
		applied = append(applied, m.name)
	}
	return applied, nil
}

// currentVersion returns the highest applied migration, 0 for a database
// without schema_migrations.
func currentVersion(ctx context.Context, conn *pgx.Conn) (int, error) {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass('schema_migrations') IS NOT NULL").Scan(&exists); err != nil {
		return 0, err
	}
	if !exists {
		return 0, nil
	}
	var v int
	err := conn.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&v)
	return v, err
}

// checkVersion refuses a schema this build cannot use without migrating.
func checkVersion(version int) error {
	switch {
	case version > SchemaVersion:
		return newerSchemaError(version)
	case version < SchemaVersion:
		return fmt.Errorf("database schema is at version %d, this keyward needs version %d: run `keyward migrate` "+
			"(keyward serve migrates by itself at start) and start again", version, SchemaVersion)
	}
	return nil
}

func newerSchemaError(version int) error {
	return fmt.Errorf("database schema is at version %d, newer than version %d that this keyward knows: "+
		"run the keyward release that ran `keyward migrate` on it, never an older one", version, SchemaVersion)
}
