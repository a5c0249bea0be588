package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/ory/fosite"

	"github.com/keyward/keyward/cmd/config"
	"github.com/keyward/keyward/store"
)

var _ store.Store = (*Store)(nil)

const (
	// maxAttempts bounds the runs of one transaction that fails with a
	// serialization failure or a deadlock.
	maxAttempts = 8
	// healthCheckPeriod is how often the pool checks its idle connections
	// (and drops the dead ones after an outage).
	healthCheckPeriod = 15 * time.Second
	// pingTimeout bounds the liveness ping of a connection idle for more
	// than a second before it is handed out.
	pingTimeout = 5 * time.Second
)

// Options configures Open.
type Options struct {
	// DSN is a libpq connection string or postgres:// URL. Required. It is
	// never logged (it may hold a password). In keyward.yaml's store
	// section ${ENV} is expanded in it.
	DSN string `yaml:"dsn,omitempty"`
	// DSNFile (keyward.yaml) names a file holding DSN; cmd reads it
	// (secrets resolve in one place). Set DSN or DSNFile.
	DSNFile string `yaml:"dsnFile,omitempty"`
	// Logger receives open, migration and retry events. Default: discard.
	Logger *slog.Logger `yaml:"-"`
	// MaxConns is the size of the connection pool. Default (0): pgxpool's,
	// the greater of 4 and the number of CPUs; a pool_max_conns in the DSN
	// also works. The replicas together must stay below the server's
	// max_connections.
	MaxConns int32 `yaml:"maxConns,omitempty"`
	// Migrate applies pending schema migrations at Open. When false, Open
	// refuses a database whose schema is older than SchemaVersion: run
	// `keyward migrate` first.
	Migrate bool `yaml:"-"`
}

// MaxConnsLimit bounds MaxConns in keyward.yaml: PostgreSQL's own default
// max_connections is 100, shared by every replica.
const MaxConnsLimit = 1000

// DSNHint shows how to write a connection string.
const DSNHint = "postgres://USER:PASSWORD@HOST:5432/DATABASE?sslmode=verify-full (or host=… dbname=… user=…)"

// Validate reports the problems of the settings keyward.yaml's store
// section gives (type postgres), each a *config.FieldError named by its
// path in that section. It does no I/O and never quotes the DSN.
func (o Options) Validate() error {
	var p config.Problems
	switch {
	case o.DSN == "" && o.DSNFile == "":
		p.Add("dsnFile", "set it (or store.dsn) to a file holding the connection string, e.g. %s", DSNHint)
	case o.DSN != "" && o.DSNFile != "":
		p.Add("dsn", "set either dsn or dsnFile, not both")
	}
	if o.MaxConns < 0 || o.MaxConns > MaxConnsLimit {
		p.Add("maxConns", "is %d; use 1 to %d, or leave it out for the default (at least 4, one per CPU)", o.MaxConns, MaxConnsLimit)
	}
	return p.Err()
}

// Store is a store.Store on a PostgreSQL database, through a pgx pool. It is
// safe for concurrent use, also by several processes on one database.
type Store struct {
	pool   *pgxpool.Pool
	logger *slog.Logger
	closed atomic.Bool
	close  sync.Once
	stats  writeStats // see Stats

	// beforeCommit, when set (by tests only, see export_test.go), is called
	// in every write transaction before COMMIT; an error it returns aborts
	// that attempt as a database error would.
	beforeCommit func(op string) error
}

// errClosed is returned by every call after Close.
var errClosed = errors.New("store is closed")

// errSerialization marks a transaction that kept losing races: fosite turns
// it into "concurrent requests, retry".
var errSerialization error = fosite.ErrSerializationFailure

// Open connects to opts.DSN, checks (or, with opts.Migrate, brings up to
// date) the schema, and returns the store. A database that cannot be reached
// gives an error wrapping store.ErrUnavailable.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	logger := opts.Logger.With("component", "store/postgres")
	if opts.DSN == "" {
		return nil, errors.New("postgres: open: DSN is required")
	}
	cfg, err := pgxpool.ParseConfig(opts.DSN)
	if err != nil { // pgconn redacts the password in parse errors
		return nil, fmt.Errorf("postgres: open: parse DSN: %w", err)
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	cfg.HealthCheckPeriod = healthCheckPeriod
	cfg.PingTimeout = pingTimeout
	pool, err := pgxpool.NewWithConfig(ctx, cfg) // connects lazily
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	s := &Store{pool: pool, logger: logger}
	applied, version, err := s.prepareSchema(ctx, opts.Migrate)
	if err != nil {
		pool.Close()
		return nil, err
	}
	c := cfg.ConnConfig
	logger.InfoContext(ctx, "store opened", "host", c.Host, "port", c.Port, "database", c.Database,
		"user", c.User, "schema_version", version, "migrations_applied", applied, "max_conns", cfg.MaxConns)
	return s, nil
}

