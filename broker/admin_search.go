package broker

import (
	"context"
	"fmt"
	"math"

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
