package postgres

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/keyward/keyward/store"
)

// TestClassify maps server answers onto the store's sentinels: only what
// may succeed later becomes ErrUnavailable (a 503), never an
// authentication failure or a plain SQL error.
func TestClassify(t *testing.T) {
	pg := func(code string) error { return fmt.Errorf("wrapped: %w", &pgconn.PgError{Code: code}) }
	tests := []struct {
		name      string
		err       error
		acquiring bool
		want      error // nil: none of the sentinels
	}{
		{"no rows", pgx.ErrNoRows, false, store.ErrNotFound},
		{"unique violation", pg("23505"), false, store.ErrConflict},
		{"admin shutdown", pg("57P01"), false, store.ErrUnavailable},
		{"cannot connect now", pg("57P03"), true, store.ErrUnavailable},
		{"connection exception class", pg("08006"), false, store.ErrUnavailable},
		{"read-only standby after failover", pg("25006"), false, store.ErrUnavailable},
		{"too many connections", pg("53300"), true, store.ErrUnavailable},
		{"bad password while acquiring", pg("28P01"), true, nil},
		{"syntax error", pg("42601"), false, nil},
		{"undefined table", pg("42P01"), false, nil},
	}
	sentinels := []error{store.ErrNotFound, store.ErrConflict, store.ErrUnavailable}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := classify("op", tt.err, tt.acquiring)
			for _, s := range sentinels {
				if is := errors.Is(got, s); is != (s == tt.want) {
					t.Errorf("classify(%v) = %v; errors.Is(%v) = %v, want %v", tt.err, got, s, is, s == tt.want)
				}
			}
		})
	}
}
