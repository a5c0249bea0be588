package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/keyward/keyward/store"
)

// gcChunk is how many records one garbage-collection statement removes, so
// that a large collection holds its row locks briefly.
const gcChunk = 1000

// gcTables are the collectable tables, in GCResult order, with the key
// that a chunk's DELETE selects rows by.
var gcTables = []struct{ table, key string }{
	{"login_attempts", "id"},
	{"sessions", "id"},
	{"grants", "kind, signature"},
	{"revocations", "seq"},
}

// GarbageCollect removes login attempts, sessions, grants and revocation-feed
// entries whose ExpiresAt is non-zero and not after now, in statements of
// at most gcChunk rows, each its own transaction. Subjects, the key set,
// audit events and the Seq counters are never collected. On error it reports
// what it removed so far.
func (s *Store) GarbageCollect(ctx context.Context, now time.Time) (store.GCResult, error) {
	var res store.GCResult
	counts := []*int{&res.LoginAttempts, &res.Sessions, &res.Grants, &res.Revocations}
	for i, t := range gcTables {
		sql := fmt.Sprintf(`DELETE FROM %[1]s WHERE (%[2]s) IN (
			SELECT %[2]s FROM %[1]s WHERE expires_at <= $1 LIMIT %[3]d FOR UPDATE SKIP LOCKED)`,
			t.table, t.key, gcChunk)
		for {
			n, err := s.execCount(ctx, "garbage collect "+t.table, sql, ts(now))
			*counts[i] += n
			if err != nil {
				return res, err
			}
			if n < gcChunk {
				break
			}
		}
	}
	if !res.IsEmpty() {
		s.logger.DebugContext(ctx, "garbage collected",
			"login_attempts", res.LoginAttempts, "sessions", res.Sessions, "grants", res.Grants,
			"revocations", res.Revocations)
	}
	return res, nil
}
