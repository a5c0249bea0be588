package web

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"time"
)

// AdminBackup is what GET /admin/v1/backup needs from the store
// (*bolt.Store): a consistent copy of the whole file, written to the writer
// start returns once the copy's size is known.
type AdminBackup interface {
	Backup(ctx context.Context, start func(size int64) (io.Writer, error)) (int64, error)
}

// backupWriteTimeout replaces the admin listener's write timeout (60 s) for
// a backup, whose answer is the whole database file.
const backupWriteTimeout = time.Hour

// serveBackup streams the store's online copy as application/octet-stream
// with its exact Content-Length, so that a client can tell a complete copy
// from one cut short: once the first byte is sent the status cannot change,
// and an error then aborts the connection.
func (a *admin) serveBackup(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if a.backup == nil {
		writeAdminError(w, http.StatusNotFound, "not_found",
			"online backups are served for store.type bolt only; back PostgreSQL up with its own tools (pg_dump, base backups)")
		return
	}
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(backupWriteTimeout))
	started := false
	n, err := a.backup.Backup(ctx, func(size int64) (io.Writer, error) {
		h := w.Header()
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Length", strconv.FormatInt(size, 10))
		h.Set("Content-Disposition", `attachment; filename="keyward.db"`)
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		started = true
		return w, nil
	})
	if err != nil {
		a.log.ErrorContext(ctx, "admin backup failed", "event", "admin_backup_failed", "bytes", n, "err", err)
		if !started {
			writeAdminError(w, http.StatusInternalServerError, "server_error", "the backup failed; reference "+RequestID(ctx))
			return
		}
		panic(http.ErrAbortHandler) // the client sees a short body, not a complete file
	}
	a.log.InfoContext(ctx, "admin backup sent", "event", "admin_backup", "bytes", n)
}
