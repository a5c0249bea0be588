package broker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/keyward/keyward/store"
)

// adminStore is the part of the store that the administration part
// (admin) uses.
type adminStore interface {
	UpdateSubject(ctx context.Context, id string, updater func(store.Subject) (store.Subject, error)) error
	ListSubjects(ctx context.Context) ([]store.Subject, error)
	ListSessions(ctx context.Context, subject string) ([]store.Session, error)
	Deprovision(ctx context.Context, d store.Deprovisioning) (store.DeprovisionResult, error)
	AppendRevocation(ctx context.Context, r store.Revocation) (store.Revocation, error)
	AppendAudit(ctx context.Context, e store.AuditEvent) (store.AuditEvent, error)
	ListAudit(ctx context.Context, limit int) ([]store.AuditEvent, error)
	EndSession(ctx context.Context, sessionID string, feed store.Revocation) (store.GrantDeletion, error)
	CreateGrant(ctx context.Context, g store.Grant) error
	GetSubject(ctx context.Context, id string) (store.Subject, error)
	GetSession(ctx context.Context, id string) (store.Session, error)
	ListRevocations(ctx context.Context, after int64, limit int) ([]store.Revocation, int64, error)
	store.Searcher // admin_search.go
}

// Errors of the admin operations. They wrap store.ErrNotFound.
var (
	// ErrUnknownSubject: no subject has that id (or that email).
	ErrUnknownSubject = fmt.Errorf("unknown subject: %w", store.ErrNotFound)
	// ErrUnknownSession: no Keyward session has that id.
	ErrUnknownSession = fmt.Errorf("unknown session: %w", store.ErrNotFound)
)

// Audit actions.
const (
	ActionDeprovision   = "deprovision"
	ActionReinstate     = "reinstate"
	ActionRevokeSession = "session.revoke"
	ActionRotateKeys    = "keys.rotate"
)

// feedLeeway is added to the longest token lifetime when a feed entry's
// expiry is computed: the clock skew verifiers allow.
const feedLeeway = 2 * time.Minute

// feedExpiry is when a feed entry written at at may leave the feed: no
// access or ID token issued before at can still be alive.
func (a *admin) feedExpiry(at time.Time) time.Time {
	return at.Add(a.feedTTL + feedLeeway)
}

// Deprovision takes subject's access away in one store transaction: the
// subject is disabled with not-before = now, its sessions, refresh families
// and pending codes are deleted, a revocation-feed entry is appended and
// the audit event (actor, reason) is written. Deprovisioning a disabled
// subject again moves its not-before to now. An unknown subject is
// ErrUnknownSubject. Afterwards, for every session id on the deleted
// grants, the clients those grants were issued to get a back-channel logout
// token (see notifyLogout); grants without a session id (token exchange)
// tell no client.
func (a *admin) Deprovision(ctx context.Context, subject, reason, actor string) (store.DeprovisionResult, error) {
	if _, err := a.Subject(ctx, subject); err != nil {
		return store.DeprovisionResult{}, err
	}
	now := a.now().UTC()
	res, err := a.store.Deprovision(ctx, store.Deprovisioning{
		Subject:       subject,
		At:            now,
		FeedExpiresAt: a.feedExpiry(now),
		Audit:         store.AuditEvent{At: now, Actor: actor, Action: ActionDeprovision, Target: subject, Reason: reason},
	})
	if err != nil {
		return store.DeprovisionResult{}, fmt.Errorf("deprovision %s: %w", subject, err)
	}
	for _, sid := range slices.Sorted(maps.Keys(res.SessionClients)) {
		a.notify.notifyLogout(ctx, subject, sid, res.SessionClients[sid])
	}
	a.log.InfoContext(ctx, "subject deprovisioned", "event", "deprovisioned", "sub", subject, "actor", actor,
		"reason", reason, "sessions", res.Sessions, "grants", res.Grants, "feed_seq", res.Revocation.Seq)
	return res, nil
}

// SubjectDeprovisioning is the outcome of deprovisioning one subject found
// by email.
type SubjectDeprovisioning struct {
	Subject string
	store.DeprovisionResult
}

