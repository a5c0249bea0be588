package bolt

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// compactTxSize is how many bytes of keys and values bbolt's Compact copies
// per write transaction of the new file: it bounds the memory a copy takes.
const compactTxSize = 16 << 20

// CompactOptions configures Compact.
type CompactOptions struct {
	// Timeout is how long Compact waits for the file lock. Default: 1s.
	Timeout time.Duration
	// Progress, when set, is called every ProgressEvery while the copy is
	// written (from another goroutine), and once at the end.
	Progress func(CompactProgress)
	// ProgressEvery is the interval of Progress calls. Default: 1s.
	ProgressEvery time.Duration
}

// CompactProgress is how far a compaction is.
type CompactProgress struct {
	// Written is the size of the copy so far, in bytes.
	Written int64
	// InUse estimates the copy's final size: the original's pages that
	// are not free, in bytes.
	InUse int64
}

// CompactResult is what Compact did.
type CompactResult struct {
	// Before and After are the file's sizes in bytes.
	Before, After int64
	// Records is the number of keys copied (records and index entries).
	Records int
}

// ErrLocked is returned by Compact when another process (a running
// keyward serve) holds the file.
var ErrLocked = errors.New("the file is in use by another process")

// Compact rewrites the database file at path without its free pages, with
// bbolt's Compact, while holding the file lock: it waits opts.Timeout for
// the lock, then fails with ErrLocked. The copy is written next to the
// file (path + ".compact"), flushed, checked (bbolt's consistency check
// and the same number of keys in every bucket) and given the original's
// mode and, where the platform has one, owner; only then is it renamed
// over path, an atomic swap: until that rename succeeds the original is
// untouched, and on any error the copy is removed.
func Compact(ctx context.Context, path string, opts CompactOptions) (res CompactResult, err error) {
	if opts.Timeout == 0 {
		opts.Timeout = time.Second
	}
	if opts.ProgressEvery <= 0 {
		opts.ProgressEvery = time.Second
	}
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("bolt: compact: %w", err)
	}
	info, err := os.Stat(path)
	if err != nil {
		return res, fmt.Errorf("bolt: compact: %w", err)
	}
	res.Before = info.Size()
	// Writable, so that the lock is exclusive: no keyward serve (or another
	// compact) can open the file until Compact ends.
	src, err := bolt.Open(path, 0, &bolt.Options{
		Timeout: opts.Timeout, FreelistType: bolt.FreelistMapType, NoFreelistSync: true,
	})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return res, fmt.Errorf("bolt: compact %s: %w (waited %s for its lock): stop the keyward using it first", path, ErrLocked, opts.Timeout)
	}
	if err != nil {
		return res, fmt.Errorf("bolt: compact %s: %w", path, err)
	}
	defer func() {
		if cerr := src.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("bolt: compact: close %s: %w", path, cerr)
		}
	}()
	var inUse int64
	err = src.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil || string(meta.Get(keyLayoutVersion)) != layoutVersion {
			return fmt.Errorf("not a Keyward store of layout version %s", layoutVersion)
		}
		inUse = tx.Size() - int64(src.Stats().FreePageN)*int64(tx.DB().Info().PageSize)
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("bolt: compact %s: %w", path, err)
	}

	tmp := path + ".compact"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return res, fmt.Errorf("bolt: compact: remove a stale %s: %w", tmp, err)
	}
	swapped := false
	defer func() {
		if !swapped {
			_ = os.Remove(tmp)
		}
	}()
	n, err := compactInto(ctx, src, tmp, inUse, opts)
	if err != nil {
		return res, fmt.Errorf("bolt: compact %s: %w", path, err)
	}
	res.Records = n
	if err := os.Chmod(tmp, info.Mode().Perm()); err != nil {
		return res, fmt.Errorf("bolt: compact: %w", err)
	}
	if err := sameOwner(tmp, info); err != nil {
		return res, fmt.Errorf("bolt: compact: give the copy the owner of %s: %w (run compact as that user)", path, err)
	}
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("bolt: compact: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return res, fmt.Errorf("bolt: compact: swap in the copy: %w", err)
	}
	swapped = true
	if err := syncDir(filepath.Dir(path)); err != nil {
		return res, fmt.Errorf("bolt: compact: %w", err)
	}
	if info, err := os.Stat(path); err == nil {
		res.After = info.Size()
	}
	return res, nil
}

// compactInto writes the compacted copy of src to tmp, flushes and checks
// it, and returns the number of keys copied.
func compactInto(ctx context.Context, src *bolt.DB, tmp string, inUse int64, opts CompactOptions) (int, error) {
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{
		Timeout: opts.Timeout, NoSync: true, FreelistType: bolt.FreelistMapType, NoFreelistSync: true,
	})
	if err != nil {
		return 0, err
	}
	defer func() { _ = dst.Close() }()

	report := func() {
		if opts.Progress == nil {
			return
		}
		p := CompactProgress{InUse: inUse}
		if info, err := os.Stat(tmp); err == nil {
			p.Written = info.Size()
		}
		opts.Progress(p)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(opts.ProgressEvery)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				report()
			}
		}
	}()
	err = bolt.Compact(dst, src, compactTxSize)
	close(stop)
	<-done
	if err != nil {
		return 0, fmt.Errorf("copy: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := dst.Sync(); err != nil {
		return 0, fmt.Errorf("flush the copy: %w", err)
	}
	report()
	n, err := sameKeys(src, dst)
	if err != nil {
		return 0, fmt.Errorf("check the copy: %w", err)
	}
	if err := dst.Close(); err != nil {
		return 0, fmt.Errorf("close the copy: %w", err)
	}
	return n, nil
}

// sameKeys runs bbolt's consistency check on dst and checks that each
// bucket of src has as many keys in dst; it returns the number of keys.
func sameKeys(src, dst *bolt.DB) (int, error) {
	total := 0
	err := src.View(func(stx *bolt.Tx) error {
		return dst.View(func(dtx *bolt.Tx) error {
			for err := range dtx.Check() {
				return err
			}
			return stx.ForEach(func(name []byte, sb *bolt.Bucket) error {
				db := dtx.Bucket(name)
				if db == nil {
					return fmt.Errorf("bucket %s missing", name)
				}
				want, got := sb.Stats().KeyN, db.Stats().KeyN
				if got != want {
					return fmt.Errorf("bucket %s has %d keys, the original %d", name, got, want)
				}
				total += want
				return nil
			})
		})
	})
	return total, err
}

// syncDir flushes a directory, so that a rename in it survives a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer func() { _ = d.Close() }()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