// prepareSchema migrates (migrate set) or checks the schema on one pooled
// connection.
func (s *Store) prepareSchema(ctx context.Context, migrate bool) (applied []string, version int, err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, 0, classify("open", err, true)
	}
	defer conn.Release()
	if migrate {
		applied, err = migrateConn(ctx, conn.Conn(), s.logger)
		if err != nil {
			return nil, 0, err
		}
		return applied, SchemaVersion, nil
	}
	version, err = currentVersion(ctx, conn.Conn())
	if err != nil {
		return nil, 0, classify("open: read schema version", err, false)
	}
	if err := checkVersion(version); err != nil {
		return nil, 0, fmt.Errorf("postgres: open: %w", err)
	}
	return nil, version, nil
}

// Ping checks that the database answers (for readiness probes). An outage
// gives an error wrapping store.ErrUnavailable.
func (s *Store) Ping(ctx context.Context) error {
	return s.read(ctx, "ping", func(ctx context.Context, q querier) error {
		_, err := q.Exec(ctx, ";")
		return err
	})
}

// Close closes the pool, waiting for connections in use to be returned.
// Calls after Close return an error; a second Close returns nil.
func (s *Store) Close() error {
	s.close.Do(func() {
		s.closed.Store(true)
		s.pool.Close()
	})
	return nil
}

// querier is what reads and transaction bodies use: a pooled connection or
// a transaction.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// mode is how run runs its function.
type mode int

const (
	// modeRead: reads outside a transaction (each statement is atomic on
	// its own). A connection lost before fn finished is retried once on a
	// new connection: reads have no effect to repeat.
	modeRead mode = iota
	// modeStatement: one writing statement in autocommit mode (one round
	// trip). Retried after a serialization failure or deadlock (the
	// statement had no effect), never after a lost connection (it may have
	// committed).
	modeStatement
	// modeTx: a READ COMMITTED transaction. Retried after a serialization
	// failure or deadlock, and once when the connection is lost before
	// COMMIT (the server rolled it back).
	modeTx
)

// read runs fn in modeRead.
func (s *Store) read(ctx context.Context, op string, fn func(ctx context.Context, q querier) error) error {
	return s.run(ctx, op, modeRead, fn)
}

// statement runs fn, which must run one statement, in modeStatement.
func (s *Store) statement(ctx context.Context, op string, fn func(ctx context.Context, q querier) error) error {
	return s.run(ctx, op, modeStatement, fn)
}

// write runs fn in a READ COMMITTED transaction (modeTx). The whole
// transaction, fn included, may run more than once (at most maxAttempts
// runs after serialization failures and deadlocks, with jittered
// backoff), so fn must be safe to re-run; updaters are called inside it.
func (s *Store) write(ctx context.Context, op string, fn func(ctx context.Context, tx pgx.Tx) error) error {
	return s.run(ctx, op, modeTx, func(ctx context.Context, q querier) error {
		return fn(ctx, q.(pgx.Tx))
	})
}

// run runs fn in mode m, retrying as m allows, and maps its error.
func (s *Store) run(ctx context.Context, op string, m mode, fn func(ctx context.Context, q querier) error) error {
	if s.closed.Load() {
		return fmt.Errorf("postgres: %s: %w", op, errClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("postgres: %s: %w", op, err)
	}
	if m != modeRead {
		s.stats.writes.Add(1)
	}
	reconnected := false
	for attempt := 1; ; attempt++ {
		stage, err := s.attempt(ctx, op, m, fn)
		if err == nil {
			return nil
		}
		if u, ok := errors.AsType[updaterError](err); ok {
			return u.err
		}
		switch {
		case stage == stageAcquire:
			return classify(op, err, true)
		case ctx.Err() != nil:
			return fmt.Errorf("postgres: %s: %w", op, errors.Join(ctx.Err(), err))
		case s.closed.Load():
			return fmt.Errorf("postgres: %s: %w", op, errClosed)
		case isConnLoss(err) && m != modeStatement && stage != stageCommit && !reconnected:
			// A stale pooled connection (the server restarted): nothing
			// was committed; try once on a fresh one.
			reconnected = true
			attempt--
			continue
		case isRetryable(err) && attempt < maxAttempts:
			s.logger.DebugContext(ctx, "transaction retried", "op", op, "attempt", attempt, "sqlstate", sqlState(err))
			if err := sleep(ctx, backoff(attempt)); err != nil {
				return fmt.Errorf("postgres: %s: %w", op, err)
			}
			continue
		case isRetryable(err):
			return fmt.Errorf("postgres: %s: gave up after %d attempts: %w: %w", op, attempt, errSerialization, err)
		}
		return classify(op, err, false)
	}
}

type stage int

const (
	stageAcquire stage = iota
	stageBody
	stageCommit
)

// attempt runs fn once and reports at which stage it failed.
func (s *Store) attempt(ctx context.Context, op string, m mode, fn func(ctx context.Context, q querier) error) (stage, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return stageAcquire, err
	}
	defer conn.Release()
	if m != modeTx {
		err := fn(ctx, conn)
		if err == nil && m == modeStatement {
			s.stats.commits.Add(1) // autocommit
		}
		return stageBody, err
	}
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return stageBody, err
	}
	err = fn(ctx, tx)
	if err == nil && s.beforeCommit != nil {
		err = s.beforeCommit(op)
	}
	if err != nil {
		// Roll back even when ctx is cancelled, so that the connection
		// goes back to the pool clean; pgx closes it if that fails.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = tx.Rollback(rctx)
		return stageBody, err
	}
	if err := tx.Commit(ctx); err != nil {
		return stageCommit, err
	}
	s.stats.commits.Add(1)
	return stageBody, nil
}

