package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/keyward/keyward/federation"
	"github.com/keyward/keyward/store"
)

// subjects is the one place that says whether a person may still get or
// use Keyward's tokens: the subject check (disabled, or authenticated
// before its not-before time), the ended-session check of issued tokens
// (tokenstate.go), the subject records written at sign-in, and the audit
// of sign-ins an upstream's rules refused. Sign-in, the token endpoint and
// token exchange share it.
type subjects struct {
	store subjectStore
	audit *admin // the audit trail
	log   *slog.Logger
	now   func() time.Time
}

// subjectStore is the part of the store subjects uses.
type subjectStore interface {
	GetSubject(ctx context.Context, id string) (store.Subject, error)
	UpsertSubject(ctx context.Context, id string, create func() store.Subject, updater func(store.Subject) (store.Subject, error)) (store.Subject, error)
	GetSession(ctx context.Context, id string) (store.Session, error)
	GetGrant(ctx context.Context, kind store.GrantKind, signature string) (store.Grant, error)
}

// errSubjectRefused is returned by checkSubject.
var errSubjectRefused = errors.New("subject is disabled")

// checkSubject is the one place where a subject can be refused: disabled,
// or authenticated before its not-before time.
func (s *subjects) checkSubject(ctx context.Context, subject string, issuedAt time.Time) error {
	sub, err := s.store.GetSubject(ctx, subject)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get subject: %w", err)
	}
	if sub.Disabled || (!sub.NotBefore.IsZero() && issuedAt.Before(sub.NotBefore)) {
		return errSubjectRefused
	}
	return nil
}

// Audit trail of refused sign-ins.
const (
	// ActorSignIn is the audit actor of sign-in decisions.
	ActorSignIn = "sign-in"
	// ActionLoginRefused: an upstream's configuration (allow rules,
	// tenants, hosted domains, group overage) refused a person the
	// upstream signed in.
	ActionLoginRefused = "login.refused"
)

// refuseLogin logs and audits a sign-in the upstream's configuration
// refused. The audit target is the Keyward subject the person would have
// had ("upstream:<id>" when the refusal came before the mapping). A failed
// audit write is logged and does not change the refusal.
func (s *subjects) refuseLogin(ctx context.Context, upstreamID string, na *federation.NotAllowedError) {
	target := "upstream:" + upstreamID
	if na.Subject != "" {
		target = SubjectID(upstreamID, na.Subject)
	}
	s.log.InfoContext(ctx, "sign-in refused by the upstream's rules", "event", "login_failed", "upstream", upstreamID,
		"sub", target, "rule", na.Rule, "err", na)
	_ = s.audit.audit(ctx, s.now().UTC(), ActorSignIn, ActionLoginRefused, target, upstreamID+": "+na.Rule+": "+na.Reason)
}

func (s *subjects) upsertSubject(ctx context.Context, id, upstreamID string, ident federation.Identity, now time.Time) error {
	up := subjectSignIn(id, upstreamID, ident, now)
	sub, err := s.store.UpsertSubject(ctx, id, up.Create, up.Update)
	if err != nil {
		return fmt.Errorf("upsert subject: %w", err)
	}
	if sub.Disabled {
		return errSubjectRefused
	}
	return nil
}

// subjectSignIn is the subject record's change at a sign-in of ident:
// created when unknown, otherwise its email and name refreshed and, unless
// it is disabled, its last login.
func subjectSignIn(id, upstreamID string, ident federation.Identity, now time.Time) store.SubjectUpsert {
	return store.SubjectUpsert{
		ID: id,
		Create: func() store.Subject {
			return store.Subject{ID: id, UpstreamID: upstreamID, UpstreamSubject: ident.Subject, Email: ident.Email, Name: ident.Name, CreatedAt: now, UpdatedAt: now, LastLoginAt: now}
		},
		Update: func(sub store.Subject) (store.Subject, error) {
			sub.Email, sub.Name, sub.UpdatedAt = ident.Email, ident.Name, now
			if !sub.Disabled {
				sub.LastLoginAt = now
			}
			return sub, nil
		},
	}
}

// gatherSubjectSignIn adds the subject's change at a sign-in to unit, on
// the condition, checked at commit, that the subject is not disabled by
// then: a disabled subject aborts the unit with errSubjectRefused, so that
// nothing of the sign-in (session, codes) is stored.
func gatherSubjectSignIn(unit *unitOfWork, id, upstreamID string, ident federation.Identity, now time.Time) error {
	up := subjectSignIn(id, upstreamID, ident, now)
	update := up.Update
	up.Update = func(sub store.Subject) (store.Subject, error) {
		if sub.Disabled {
			return sub, errSubjectRefused
		}
		return update(sub)
	}
	return unit.upsertSubject(up)
}
