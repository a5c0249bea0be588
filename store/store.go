package store

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors. Backends translate driver results into these; callers
// branch with errors.Is.
var (
	// ErrNotFound: the record does not exist (or has expired and been collected).
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: a record with the same key already exists.
	ErrConflict = errors.New("store: conflict")
	// ErrUnavailable: the backend cannot be reached (a database outage).
	// Nothing was written; the caller answers 503 and may retry later.
	// bbolt never returns it.
	ErrUnavailable = errors.New("store: unavailable")
)

// Store is the persistence contract of the broker. It is the one wide
// interface in Keyward, because the conformance suite (store/storetest) tests
// it whole; consumers declare the few methods they need as small interfaces.
//
// Contract, for every backend:
//   - All methods are safe for concurrent use and honour ctx cancellation
//     before doing work (a cancelled ctx returns ctx.Err(), wrapped).
//   - Get/Update/Delete of a missing record return ErrNotFound; Create of an
//     existing key returns ErrConflict. Delete* of several records by index
//     never returns ErrNotFound: it reports how many were removed.
//   - Update* runs the updater inside one write transaction: the read, the
//     updater and the write are atomic with respect to every other write.
//     The updater may be called more than once (bbolt Batch, Postgres retries
//     after a serialization failure), so it must be a pure function of its
//     argument. It must never call the store (nested bbolt writes deadlock).
//     An error returned by the updater aborts the write and is returned
//     unchanged (errors.Is works on it).
//   - Times are stored in UTC truncated to microseconds: a record read back
//     has every time.Time field in UTC at µs precision, whatever zone it was
//     written with. Zero times stay zero.
//   - Slices and maps read back are never shared with the caller's copy.
//   - A record whose ExpiresAt is non-zero and not after the backend's
//     notion of "now" may still be returned by Get until GarbageCollect
//     removes it; callers that care check ExpiresAt themselves.
type Store interface {
	// Login attempts: an /authorize request in flight while the person signs
	// in upstream. Keyed by ID (an opaque random value); looked up by State.
	CreateLoginAttempt(ctx context.Context, a LoginAttempt) error
	GetLoginAttempt(ctx context.Context, id string) (LoginAttempt, error)
	// GetLoginAttemptByState finds the attempt whose State equals state.
	GetLoginAttemptByState(ctx context.Context, state string) (LoginAttempt, error)
	UpdateLoginAttempt(ctx context.Context, id string, updater func(LoginAttempt) (LoginAttempt, error)) error
	DeleteLoginAttempt(ctx context.Context, id string) error

	// Sessions: Keyward's own single sign-on sessions.
	CreateSession(ctx context.Context, s Session) error
	GetSession(ctx context.Context, id string) (Session, error)
	UpdateSession(ctx context.Context, id string, updater func(Session) (Session, error)) error
	DeleteSession(ctx context.Context, id string) error
	// ListSessions returns the sessions of subject (all sessions when subject
	// is empty), ordered by CreatedAt then ID.
	ListSessions(ctx context.Context, subject string) ([]Session, error)

	// Subjects: the people (and workloads) Keyward has issued tokens to.
	CreateSubject(ctx context.Context, s Subject) error
	GetSubject(ctx context.Context, id string) (Subject, error)
	UpdateSubject(ctx context.Context, id string, updater func(Subject) (Subject, error)) error
	// UpsertSubject creates the subject from create() when it does not exist,
	// otherwise applies updater; atomically. It returns the stored result.
	UpsertSubject(ctx context.Context, id string, create func() Subject, updater func(Subject) (Subject, error)) (Subject, error)
	ListSubjects(ctx context.Context) ([]Subject, error)

	// Grants: fosite's records (authorize codes, PKCE requests, OIDC
	// sessions, access-token signatures, refresh tokens, single-use jtis,
	// session-client records). Keyed by (Kind, Signature), indexed by RequestID, Subject and
	// SessionID.
	CreateGrant(ctx context.Context, g Grant) error
	GetGrant(ctx context.Context, kind GrantKind, signature string) (Grant, error)
	UpdateGrant(ctx context.Context, kind GrantKind, signature string, updater func(Grant) (Grant, error)) error
	DeleteGrant(ctx context.Context, kind GrantKind, signature string) error
	// DeleteGrantsByRequest removes every grant of requestID whose kind is in
	// kinds (all kinds when kinds is empty), in one transaction.
	DeleteGrantsByRequest(ctx context.Context, requestID string, kinds ...GrantKind) (int, error)
	// UpdateGrantsByRequest applies updater to every grant of requestID whose
	// kind is in kinds (all kinds when empty), in one transaction, including
	// one a concurrent transaction inserted and committed while this one
	// waited for a lock (reuse detection reads the family's last access
	// token that way).
	UpdateGrantsByRequest(ctx context.Context, requestID string, kinds []GrantKind, updater func(Grant) (Grant, error)) (int, error)
	// DeleteGrantsBySubject removes every grant of subject, in one
	// transaction. An empty subject matches nothing.
	DeleteGrantsBySubject(ctx context.Context, subject string) (int, error)
	// EndSession removes the session record sessionID (if it still exists)
	// and every grant issued in that Keyward session (codes, tokens, refresh
	// families, session-client records) and, when feed.Kind is set, appends
	// feed to the revocation feed (Seq assigned as AppendRevocation does),
	// all in ONE transaction: no code or token of the session can outlive
	// it, and a crash cannot end the session without the feed entry that
	// tells edges to drop its tokens. It reports, from that transaction, how
	// many grants it removed, the distinct ClientIDs among them (the clients
	// that were issued something in the session and not yet collected) and
	// the appended entry. An empty sessionID matches nothing (not the grants
	// issued outside a session) and appends nothing.
	EndSession(ctx context.Context, sessionID string, feed Revocation) (GrantDeletion, error)

	// Signing keys: one key set, read and rotated as a whole.
	// GetKeySet returns ErrNotFound before the first UpdateKeySet.
	GetKeySet(ctx context.Context) (KeySet, error)
	// UpdateKeySet applies updater to the stored key set (the zero KeySet
	// when none is stored yet) and stores the result atomically, with
	// Version set to the old Version + 1 whatever the updater returned.
	UpdateKeySet(ctx context.Context, updater func(KeySet) (KeySet, error)) error

	// Deprovision takes a subject's access away in ONE transaction: the
	// subject is created if unknown, marked Disabled with NotBefore = d.At;
	// all its sessions and grants (codes, tokens, refresh families) are
	// deleted; a revocation-feed entry (Kind RevokeSubject, Seq assigned by
	// the store: the previous highest + 1) is appended; the audit event is
	// appended. Either all of it is stored or none. It returns the feed entry,
	// how many sessions and grants were removed, and, per SessionID found on
	// a removed grant, the distinct ClientIDs of those grants (read in the
	// same transaction, so a grant created concurrently is either deleted
	// and listed, or neither).
	Deprovision(ctx context.Context, d Deprovisioning) (DeprovisionResult, error)
	// AppendRevocation appends a feed entry (Seq assigned by the store, the
	// previous highest + 1, starting at 1) and returns it with its Seq.
	AppendRevocation(ctx context.Context, r Revocation) (Revocation, error)
	// ListRevocations returns entries with Seq > after, ascending, at most
	// limit (limit <= 0: all), and the highest Seq ever assigned (0: none),
	// which may be higher than the last entry returned when entries were
	// collected.
	ListRevocations(ctx context.Context, after int64, limit int) ([]Revocation, int64, error)
	// AppendAudit appends an audit event (Seq assigned like revocations).
	AppendAudit(ctx context.Context, e AuditEvent) (AuditEvent, error)
	// ListAudit returns the newest limit events, oldest first.
	ListAudit(ctx context.Context, limit int) ([]AuditEvent, error)

	// SCIM resources provisioned by identity providers (store/scim.go).
	SCIMStore

	// GarbageCollect removes login attempts, sessions and grants whose
	// ExpiresAt is non-zero and not after now, and revocation entries whose
	// ExpiresAt is non-zero and not after now, and reports what it removed.
	GarbageCollect(ctx context.Context, now time.Time) (GCResult, error)

	// Batcher: several writes in one transaction, all or nothing (see
	// Batch): the unit of work of one token request or sign-in callback.
	Batcher

	// Close releases the backend. Calls after Close return an error.
	Close() error
}

// GCResult counts what one GarbageCollect removed.
type GCResult struct {
	LoginAttempts int
	Sessions      int
	Grants        int
	Revocations   int
}

// IsEmpty reports whether nothing was removed.
func (r GCResult) IsEmpty() bool {
	return r.LoginAttempts == 0 && r.Sessions == 0 && r.Grants == 0 && r.Revocations == 0
}