// backoff is the pause before run attempt+1: exponential from 2 ms, capped
// at 100 ms, with full jitter so that colliding transactions spread out.
func backoff(attempt int) time.Duration {
	d := min(2*time.Millisecond<<(attempt-1), 100*time.Millisecond)
	return rand.N(d) + time.Millisecond
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// updaterError carries an error returned by a caller's updater; the contract
// says it is returned unchanged.
type updaterError struct{ err error }

func (u updaterError) Error() string { return u.err.Error() }
func (u updaterError) Unwrap() error { return u.err }

// errChangedKey: an updater changed the fields that key its record.
var errChangedKey = errors.New("updater changed the record key")

// SQLSTATEs the store acts on.
const (
	codeUniqueViolation      = "23505"
	codeSerializationFailure = "40001"
	codeDeadlockDetected     = "40P01"
	codeAdminShutdown        = "57P01"
	codeCrashShutdown        = "57P02"
	codeCannotConnectNow     = "57P03"
	codeReadOnlyTransaction  = "25006" // a failover left us on a standby
	codeTooManyConnections   = "53300"
	codeUndefinedTable       = "42P01"
)

func sqlState(err error) string {
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok {
		return pe.Code
	}
	return ""
}

// isRetryable: the transaction lost a race and may simply run again.
func isRetryable(err error) bool {
	c := sqlState(err)
	return c == codeSerializationFailure || c == codeDeadlockDetected
}

// isConnLoss: the server or the connection to it went away, cannot be
// reached, is full, or is (after a failover) a read-only standby: the
// request may succeed later, so the broker answers 503. Authentication
// failures (class 28) are configuration errors, not outages.
func isConnLoss(err error) bool {
	if c := sqlState(err); c != "" {
		switch {
		case c == codeAdminShutdown, c == codeCrashShutdown, c == codeCannotConnectNow,
			c == codeReadOnlyTransaction, c == codeTooManyConnections:
			return true
		case strings.HasPrefix(c, "08"): // connection exception
			return true
		}
		return false
	}
	if _, ok := errors.AsType[*pgconn.ConnectError](err); ok {
		return true
	}
	// Anything else from the wire (EOF, reset, broken pipe, timeouts, a
	// connection pgx closed after such an error) is a lost connection: pgx
	// reports server-side errors as *PgError, handled above.
	if errors.Is(err, pgconn.ErrConnClosed) || pgconn.Timeout(err) {
		return true
	}
	if _, ok := errors.AsType[net.Error](err); ok {
		return true
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE)
}

// classify names the operation in err and maps it to the store sentinels.
// acquiring says err came from taking a connection from the pool, where
// any failure (a refused dial, a deadline while the server is down) means
// the database cannot be reached.
func classify(op string, err error, acquiring bool) error {
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
	case sqlState(err) == codeUniqueViolation:
		return fmt.Errorf("postgres: %s: %w (%w)", op, store.ErrConflict, err)
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("postgres: %s: %w", op, err)
	case isConnLoss(err) || (acquiring && !isAuthError(err)):
		return fmt.Errorf("postgres: %s: %w: %w", op, store.ErrUnavailable, err)
	}
	return fmt.Errorf("postgres: %s: %w", op, err)
}

func isAuthError(err error) bool { return strings.HasPrefix(sqlState(err), "28") }

// utc normalises t as the contract requires: UTC, truncated to µs.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

// ts is the parameter for a timestamptz column: NULL for the zero time.
func ts(t time.Time) pgtype.Timestamptz {
	if t.IsZero() {
		return pgtype.Timestamptz{}
	}
	return pgtype.Timestamptz{Time: utc(t), Valid: true}
}

// utcTime scans a timestamptz into a time.Time: NULL as the zero time,
// anything else in UTC (pgx returns local time).
type utcTime time.Time

func (u *utcTime) ScanTimestamptz(v pgtype.Timestamptz) error {
	if !v.Valid {
		*u = utcTime{}
		return nil
	}
	*u = utcTime(v.Time.UTC())
	return nil
}

// scanTime is the scan target for a timestamptz column into *t.
func scanTime(t *time.Time) *utcTime { return (*utcTime)(t) }

// checkKey validates a string that keys or indexes a record: PostgreSQL
// text cannot hold a NUL byte.
func checkKey(name, v string, required bool) error {
	if required && v == "" {
		return fmt.Errorf("%s is empty", name)
	}
	if strings.Contains(v, "\x00") {
		return fmt.Errorf("%s contains a NUL byte", name)
	}
	return nil
}

// invalid wraps a validation error of op.
func invalid(op string, err error) error { return fmt.Errorf("postgres: %s: %w", op, err) }
