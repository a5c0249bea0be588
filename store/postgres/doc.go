// Package postgres is Keyward's PostgreSQL store: an implementation of
// store.Store on a pgx connection pool (github.com/jackc/pgx/v5/pgxpool),
// for deployments that run several broker processes on one database.
//
// Schema. Every record type has a table; the fields that are keys, indexes
// or collected by expiry (ids, kind, signature, state, request_id, subject,
// session_id, expires_at, seq) are columns, as are the other scalar fields;
// nested values (an identity, an authorize form, the signing keys) are
// JSONB. Key columns use COLLATE "C" (byte order, as in store/bolt). Times
// are timestamptz, NULL for the zero time, read back in UTC at µs precision.
// The key set is one row (version 0 until the first UpdateKeySet); the
// highest revocation and audit Seqs are rows of seq_counters.
//
// Migrations. The schema is the SQL files in migrations/, embedded in the
// binary and numbered 1..SchemaVersion. Migrate (the `keyward migrate`
// command), or Open with Options.Migrate, applies the missing ones, each in
// one transaction recorded in schema_migrations, under pg_advisory_lock on
// a fixed key: concurrent migrators queue, and the later ones find nothing
// to do. Open refuses a schema newer than SchemaVersion (an older binary
// must not write a newer schema), and, without Options.Migrate, an older one.
//
// Isolation and retries. A write of several statements is a READ COMMITTED
// transaction. Updaters read their record with SELECT … FOR UPDATE, so
// concurrent writers of one record queue on its row lock and each reads the
// latest committed version: no update is lost, and the updater normally runs
// once (READ COMMITTED rather than REPEATABLE READ, which would abort and
// re-run every writer that queued behind another). Apply (a store.Batch) is
// one such transaction: its GrantUpdates and SubjectUpserts lock their rows
// the same way, so of concurrent batches with the same precondition the
// later ones see the first one's result and fail; its writes are
// pipelined behind the next statement that needs an answer, so a refresh
// (one update, one create) costs four round trips: BEGIN, the locking
// SELECT, the writes, COMMIT. A write of one
// statement (a create, a delete, an append) runs in autocommit mode, in
// one round trip. Seqs come from a counter row that the appending statement
// increments, so they are assigned without gaps and in commit order, and a
// rolled-back append gives its Seq back. A transaction or statement that
// fails with a serialization failure (SQLSTATE 40001, for example a hot
// standby conflict) or a deadlock (40P01, rows locked in different orders)
// had no effect and runs again, updater included, up to 8 times with
// jittered exponential backoff; after that the error wraps
// fosite.ErrSerializationFailure, which fosite answers as "concurrent
// requests, retry". Reads are single statements outside a transaction;
// ListRevocations reads the counter first and lists only entries up to it,
// which are all committed.
//
// Errors. No row → store.ErrNotFound; unique violation (23505) on a create,
// or on an update moving a login attempt onto a taken State →
// store.ErrConflict; an updater's error is returned unchanged. The database
// being unreachable — a refused or failed connection (pgconn.ConnectError),
// a pool acquire that times out, a lost connection (EOF, reset), or the
// server shutting down (57P01, 57P02, 57P03, class 08) — gives an error
// wrapping store.ErrUnavailable, for the broker to answer 503. A read, or
// a transaction whose connection dies before COMMIT (the server rolls it
// back), runs once more on a fresh connection; a COMMIT or an autocommit
// write cut off is not retried (its outcome is unknown) and reports
// ErrUnavailable. pgxpool replaces dead connections by itself: idle ones are
// pinged before use and health-checked every 15 s, so the store recovers
// when the database returns, without a reopen. A cancelled ctx returns
// ctx.Err(), wrapped. The DSN is never logged.
//
// Only cmd imports this package. It imports the standard library, store,
// config (Options is keyward.yaml's store section for type postgres), pgx
// and fosite (for its serialization-failure error) only.
package postgres
