package bolt

import (
	"context"
	"errors"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/keyward/keyward/store"
)

func normGrant(g store.Grant) store.Grant {
	g.AccessExpiresAt = utc(g.AccessExpiresAt)
	g.RotatedAt = utc(g.RotatedAt)
	g.GraceUsedAt = utc(g.GraceUsedAt)
	g.RequestedAt = utc(g.RequestedAt)
	g.ExpiresAt = utc(g.ExpiresAt)
	return g
}

func checkGrant(g store.Grant) error {
	return errors.Join(
		checkGrantKey(g.Kind, g.Signature),
		checkKey("request id", g.RequestID, false),
		checkKey("subject", g.Subject, false),
		checkKey("session id", g.SessionID, false),
	)
}

// grantIndexes lists the index buckets of a grant with the indexed field.
var grantIndexes = []struct {
	bucket []byte
	field  func(store.Grant) string
}{
	{bucketGrantByRequest, func(g store.Grant) string { return g.RequestID }},
	{bucketGrantBySubject, func(g store.Grant) string { return g.Subject }},
	{bucketGrantBySession, func(g store.Grant) string { return g.SessionID }},
}

// putGrant writes g and moves its index entries from old (nil: a new grant).
func putGrant(tx *bolt.Tx, old *store.Grant, g store.Grant, v []byte) error {
	key := grantKey(g.Kind, g.Signature)
	if err := tx.Bucket(bucketGrants).Put(key, v); err != nil {
		return err
	}
	for _, idx := range grantIndexes {
		oldValue := ""
		if old != nil {
			oldValue = idx.field(*old)
		}
		if err := setIndex(tx, idx.bucket, old == nil, oldValue, idx.field(g), key); err != nil {
			return err
		}
	}
	return nil
}

func deleteGrant(tx *bolt.Tx, g store.Grant) error {
	key := grantKey(g.Kind, g.Signature)
	if err := tx.Bucket(bucketGrants).Delete(key); err != nil {
		return err
	}
	for _, idx := range grantIndexes {
		if err := tx.Bucket(idx.bucket).Delete(indexKey(idx.field(g), key)); err != nil {
			return err
		}
	}
	return nil
}

// CreateGrant stores g, or returns ErrConflict when (Kind, Signature) is
// taken.
func (s *Store) CreateGrant(ctx context.Context, g store.Grant) error {
	const op = "create grant"
	g = normGrant(g)
	if err := checkGrant(g); err != nil {
		return wrapErr(op, err)
	}
	v, err := encode(g)
	if err != nil {
		return wrapErr(op, err)
	}
	return s.update(ctx, op, func(tx *bolt.Tx) error {
		return createGrant(tx, g, v)
	})
}

// createGrant stores g, encoded as v, with its index entries; an existing
// (Kind, Signature) is refused with ErrConflict before anything is written.
func createGrant(tx *bolt.Tx, g store.Grant, v []byte) error {
	if tx.Bucket(bucketGrants).Get(grantKey(g.Kind, g.Signature)) != nil {
		return refuse(store.ErrConflict)
	}
	return putGrant(tx, nil, g, v)
}

// GetGrant returns the grant (kind, signature), or ErrNotFound.
func (s *Store) GetGrant(ctx context.Context, kind store.GrantKind, signature string) (store.Grant, error) {
	var g store.Grant
	err := s.view(ctx, "get grant", func(tx *bolt.Tx) error {
		return get(tx, bucketGrants, grantKey(kind, signature), &g)
	})
	return g, err
}

// updateGrant applies updater to the grant at key. With refuseErrs set,
// errors found before writing are refusals (see Store.update); a caller that
// may already have written in this transaction passes false.
func updateGrant(tx *bolt.Tx, key []byte, updater func(store.Grant) (store.Grant, error), refuseErrs bool) error {
	fail := func(err error) error {
		if refuseErrs {
			return refuse(err)
		}
		return err
	}
	var old store.Grant
	if err := get(tx, bucketGrants, key, &old); err != nil {
		return fail(err)
	}
	g, err := updater(old)
	if err != nil {
		return fail(updaterError{err})
	}
	g = normGrant(g)
	if g.Kind != old.Kind || g.Signature != old.Signature {
		return fail(errChangedKey)
	}
	if err := checkGrant(g); err != nil {
		return fail(err)
	}
	v, err := encode(g)
	if err != nil {
		return fail(err)
	}
	return putGrant(tx, &old, g, v)
}

// UpdateGrant applies updater to the grant (kind, signature). The updater may
// change RequestID, Subject and SessionID but not Kind or Signature.
func (s *Store) UpdateGrant(ctx context.Context, kind store.GrantKind, signature string, updater func(store.Grant) (store.Grant, error)) error {
	return s.update(ctx, "update grant", func(tx *bolt.Tx) error {
		return updateGrant(tx, grantKey(kind, signature), updater, true)
	})
}

// DeleteGrant removes the grant (kind, signature), or returns ErrNotFound.
func (s *Store) DeleteGrant(ctx context.Context, kind store.GrantKind, signature string) error {
	return s.update(ctx, "delete grant", func(tx *bolt.Tx) error {
		var old store.Grant
		if err := get(tx, bucketGrants, grantKey(kind, signature), &old); err != nil {
			return refuse(err)
		}
		return deleteGrant(tx, old)
	})
}

