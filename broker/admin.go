package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"time"

	"github.com/keyward/keyward/store"
)

// admin is the administration part of the broker: deprovisioning and
// reinstating subjects, ending sessions (for every flow that ends one),
// the audit trail, the revocation feed and the admin listings. It holds
// only what those need.
type admin struct {
	store   adminStore
	clients *clientRegistry
	// readers are the clients that may read the revocation feed.
	readers []string
	// notify tells clients that a session ended (back-channel logout).
	notify logoutNotifier
	// feedTTL is how long a feed entry must outlive its writing: the
	// longest lifetime of a token it may void (feedExpiry).
	feedTTL time.Duration
	log     *slog.Logger
	now     func() time.Time
}

// logoutNotifier tells the clients clientIDs that session sid of subject
// has ended (*backchannelSender).
type logoutNotifier interface {
	notifyLogout(ctx context.Context, subject, sid string, clientIDs []string)
}

// Subject returns the subject id; an unknown one is ErrUnknownSubject.
func (a *admin) Subject(ctx context.Context, id string) (store.Subject, error) {
	s, err := a.store.GetSubject(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Subject{}, fmt.Errorf("subject %q: %w", id, ErrUnknownSubject)
	}
	if err != nil {
		return store.Subject{}, fmt.Errorf("get subject: %w", err)
	}
	return s, nil
}

// Subjects lists every known subject.
func (a *admin) Subjects(ctx context.Context) ([]store.Subject, error) {
	s, err := a.store.ListSubjects(ctx)
	if err != nil {
		return nil, fmt.Errorf("list subjects: %w", err)
	}
	return s, nil
}

// Sessions lists the Keyward sessions of subject (all when it is empty),
// oldest first.
func (a *admin) Sessions(ctx context.Context, subject string) ([]store.Session, error) {
	s, err := a.store.ListSessions(ctx, subject)
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	return s, nil
}

// AuditEvents returns the newest limit audit events, oldest first.
func (a *admin) AuditEvents(ctx context.Context, limit int) ([]store.AuditEvent, error) {
	e, err := a.store.ListAudit(ctx, limit)
	if err != nil {
		return nil, fmt.Errorf("list audit events: %w", err)
	}
	return e, nil
}

// ClientInfo describes a registered client, without its secret.
type ClientInfo struct {
	ID           string
	Name         string
	Public       bool
	RedirectURIs []string
	GrantTypes   []string
	Scopes       []string
	Audiences    []string
	// RevocationReader: the client may read the revocation feed.
	RevocationReader bool
}

// Clients lists the registered clients, by id.
func (a *admin) Clients() []ClientInfo {
	out := make([]ClientInfo, 0, len(a.clients.byID))
	for _, c := range a.clients.byID {
		out = append(out, ClientInfo{
			ID:               c.ID,
			Name:             c.name,
			Public:           c.Public,
			RedirectURIs:     slices.Clone(c.RedirectURIs),
			GrantTypes:       slices.Clone([]string(c.GrantTypes)),
			Scopes:           slices.Clone([]string(c.Scopes)),
			Audiences:        slices.Clone([]string(c.Audience)),
			RevocationReader: slices.Contains(a.readers, c.ID),
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
