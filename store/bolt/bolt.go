package bolt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/keyward/keyward/cmd/config"
	"github.com/keyward/keyward/store"
)

var _ store.Store = (*Store)(nil)

// layoutVersion is the version of the bucket layout and record encoding,
// stored in the meta bucket. Open refuses a file with another version.
const layoutVersion = "1"

// Bucket names.
var (
	bucketMeta           = []byte("meta")
	bucketLoginAttempts  = []byte("login_attempts")
	bucketAttemptByState = []byte("login_attempts_by_state") // state → id
	bucketSessions       = []byte("sessions")
	bucketSessionBySubj  = []byte("sessions_by_subject") // subject\0id → ""
	bucketSubjects       = []byte("subjects")
	bucketGrants         = []byte("grants")            // kind\0signature → grant
	bucketGrantByRequest = []byte("grants_by_request") // requestID\0kind\0signature → ""
	bucketGrantBySubject = []byte("grants_by_subject") // subject\0kind\0signature → ""
	bucketGrantBySession = []byte("grants_by_session") // sessionID\0kind\0signature → ""
	bucketKeySet         = []byte("key_set")
	bucketRevocations    = []byte("revocations") // seq (8 bytes, big endian) → revocation
	bucketAudit          = []byte("audit")       // seq (8 bytes, big endian) → audit event

	allBuckets = [][]byte{
		bucketMeta, bucketLoginAttempts, bucketAttemptByState, bucketSessions,
		bucketSessionBySubj, bucketSubjects, bucketGrants, bucketGrantByRequest,
		bucketGrantBySubject, bucketGrantBySession, bucketKeySet,
		bucketRevocations, bucketAudit,
	}

	keyLayoutVersion = []byte("layout_version")
	keyKeySet        = []byte("key_set")
	// The highest Seq ever assigned, in the meta bucket (8 bytes, big
	// endian), so that a Seq is never reused after its entry is collected.
	keyRevocationSeq = []byte("revocation_seq")
	keyAuditSeq      = []byte("audit_seq")
)

// Options configures Open.
type Options struct {
	// Path of the database file; created (mode 0600) when missing. Required.
	Path string `yaml:"path,omitempty"`
	// Timeout is how long Open waits for the file lock held by another
	// process. Default: 1s.
	Timeout time.Duration `yaml:"-"`
	// BatchDelay chooses how writes share transactions (and fsyncs).
	//   - 0 (the default): group commit with no delay. A lone write commits at
	//     once; writes arriving during a commit share the next one.
	//   - Positive: bbolt's DB.Batch with this MaxBatchDelay: every write
	//     waits up to BatchDelay for others to join it.
	//   - Negative: one transaction per write.
	BatchDelay time.Duration `yaml:"-"`
	// NoSync skips fsync after each commit. A crash or power loss may then
	// lose committed writes or corrupt the file. For tests only; never set it
	// in production.
	NoSync bool `yaml:"-"`
	// Logger receives open and garbage-collection events. Default: discard.
	Logger *slog.Logger `yaml:"-"`
}

// Validate reports the problems of the settings keyward.yaml's store
// section gives (type bolt), each a *config.FieldError named by its path in
// that section. It does no I/O.
func (o Options) Validate() error {
	var p config.Problems
	if o.Path == "" {
		p.Add("path", "set it to the database file, e.g. /var/lib/keyward/keyward.db")
	}
	return p.Err()
}