// grantsOf returns the primary keys indexed under value whose kind is in
// kinds (every kind when empty).
func grantsOf(tx *bolt.Tx, bucket []byte, value string, kinds []store.GrantKind) [][]byte {
	if len(kinds) == 0 {
		return scanIndex(tx, bucket, value, "")
	}
	var keys [][]byte
	for _, k := range kinds {
		keys = append(keys, scanIndex(tx, bucket, value, string(k)+sep)...)
	}
	return keys
}

// deleteGrants removes the grants at keys and returns how many it removed.
func deleteGrants(tx *bolt.Tx, keys [][]byte) (int, error) {
	removed, err := deleteGrantsOf(tx, keys)
	return len(removed), err
}

// deleteGrantsOf removes the grants at keys and returns them.
func deleteGrantsOf(tx *bolt.Tx, keys [][]byte) ([]store.Grant, error) {
	var removed []store.Grant
	for _, key := range keys {
		var g store.Grant
		err := get(tx, bucketGrants, key, &g)
		if errors.Is(err, store.ErrNotFound) {
			continue // a kind listed twice
		}
		if err != nil {
			return nil, err
		}
		if err := deleteGrant(tx, g); err != nil {
			return nil, err
		}
		removed = append(removed, g)
	}
	return removed, nil
}

// sessionClients maps the SessionID of each grant that has one to the
// distinct non-empty ClientIDs of those grants, sorted; nil when none.
func sessionClients(grants []store.Grant) map[string][]string {
	var out map[string][]string
	for _, g := range grants {
		if g.SessionID == "" || g.ClientID == "" {
			continue
		}
		if out == nil {
			out = make(map[string][]string)
		}
		if ids := out[g.SessionID]; !slices.Contains(ids, g.ClientID) {
			out[g.SessionID] = append(ids, g.ClientID)
		}
	}
	for _, ids := range out {
		slices.Sort(ids)
	}
	return out
}

// DeleteGrantsByRequest removes every grant of requestID whose kind is in
// kinds (every kind when empty) and reports how many it removed.
func (s *Store) DeleteGrantsByRequest(ctx context.Context, requestID string, kinds ...store.GrantKind) (int, error) {
	var n int
	err := s.update(ctx, "delete grants by request", func(tx *bolt.Tx) error {
		var err error
		n, err = deleteGrants(tx, grantsOf(tx, bucketGrantByRequest, requestID, kinds))
		return err
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// UpdateGrantsByRequest applies updater to every grant of requestID whose
// kind is in kinds (every kind when empty), all or none, and reports how many
// it updated.
func (s *Store) UpdateGrantsByRequest(ctx context.Context, requestID string, kinds []store.GrantKind, updater func(store.Grant) (store.Grant, error)) (int, error) {
	var n int
	err := s.update(ctx, "update grants by request", func(tx *bolt.Tx) error {
		n = 0
		seen := make(map[string]bool)
		for _, key := range grantsOf(tx, bucketGrantByRequest, requestID, kinds) {
			if seen[string(key)] {
				continue // a kind listed twice
			}
			seen[string(key)] = true
			// Nothing is written before the first grant, so its errors
			// need not roll back the batch.
			if err := updateGrant(tx, key, updater, n == 0); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// EndSession removes the session sessionID and every grant of it, and
// appends feed when its Kind is set, in one transaction, and reports how
// many grants it removed, their distinct client ids and the appended entry.
// An empty sessionID matches nothing (not the grants issued outside a
// session).
func (s *Store) EndSession(ctx context.Context, sessionID string, feed store.Revocation) (store.GrantDeletion, error) {
	var res store.GrantDeletion
	err := s.update(ctx, "delete grants by session", func(tx *bolt.Tx) error {
		res = store.GrantDeletion{} // fn may be re-run
		if sessionID == "" {
			return nil
		}
		var sess store.Session
		switch err := get(tx, bucketSessions, []byte(sessionID), &sess); {
		case err == nil:
			if err := deleteSession(tx, sess); err != nil {
				return err
			}
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		removed, err := deleteGrantsOf(tx, grantsOf(tx, bucketGrantBySession, sessionID, nil))
		if err != nil {
			return err
		}
		res.Grants = len(removed)
		res.ClientIDs = sessionClients(removed)[sessionID]
		if feed.Kind != "" {
			res.Revocation, err = appendRevocation(tx, normRevocation(feed))
		}
		return err
	})
	if err != nil {
		return store.GrantDeletion{}, err
	}
	return res, nil
}

// DeleteGrantsBySubject removes every grant of subject and reports how many
// it removed. An empty subject matches nothing (not the grants without
// one).
func (s *Store) DeleteGrantsBySubject(ctx context.Context, subject string) (int, error) {
	var n int
	err := s.update(ctx, "delete grants by subject", func(tx *bolt.Tx) error {
		n = 0
		if subject == "" {
			return nil
		}
		var err error
		n, err = deleteGrants(tx, grantsOf(tx, bucketGrantBySubject, subject, nil))
		return err
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
