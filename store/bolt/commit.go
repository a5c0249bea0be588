package bolt

import (
	"errors"
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// committer is group commit without a delay: a write that finds no commit
// in progress starts one at once; writes that arrive while it runs (most of
// that time is the fsync) queue, and the next commit takes all of them. A
// lone write thus costs one transaction, and under load one fsync serves
// everyone who waited for it. bbolt's DB.Batch instead waits MaxBatchDelay
// before every batch, which a sequential writer pays in full.
//
// As in DB.Batch, a function that fails is taken out and re-run alone, and
// the rest of its batch is retried, so functions may run more than once.
type committer struct {
	db *bolt.DB

	mu      sync.Mutex
	queue   []commitCall
	running bool // a goroutine is draining queue
}

type commitCall struct {
	fn  func(*bolt.Tx) error
	err chan error
}

// errTrySolo tells a caller that its function failed inside a batch and
// must be re-run in a transaction of its own.
var errTrySolo = errors.New("run alone")

// do runs fn in a write transaction shared with concurrent calls.
func (c *committer) do(fn func(*bolt.Tx) error) error {
	call := commitCall{fn: fn, err: make(chan error, 1)}
	c.mu.Lock()
	c.queue = append(c.queue, call)
	if !c.running {
		c.running = true
		go c.drain()
	}
	c.mu.Unlock()
	err := <-call.err
	if errors.Is(err, errTrySolo) {
		err = c.db.Update(fn)
	}
	return err
}

// drain commits queued calls, batch after batch, until the queue is empty.
func (c *committer) drain() {
	for {
		c.mu.Lock()
		calls := c.queue
		c.queue = nil
		if len(calls) == 0 {
			c.running = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		c.commit(calls)
	}
}

// commit runs calls in one transaction. A call that fails is answered with
// errTrySolo and the others are retried without it.
func (c *committer) commit(calls []commitCall) {
	for len(calls) > 0 {
		failed := -1
		err := c.db.Update(func(tx *bolt.Tx) error {
			for i, call := range calls {
				if err := safeCall(call.fn, tx); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		if failed >= 0 {
			calls[failed].err <- errTrySolo
			calls = append(calls[:failed], calls[failed+1:]...)
			continue
		}
		for _, call := range calls { // success, or a commit error for all
			call.err <- err
		}
		return
	}
}

// safeCall turns a panic in fn into an error, so that one caller's panic
// does not take the committing goroutine (and the process) down; the caller
// then re-runs fn alone and the panic surfaces in its own goroutine.
func safeCall(fn func(*bolt.Tx) error, tx *bolt.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return fn(tx)
}