func (o Options) withDefaults() Options {
	if o.Timeout == 0 {
		o.Timeout = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Store is a store.Store on one bbolt file. It is safe for concurrent use.
type Store struct {
	db     *bolt.DB
	write  func(func(*bolt.Tx) error) error // DB.Update, DB.Batch or committer.do
	logger *slog.Logger
	stats  *writeStats // counts write calls and commits; see Stats

	// gcChunk and gcScan bound garbage collection's transactions (see
	// GarbageCollect); tests lower them.
	gcChunk, gcScan int

	// failDeprovisionAfter, when set (by tests only, see export_test.go), is
	// called after each step of Deprovision's transaction has written; an
	// error it returns aborts the transaction.
	failDeprovisionAfter func(step string) error
}

// Open opens (or creates) the database at opts.Path and its buckets. It fails
// when another process holds the file after opts.Timeout.
func Open(ctx context.Context, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	if opts.Path == "" {
		return nil, errors.New("bolt: open: path is required")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("bolt: open: %w", err)
	}
	db, err := bolt.Open(opts.Path, 0o600, boltOptions(opts))
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("bolt: open %s: bbolt allows one process: is another keyward running on %s?: %w",
			opts.Path, opts.Path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("bolt: open %s: %w", opts.Path, err)
	}
	if err := db.Update(initBuckets); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("bolt: open %s: %w", opts.Path, err)
	}
	logger := opts.Logger.With("component", "store/bolt")
	if err := sweepAccessTokens(ctx, db, logger, sweepBatch); err != nil { // upgrade.go
		_ = db.Close()
		return nil, fmt.Errorf("bolt: open %s: %w", opts.Path, err)
	}
	logger.InfoContext(ctx, "store opened", "path", opts.Path, "no_sync", opts.NoSync)
	s := &Store{db: db, logger: logger, stats: &writeStats{synced: !opts.NoSync},
		gcChunk: gcChunk, gcScan: gcScan}
	write := (&committer{db: db}).do
	switch {
	case opts.BatchDelay > 0:
		db.MaxBatchDelay = opts.BatchDelay
		write = db.Batch
	case opts.BatchDelay < 0:
		write = db.Update
	}
	s.write = s.stats.counted(write)
	return s, nil
}

// initialMmapSize is the address space mapped at open. A write that grows
// the file past the mapping must remap it, and a remap waits until every
// read transaction has ended; mapping ahead of the file keeps writers from
// queueing behind readers until the file reaches this size. It costs
// address space only: the file does not grow (on Linux and macOS) and pages
// count as resident only once read or written.
const initialMmapSize = 256 << 20

// boltOptions are the bbolt settings every Keyward file is opened with,
// chosen so that a commit's cost does not grow with the file:
//
//   - FreelistMapType: the free-page list is a hash map indexed by run
//     length, so allocating n pages is O(1)-ish instead of a scan of an
//     array of every free page (the array type degrades badly once a
//     grown file has tens of thousands of free pages).
//   - NoFreelistSync: commits do not write the freelist. With the default
//     every commit rewrites and fsyncs the whole list (61,260 free page ids
//     on a grown file, hundreds of KB per commit). The cost moves to Open,
//     which rebuilds the list by walking every page of the file
//     (docs/deployment.md gives the times measured), and a file stays
//     readable by bbolt users that do sync the freelist: they rebuild it too.
//   - InitialMmapSize: see initialMmapSize.
//
// Left at bbolt's defaults on purpose: NoGrowSync (skipping the fsync of a
// file growth is unsafe on file systems that do not journal the size),
// PageSize (the OS page), Mlock (the whole file would stay in memory),
// MaxSize (a full disk already fails a commit cleanly) and PreLoadFreelist
// (a writable open loads the freelist anyway).
func boltOptions(opts Options) *bolt.Options {
	return &bolt.Options{
		Timeout:         opts.Timeout,
		NoSync:          opts.NoSync,
		FreelistType:    bolt.FreelistMapType,
		NoFreelistSync:  true,
		InitialMmapSize: initialMmapSize,
	}
}

func initBuckets(tx *bolt.Tx) error {
	for _, name := range allBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	meta := tx.Bucket(bucketMeta)
	switch v := meta.Get(keyLayoutVersion); {
	case v == nil:
		return meta.Put(keyLayoutVersion, []byte(layoutVersion))
	case string(v) != layoutVersion:
		return fmt.Errorf("file has layout version %q, this keyward reads %q", v, layoutVersion)
	}
	return nil
}

// Close closes the file. Calls after Close return an error; a second Close
// returns nil.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("bolt: close: %w", err)
	}
	return nil
}

// view runs fn in a read transaction after checking ctx.
func (s *Store) view(ctx context.Context, op string, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("bolt: %s: %w", op, err)
	}
	return wrapErr(op, s.db.View(fn))
}

// updateAlone runs fn in a write transaction of its own, not shared with
// other writes, counted as a commit but not as a store write (Stats).
func (s *Store) updateAlone(fn func(tx *bolt.Tx) error) error {
	return s.db.Update(s.stats.track(fn))
}

// update runs fn in a write transaction, shared with concurrent writes
// unless Options.BatchDelay is negative. fn may run more than once.
//
// fn aborts the transaction by returning an error. An error wrapped by
// refuse is returned to the caller without aborting the transaction: fn must
// use it only before it has written anything, so that a refused write (not
// found, conflict, updater error) does not roll back the rest of the batch.
func (s *Store) update(ctx context.Context, op string, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("bolt: %s: %w", op, err)
	}
	var refused error
	run := func(tx *bolt.Tx) error {
		refused = nil
		if err := ctx.Err(); err != nil {
			refused = err
			return nil
		}
		err := fn(tx)
		var r refusal
		if errors.As(err, &r) {
			refused = r.err
			return nil
		}
		return err
	}
	err := s.write(run)
	if err == nil {
		err = refused
	}
	return wrapErr(op, err)
}

// refusal carries an error returned before a transaction wrote anything.
type refusal struct{ err error }

func (r refusal) Error() string { return r.err.Error() }
func (r refusal) Unwrap() error { return r.err }

func refuse(err error) error { return refusal{err} }

// updaterError carries an error returned by a caller's updater; the contract
// says it is returned unchanged.
type updaterError struct{ err error }

func (u updaterError) Error() string { return u.err.Error() }
func (u updaterError) Unwrap() error { return u.err }

// wrapErr names the operation in err, except for updater errors, which are
// returned as the updater produced them.
func wrapErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if u, ok := errors.AsType[updaterError](err); ok {
		return u.err
	}
	return fmt.Errorf("bolt: %s: %w", op, err)
}

func encode(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	return b, nil
}

func decode(b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	return nil
}

// get decodes the value at key in bucket into v, or returns ErrNotFound.
func get(tx *bolt.Tx, bucket, key []byte, v any) error {
	b := tx.Bucket(bucket).Get(key)
	if b == nil {
		return store.ErrNotFound
	}
	return decode(b, v)
}

// utc normalises t as the contract requires: UTC, truncated to µs.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}
