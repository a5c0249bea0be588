package bolt_test

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/keyward/keyward/store/bolt"
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
			meta, err := tx.CreateBucketIfNotExists([]byte("meta")) // as Open makes it, for Compact
			if err != nil {
				return err
			}
			if err := meta.Put([]byte("layout_version"), []byte("1")); err != nil {
				return err
			}
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

	// measure opens the file with opts, times 100 small fsynced commits,
	// closes it, then times three more opens: those read what the commits
	// left (a stored freelist or none).
	measure := func(name string, opts *bbolt.Options) {
		db, err := bbolt.Open(path, 0o600, opts)
		if err != nil {
			t.Fatal(err)
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
		inuse := db.Stats().FreelistInuse
		n += commits
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		var opens []time.Duration
		for range 3 {
			start := time.Now()
			db, err := bbolt.Open(path, 0o600, opts)
			if err != nil {
				t.Fatal(err)
			}
			opens = append(opens, time.Since(start).Round(100*time.Microsecond))
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("%-28s fsynced commit of one 2 KB record %8s (mean of %d); then open %v; freelist %d bytes",
			name, perCommit.Round(time.Microsecond), commits, opens, inuse)
	}
	// The file was last written without a stored freelist: Keyward's
	// options rebuild it at open.
	// bbolt's defaults rebuild it once too, then store it at each commit
	// (the second and third opens read it).
	for range 2 {
		measure("keyward options", keyward)
		measure("bbolt defaults", defaults)
	}

	start := time.Now()
	res, err := bolt.Compact(t.Context(), path, bolt.CompactOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Compact: %.0f MiB → %.1f MiB, %d keys, in %s", float64(res.Before)/(1<<20), float64(res.After)/(1<<20),
		res.Records, time.Since(start).Round(time.Millisecond))
	measure("keyward options, compacted", keyward)
}
