package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// The record files share these helpers for the shapes their statements
// take. Each runs through Store.run, so pgx.ErrNoRows becomes ErrNotFound
// and the error names op; the SQL stays with the caller.

// result runs fn in mode m and returns what it returned (the zero T on
// error). fn may run more than once, as m allows.
func result[T any](ctx context.Context, s *Store, op string, m mode, fn func(ctx context.Context, q querier) (T, error)) (T, error) {
	var v T
	err := s.run(ctx, op, m, func(ctx context.Context, q querier) error {
		var err error
		v, err = fn(ctx, q)
		return err
	})
	if err != nil {
		var zero T
		return zero, err
	}
	return v, nil
}

// writeResult runs fn as Store.write does and returns what it returned
// (the zero T on error).
func writeResult[T any](ctx context.Context, s *Store, op string, fn func(ctx context.Context, tx pgx.Tx) (T, error)) (T, error) {
	return result(ctx, s, op, modeTx, func(ctx context.Context, q querier) (T, error) {
		return fn(ctx, q.(pgx.Tx))
	})
}

// getOne reads the row that sql selects with scan; ErrNotFound when there
// is none.
func getOne[T any](ctx context.Context, s *Store, op string, scan func(pgx.Row) (T, error), sql string, args ...any) (T, error) {
	return result(ctx, s, op, modeRead, func(ctx context.Context, q querier) (T, error) {
		return scan(q.QueryRow(ctx, sql, args...))
	})
}

// getAll reads every row that sql selects with scan, in its order.
func getAll[T any](ctx context.Context, s *Store, op string, scan func(pgx.Row) (T, error), sql string, args ...any) ([]T, error) {
	return result(ctx, s, op, modeRead, func(ctx context.Context, q querier) ([]T, error) {
		rows, err := q.Query(ctx, sql, args...)
		if err != nil {
			return nil, err
		}
		return collect(rows, scan)
	})
}

// collect scans every row with scan and closes rows; no rows give a nil
// slice.
func collect[T any](rows pgx.Rows, scan func(pgx.Row) (T, error)) ([]T, error) {
	return pgx.AppendRows([]T(nil), rows, func(row pgx.CollectableRow) (T, error) { return scan(row) })
}

// exec runs one writing statement (modeStatement).
func (s *Store) exec(ctx context.Context, op, sql string, args ...any) error {
	return s.statement(ctx, op, func(ctx context.Context, q querier) error {
		_, err := q.Exec(ctx, sql, args...)
		return err
	})
}

// insert runs the INSERT sql with the column values args gives for rec;
// when args rejects rec, it returns that error as op's, without a query.
func insert[T any](ctx context.Context, s *Store, op string, rec T, args func(T) ([]any, error), sql string) error {
	values, err := args(rec)
	if err != nil {
		return invalid(op, err)
	}
	return s.exec(ctx, op, sql, values...)
}

// execCount runs one writing statement (modeStatement) and returns how many
// rows it affected.
func (s *Store) execCount(ctx context.Context, op, sql string, args ...any) (int, error) {
	return result(ctx, s, op, modeStatement, func(ctx context.Context, q querier) (int, error) {
		tag, err := q.Exec(ctx, sql, args...)
		return int(tag.RowsAffected()), err
	})
}

// deleteOne runs a DELETE of one record by key; ErrNotFound when there was
// none.
func (s *Store) deleteOne(ctx context.Context, op, sql string, args ...any) error {
	return s.statement(ctx, op, func(ctx context.Context, q querier) error {
		tag, err := q.Exec(ctx, sql, args...)
		if err == nil && tag.RowsAffected() == 0 {
			return pgx.ErrNoRows
		}
		return err
	})
}

// applyUpdater returns updater(old), or the updater's error as an
// updaterError (returned to the caller unchanged), or errChangedKey when
// the result's key differs from old's.
func applyUpdater[T any, K comparable](old T, updater func(T) (T, error), key func(T) K) (T, error) {
	v, err := updater(old)
	if err != nil {
		return v, updaterError{err}
	}
	if key(v) != key(old) {
		return v, errChangedKey
	}
	return v, nil
}
