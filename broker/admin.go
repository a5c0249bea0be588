package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/keyward/keyward/store"
)

// Subject returns the subject id; an unknown one is ErrUnknownSubject.
func (b *Broker) Subject(ctx context.Context, id string) (store.Subject, error) {
	s, err := b.cfg.Store.GetSubject(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Subject{}, fmt.Errorf("subject %q: %w", id, ErrUnknownSubject)
	}
	if err != nil {
		return store.Subject{}, fmt.Errorf("get subject: %w", err)
	}
	return s, nil
}

// Subjects lists every known subject.
func (b *Broker) Subjects(ctx context.Context) ([]store.Subject, error) {
	s, err := b.cfg.Store.ListSubjects(ctx)
	if err != nil {
		return nil, fmt.Errorf("list subjects: %w", err)
	}
	return s, nil
}

// Sessions lists the Keyward sessions of subject (all when it is empty),
// oldest first.
func (b *Broker) Sessions(ctx context.Context, subject string) ([]store.Session, error) {
	s, err := b.cfg.Store.ListSessions(ctx, subject)
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	return s, nil
}

// AuditEvents returns the newest limit audit events, oldest first.
func (b *Broker) AuditEvents(ctx context.Context, limit int) ([]store.AuditEvent, error) {
	e, err := b.cfg.Store.ListAudit(ctx, limit)
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
func (b *Broker) Clients() []ClientInfo {
	out := make([]ClientInfo, 0, len(b.clients.byID))
	for _, c := range b.clients.byID {
		out = append(out, ClientInfo{
			ID:               c.ID,
			Name:             c.name,
			Public:           c.Public,
			RedirectURIs:     slices.Clone(c.RedirectURIs),
			GrantTypes:       slices.Clone([]string(c.GrantTypes)),
			Scopes:           slices.Clone([]string(c.Scopes)),
			Audiences:        slices.Clone([]string(c.Audience)),
			RevocationReader: slices.Contains(b.cfg.RevocationReaders, c.ID),
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
