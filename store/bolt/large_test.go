package bolt_test

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"
)

// TestLargeFileCosts measures, on a grown and fragmented file, what the
// freelist settings cost: the time to open the file (Keyward's options
// rebuild the freelist by walking the file; bbolt's defaults read the
// stored list) and the time of a small fsynced commit (bbolt's defaults
// rewrite and fsync the whole freelist in every commit). It asserts
// nothing about speed; it only runs when KEYWARD_BOLT_LARGE_MB names the
// file size in MiB, e.g.
//
//	KEYWARD_BOLT_LARGE_MB=400 go test -run TestLargeFileCosts -v ./store/bolt/
//
// The figures are in docs/deployment.md.
func TestLargeFileCosts(t *testing.T) {
	mb, _ := strconv.Atoi(os.Getenv("KEYWARD_BOLT_LARGE_MB"))
	if mb <= 0 {
		t.Skip("set KEYWARD_BOLT_LARGE_MB to measure open and commit times on a large file")
	}
	dir := t.TempDir()
	if d := os.Getenv("KEYWARD_BOLT_LARGE_DIR"); d != "" {
		dir = d
	}
	path := filepath.Join(dir, "large.db")
	keyward := &bbolt.Options{FreelistType: bbolt.FreelistMapType, NoFreelistSync: true, InitialMmapSize: 256 << 20}
	defaults := &bbolt.Options{}

	// Grow: records of 2 KB (a rotated refresh grant's size), then delete
	// four in five, spread over the file, as expiry does.
	const size = 2048
	n := mb << 20 / size
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{NoSync: true, FreelistType: bbolt.FreelistMapType, NoFreelistSync: true})
	if err != nil {
		t.Fatal(err)
	}
	db.NoSync = true
	val := make([]byte, size)
	key := func(i int) []byte { return binary.BigEndian.AppendUint64(nil, uint64(i)) }
	for start := 0; start < n; start += 10000 {
		err := db.Update(func(tx *bbolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("grants"))
			if err != nil {
				return err
			}
			for i := start; i < min(n, start+10000); i++ {
				if err := b.Put(key(i), val); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for start := 0; start < n; start += 10000 {
		err := db.Update(func(tx *bbolt.Tx) error {
			b := tx.Bucket([]byte("grants"))
			for i := start; i < min(n, start+10000); i++ {
				if i%5 != 0 {
					if err := b.Delete(key(i)); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	st := db.Stats()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	info, _ := os.Stat(path)
	t.Logf("file: %.0f MiB, %d records written, %d kept, %d free pages", float64(info.Size())/(1<<20), n, n/5, st.FreePageN)

	measure := func(name string, opts *bbolt.Options) {
		var opens []time.Duration
		var db *bbolt.DB
		for range 3 { // the third stays open
			if db != nil {
				if err := db.Close(); err != nil {
					t.Fatal(err)
				}
			}
			start := time.Now()
			var err error
			if db, err = bbolt.Open(path, 0o600, opts); err != nil {
				t.Fatal(err)
			}
			opens = append(opens, time.Since(start).Round(100*time.Microsecond))
		}
		const commits = 100
		start := time.Now()
		for i := range commits {
			err := db.Update(func(tx *bbolt.Tx) error {
				return tx.Bucket([]byte("grants")).Put(key(n+i), val)
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		perCommit := time.Since(start) / commits
		t.Logf("%-36s open %v, fsynced commit of one 2 KB record %8s (mean of %d), freelist in use %d bytes",
			name, opens, perCommit.Round(time.Microsecond), commits, db.Stats().FreelistInuse)
		n += commits
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// The file was last written without a stored freelist: Keyward's
	// options rebuild it at open.
	// bbolt's defaults rebuild it once too, then store it at each commit
	// (the second and third opens read it).
	for range 2 {
		measure("keyward options", keyward)
		measure("bbolt defaults", defaults)
	}
	fmt.Fprintln(os.Stderr)
}
