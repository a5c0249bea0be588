package bolt

import (
	"context"
	"fmt"
	"io"

	bolt "go.etcd.io/bbolt"
)

// Backup writes a consistent copy of the whole database file while the
// store stays in use: bbolt's Tx.WriteTo inside one read transaction, so
// the copy is the file as of that transaction's start, and writers go on
// meanwhile. start is called once, inside the transaction, with the copy's
// exact size, and returns where to write it (an HTTP handler sets
// Content-Length there). The copy is a Keyward file like any other: it
// opens with Open (or keyward serve) and needs no conversion.
//
// A read transaction pins the pages it sees: while a backup runs, pages
// freed by new commits are not reused, so a slow reader of a busy store
// makes the file grow by what is written meanwhile. Backup returns the
// number of bytes written; it stops with ctx's error when ctx ends.
func (s *Store) Backup(ctx context.Context, start func(size int64) (io.Writer, error)) (int64, error) {
	var n int64
	err := s.view(ctx, "backup", func(tx *bolt.Tx) error {
		w, err := start(tx.Size())
		if err != nil {
			return err
		}
		n, err = tx.WriteTo(ctxWriter{ctx: ctx, w: w})
		if cerr := ctx.Err(); err != nil && cerr != nil {
			return fmt.Errorf("after %d bytes: %w", n, cerr) // bbolt does not wrap its writer's error
		}
		if err != nil {
			return fmt.Errorf("after %d bytes: %w", n, err)
		}
		return nil
	})
	return n, err
}

// ctxWriter fails writes once ctx has ended.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}
