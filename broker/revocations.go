package broker

import (
	"context"
	"fmt"
	"slices"

	"github.com/keyward/keyward/store"
)

// RevocationPageLimit is the most entries one answer of the revocation feed
// carries; a reader that gets a full page asks again from Next at once.
const RevocationPageLimit = 1000

// RevocationPage is one answer of the revocation feed.
type RevocationPage struct {
	// Entries have Seq > the cursor asked for, ascending, at most
	// RevocationPageLimit of them.
	Entries []store.Revocation
	// Highest is the highest Seq the store ever assigned (0: none). It may be
	// higher than the last entry's Seq when entries have been collected.
	Highest int64
	// Next is the cursor of the next request: Highest when this page holds
	// every entry after the cursor, else the last entry's Seq (ask again at
	// once). It never moves backwards from the cursor asked for.
	Next int64
}

// Revocations answers GET /revocations?after=CURSOR for the reader clientID,
// which must be one of the feed readers (Config.RevocationReaders) and present its
// confidential client's secret. The feed says who was deprovisioned and
// which sessions ended, so it is not public: anyone else gets
// ErrFeedUnauthorized. A negative cursor is ErrInvalidRequest.
func (a *admin) Revocations(ctx context.Context, after int64, clientID, secret string) (RevocationPage, error) {
	if err := a.authenticateFeedReader(ctx, clientID, secret); err != nil {
		return RevocationPage{}, err
	}
	if after < 0 {
		return RevocationPage{}, ErrInvalidRequest.WithDescription(descFeedCursor)
	}
	entries, highest, err := a.store.ListRevocations(ctx, after, RevocationPageLimit)
	if Unavailable(err) {
		return RevocationPage{}, ErrTemporarilyUnavailable.WithCause(fmt.Errorf("list revocations after %d: %w", after, err))
	}
	if err != nil {
		return RevocationPage{}, ErrServerError.WithCause(fmt.Errorf("list revocations after %d: %w", after, err))
	}
	page := RevocationPage{Entries: entries, Highest: highest, Next: max(after, highest)}
	// The store reads entries and the highest Seq in one transaction, so a
	// short page is complete up to Highest and Next can skip the collected
	// gap; a full page may have more behind it.
	if len(entries) >= RevocationPageLimit {
		page.Next = max(after, entries[len(entries)-1].Seq)
	}
	return page, nil
}

// authenticateFeedReader checks that clientID is a revocation-feed reader
// with a secret and that secret matches it, in constant time.
func (a *admin) authenticateFeedReader(ctx context.Context, clientID, secret string) error {
	if _, err := a.clients.authenticate(ctx, clientID, secret); err != nil {
		return ErrFeedUnauthorized.WithCause(err)
	}
	if !slices.Contains(a.readers, clientID) {
		return ErrFeedUnauthorized.WithCause(fmt.Errorf("client %q is not a revocation-feed reader", clientID))
	}
	return nil
}
