package bolt_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/store/bolt"
)

// A backup taken while writes go on has the size announced to start, opens
// as a store, holds every record committed before it began, and the store
// keeps serving writes during it.
func TestBackup(t *testing.T) {
	ctx := t.Context()
	s := open(t, bolt.Options{NoSync: true})
	_, kept := createGrants(t, s, 200, func(int) bool { return false })

	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() { // writers during the backup
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := s.CreateGrant(ctx, testGrant(fmt.Sprintf("during-%05d", i), gcNow.Add(time.Hour))); err != nil {
				t.Errorf("CreateGrant during Backup = %v", err)
				return
			}
		}
	})
	var buf bytes.Buffer
	var announced int64
	n, err := s.Backup(ctx, func(size int64) (io.Writer, error) { announced = size; return &buf, nil })
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("Backup = %v", err)
	}
	if n != announced || int64(buf.Len()) != n {
		t.Errorf("Backup wrote %d bytes (buffer %d), announced %d", n, buf.Len(), announced)
	}
	path := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	checkGrants(t, open(t, bolt.Options{Path: path}), nil, kept)
}

// Backup stops when its context ends, and reports start's error unchanged.
func TestBackupErrors(t *testing.T) {
	s := open(t, bolt.Options{NoSync: true})
	ctx, cancel := context.WithCancel(t.Context())
	_, err := s.Backup(ctx, func(int64) (io.Writer, error) { cancel(); return io.Discard, nil })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Backup with its context cancelled = %v, want context.Canceled", err)
	}
	boom := errors.New("boom")
	if _, err := s.Backup(t.Context(), func(int64) (io.Writer, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Errorf("Backup whose start fails = %v, want boom", err)
	}
}
