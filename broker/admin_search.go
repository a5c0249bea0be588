package broker

import (
	"context"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/keyward/keyward/store"
)

// The console's read operations, on the admin part so the console and the
// admin API share one implementation.

// SearchSubjects: see store.Searcher.SearchSubjects.
func (b *Broker) SearchSubjects(ctx context.Context, q store.SubjectQuery) (store.SubjectPage, error) {
	page, err := b.admin.store.SearchSubjects(ctx, q)
	if err != nil {
		return store.SubjectPage{}, fmt.Errorf("search subjects: %w", err)
	}
	return page, nil
}

// QueryAudit: see store.Searcher.QueryAudit.
func (b *Broker) QueryAudit(ctx context.Context, q store.AuditQuery) (store.AuditPage, error) {
	page, err := b.admin.store.QueryAudit(ctx, q)
	if err != nil {
		return store.AuditPage{}, fmt.Errorf("query audit events: %w", err)
	}
	return page, nil
}

// FeedHead returns the highest Seq the revocation feed has assigned (0:
// none yet).
func (b *Broker) FeedHead(ctx context.Context) (int64, error) {
	_, head, err := b.admin.store.ListRevocations(ctx, math.MaxInt64, 1)
	if err != nil {
		return 0, fmt.Errorf("read the revocation feed: %w", err)
	}
	return head, nil
}

// RefreshFamily is one authorization's refresh tokens (one RequestID): the
// chain that rotation extends.
type RefreshFamily struct {
	RequestID string
	ClientID  string
	SessionID string // "" for a family outside a Keyward session (token exchange)
	Tokens    int    // refresh tokens stored, rotated ones included
	Active    int    // of which still usable
	Started   time.Time
	ExpiresAt time.Time // the latest expiry among its tokens
}

// RefreshFamilies lists subject's refresh families, oldest first.
func (b *Broker) RefreshFamilies(ctx context.Context, subject string) ([]RefreshFamily, error) {
	grants, err := b.admin.store.ListGrantsBySubject(ctx, subject, store.GrantRefreshToken)
	if err != nil {
		return nil, fmt.Errorf("list refresh tokens: %w", err)
	}
	byID := map[string]*RefreshFamily{}
	var out []*RefreshFamily
	for _, g := range grants {
		f := byID[g.RequestID]
		if f == nil {
			f = &RefreshFamily{RequestID: g.RequestID, ClientID: g.ClientID, SessionID: g.SessionID, Started: g.RequestedAt}
			byID[g.RequestID] = f
			out = append(out, f)
		}
		f.Tokens++
		if g.Active {
			f.Active++
		}
		if !g.RequestedAt.IsZero() && (f.Started.IsZero() || g.RequestedAt.Before(f.Started)) {
			f.Started = g.RequestedAt
		}
		if g.ExpiresAt.After(f.ExpiresAt) {
			f.ExpiresAt = g.ExpiresAt
		}
	}
	families := make([]RefreshFamily, 0, len(out))
	for _, f := range out {
		families = append(families, *f)
	}
	sort.SliceStable(families, func(i, j int) bool { return families[i].Started.Before(families[j].Started) })
	return families, nil
}
