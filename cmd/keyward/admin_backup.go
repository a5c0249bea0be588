package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	bbolt "go.etcd.io/bbolt"

	"github.com/keyward/keyward/store"
	"github.com/keyward/keyward/store/bolt"
	"github.com/keyward/keyward/web"
)

// adminBackup is the admin API's online copy for a bbolt store, nil for
// PostgreSQL (whose backups are the database's business).
func adminBackup(st store.Store) web.AdminBackup {
	if b, ok := st.(*bolt.Store); ok {
		return b
	}
	return nil
}

func (a *adminCLI) backupCommand() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "backup -o FILE",
		Short: "Copy the running broker's bbolt file, consistently, without stopping it",
		Long: `Download a consistent copy of the running broker's bbolt file (store.type
bolt) through the admin API (GET /admin/v1/backup): the file as of one
moment, taken in a read transaction while the broker goes on serving. The
copy is written to FILE.partial, checked (the size the broker announced,
then bbolt's consistency check), flushed, and renamed to FILE; FILE must not
exist. Restore by stopping keyward and putting the copy at store.path.

The copy holds the signing keys (sealed), sessions, refresh families and
the audit log: keep it as secret as the keys. PostgreSQL stores answer 404:
back them up with the database's own tools.`,
		Example: `  keyward admin backup --server http://127.0.0.1:8081 --token-file /etc/keyward/admin-token \
    -o /backup/keyward-$(date -u +%Y%m%dT%H%M%SZ).db`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.backup(cmd, out) },
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "file to write the copy to (must not exist)")
	return cmd
}

// backup implements `keyward admin backup`. --timeout does not bound the
// download: a large file may take its time.
func (a *adminCLI) backup(cmd *cobra.Command, out string) (err error) {
	if out == "" {
		return usageError("--output (-o) is required: the file to write the copy to")
	}
	if _, err := os.Lstat(out); err == nil {
		return usageError("%s exists; name a new file", out)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return usageError("%w", err)
	}
	ctx := cmd.Context()
	start := time.Now()
	resp, err := a.send(ctx, "GET", "backup", nil, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	want, err := strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64)
	if err != nil {
		return errors.New("the broker's answer has no Content-Length: is --server a keyward admin API?")
	}
	tmp := out + ".partial"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return usageError("%w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	n, err := io.Copy(f, resp.Body)
	if err != nil {
		return fmt.Errorf("download cut short after %d of %d bytes: %w", n, want, err)
	}
	if n != want {
		return fmt.Errorf("download cut short: %d of %d bytes", n, want)
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := checkBoltFile(tmp); err != nil {
		return fmt.Errorf("the copy does not check out: %w", err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(out)); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	fmt.Fprintf(cmd.OutOrStdout(), "Wrote %s: %s, consistent as of the start of the download, in %s.\n",
		out, mib(n), time.Since(start).Round(10*time.Millisecond))
	return nil
}

// checkBoltFile runs bbolt's consistency check on the file at path, opened
// read-only.
func checkBoltFile(path string) error {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return err
	}
	defer func() { _ = db.Close() }()
	return db.View(func(tx *bbolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	})
}