// DeprovisionByEmail deprovisions every subject whose email is email
// (compared case-insensitively): a person who signed in through several
// upstreams has one subject per upstream. Each subject is its own
// transaction; the first failure stops and is returned with what was done.
// No match is ErrUnknownSubject.
func (a *admin) DeprovisionByEmail(ctx context.Context, email, reason, actor string) ([]SubjectDeprovisioning, error) {
	subjects, err := a.FindSubjectsByEmail(ctx, email)
	if err != nil {
		return nil, err
	}
	if len(subjects) == 0 {
		return nil, fmt.Errorf("email %q: %w", email, ErrUnknownSubject)
	}
	var out []SubjectDeprovisioning
	for _, s := range subjects {
		res, err := a.Deprovision(ctx, s.ID, reason, actor)
		if err != nil {
			return out, err
		}
		out = append(out, SubjectDeprovisioning{Subject: s.ID, DeprovisionResult: res})
	}
	return out, nil
}

// FindSubjectsByEmail returns the subjects whose email is email, compared
// case-insensitively, in the store's order.
func (a *admin) FindSubjectsByEmail(ctx context.Context, email string) ([]store.Subject, error) {
	email = strings.TrimSpace(email)
	if email == "" {
		return nil, nil
	}
	all, err := a.store.ListSubjects(ctx)
	if err != nil {
		return nil, fmt.Errorf("list subjects: %w", err)
	}
	var out []store.Subject
	for _, s := range all {
		if strings.EqualFold(s.Email, email) {
			out = append(out, s)
		}
	}
	return out, nil
}

// Reinstate lets a deprovisioned subject sign in again. NotBefore is kept,
// so tokens issued before the deprovisioning stay void. The update and the
// audit event are two writes: if the audit write fails the error says so
// and the subject is already reinstated.
func (a *admin) Reinstate(ctx context.Context, subject, reason, actor string) (store.Subject, error) {
	out, _, err := a.reinstate(ctx, subject, reason, actor, "")
	return out, err
}

// ReinstateIfDisabledBy reinstates subject as Reinstate does, but only if
// source disabled it (its DisabledBy): an identity provider may undo its
// own deactivation, never an operator's or another source's. The check
// and the change are one store update. done is false, and nothing is
// written, when the subject is not disabled or someone else disabled it;
// out is then the subject as stored.
func (a *admin) ReinstateIfDisabledBy(ctx context.Context, subject, reason, source string) (out store.Subject, done bool, err error) {
	return a.reinstate(ctx, subject, reason, source, source)
}

// errNotDisabledBy aborts a conditional reinstatement's update.
var errNotDisabledBy = errors.New("not disabled by this source")

func (a *admin) reinstate(ctx context.Context, subject, reason, actor, onlyIfDisabledBy string) (store.Subject, bool, error) {
	now := a.now().UTC()
	var out store.Subject
	err := a.store.UpdateSubject(ctx, subject, func(s store.Subject) (store.Subject, error) {
		out = s
		if onlyIfDisabledBy != "" && (!s.Disabled || s.DisabledBy != onlyIfDisabledBy) {
			return s, errNotDisabledBy
		}
		s.Disabled = false
		s.DisabledAt, s.DisabledBy, s.DisabledReason = time.Time{}, "", ""
		s.UpdatedAt = now
		out = s
		return s, nil
	})
	if errors.Is(err, errNotDisabledBy) {
		return out, false, nil
	}
	if errors.Is(err, store.ErrNotFound) {
		return store.Subject{}, false, fmt.Errorf("subject %q: %w", subject, ErrUnknownSubject)
	}
	if err != nil {
		return store.Subject{}, false, fmt.Errorf("reinstate %s: %w", subject, err)
	}
	a.log.InfoContext(ctx, "subject reinstated", "event", "reinstated", "sub", subject, "actor", actor, "reason", reason)
	if err := a.audit(ctx, now, actor, ActionReinstate, subject, reason); err != nil {
		return out, true, err
	}
	return out, true, nil
}

// SessionRevocation is what RevokeSession did.
type SessionRevocation struct {
	Session    store.Session
	Revocation store.Revocation
	// Grants is how many grants of the session were deleted: its codes,
	// access and refresh tokens (so its refresh tokens stop working) and
	// session-client records. Tokens issued by token exchange carry no
	// session and are not among them.
	Grants int
	// Clients are the clients that had grants in the session, sorted: those
	// sent a back-channel logout token.
	Clients []string
}

// RevokeSession ends one Keyward session: the session and its grants are
// deleted (its refresh tokens stop working), a feed entry (kind session,
// not-before now) lets edges drop its tokens, and the audit event (action
// session.revoke, by actor) is written. The clients whose grants were
// deleted with the session, and only those, are sent a back-channel logout
// token. It is the one way every flow ends a session (the admin API,
// /end_session, back-channel logout from an upstream, the upstream
// re-check). An unknown session is ErrUnknownSession.
func (a *admin) RevokeSession(ctx context.Context, sessionID, reason, actor string) (SessionRevocation, error) {
	sess, err := a.store.GetSession(ctx, sessionID)
	if errors.Is(err, store.ErrNotFound) {
		return SessionRevocation{}, fmt.Errorf("session %q: %w", sessionID, ErrUnknownSession)
	}
	if err != nil {
		return SessionRevocation{}, fmt.Errorf("get session: %w", err)
	}
	now := a.now().UTC()
	out := SessionRevocation{Session: sess}
	// The ended-session record first: once the session record is gone,
	// tokens carrying its sid are refused by it (sessionEnded). A crash
	// right after it leaves the session in place, so a retry finds it.
	err = a.store.CreateGrant(ctx, store.Grant{
		Kind: store.GrantEndedSession, Signature: sessionID, Active: true, RequestedAt: now, ExpiresAt: a.feedExpiry(now),
	})
	if err != nil && !errors.Is(err, store.ErrConflict) {
		return out, fmt.Errorf("record ended session: %w", err)
	}
	// The session, its grants and the feed entry go in one transaction: a
	// code issued from the session just before cannot outlive it (and the
	// token endpoint refuses codes whose session is gone), and a crash
	// cannot end the session without telling the edges (test/crash).
	del, err := a.store.EndSession(ctx, sessionID, store.Revocation{
		Kind:      store.RevokeSession,
		SessionID: sessionID,
		NotBefore: now,
		ExpiresAt: a.feedExpiry(now),
		CreatedAt: now,
	})
	if err != nil {
		return out, fmt.Errorf("end session: %w", err)
	}
	out.Grants, out.Clients, out.Revocation = del.Grants, del.ClientIDs, del.Revocation
	a.notify.notifyLogout(ctx, sess.Subject, sess.ID, out.Clients)
	a.log.InfoContext(ctx, "session revoked", "event", "session_revoked", "sid", sessionID, "sub", sess.Subject,
		"actor", actor, "reason", reason, "grants", out.Grants, "clients", out.Clients, "feed_seq", out.Revocation.Seq)
	// The event names the session's person, so their audit list shows it.
	if err := a.writeAudit(ctx, store.AuditEvent{At: now, Actor: actor, Action: ActionRevokeSession, Target: sessionID, Reason: reason, Subject: sess.Subject}); err != nil {
		return out, err
	}
	return out, nil
}

// RecordAdminAction writes an audit event for an action the broker does not
// carry out itself (such as a key rotation).
func (a *admin) RecordAdminAction(ctx context.Context, actor, action, target, reason string) error {
	return a.audit(ctx, a.now().UTC(), actor, action, target, reason)
}

func (a *admin) audit(ctx context.Context, at time.Time, actor, action, target, reason string) error {
	return a.writeAudit(ctx, store.AuditEvent{At: at, Actor: actor, Action: action, Target: target, Reason: reason})
}

// writeAudit appends e to the audit log.
func (a *admin) writeAudit(ctx context.Context, e store.AuditEvent) error {
	_, err := a.store.AppendAudit(ctx, e)
	if err != nil {
		a.log.ErrorContext(ctx, "audit event not written", "action", e.Action, "target", e.Target, "actor", e.Actor, "err", err)
		return fmt.Errorf("append audit event: %w", err)
	}
	return nil
}
