package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/keyward/keyward/store"
)

// The console's indexes (store.Searcher).
var (
	// field byte + lower(value) + \0 + id → id, one entry per non-empty
	// searchable field of each subject.
	bucketSubjectSearch = []byte("subjects_search")
	// target\0seq → "", and subject\0seq → "" for an event with a
	// Subject: the Person index as well as the Target one (a Target query
	// skips the Subject entries by its filter). Only events written since
	// AuditEvent.Subject exists carry one, so older files need no rebuild.
	bucketAuditByTarget = []byte("audit_by_target")
	bucketAuditByAction = []byte("audit_by_action") // action\0seq → ""
	// keySearchIndexed, in the meta bucket, marks a file whose search
	// indexes cover every subject and audit event (files written by an
	// older keyward get them built once at Open).
	keySearchIndexed = []byte("search_indexed")
)

// subjectSearchKeys returns the index keys of sub: one per searchable
// field that is not empty.
func subjectSearchKeys(sub store.Subject) [][]byte {
	fields := []string{sub.ID, sub.Email, sub.Name, sub.UpstreamSubject, sub.UpstreamID}
	var keys [][]byte
	for i, v := range fields {
		if v == "" {
			continue
		}
		keys = append(keys, subjectSearchKey(byte('a'+i), strings.ToLower(v), sub.ID))
	}
	return keys
}

func subjectSearchKey(field byte, lowered, id string) []byte {
	k := make([]byte, 0, 2+len(lowered)+len(id))
	k = append(k, field)
	k = append(k, lowered...)
	k = append(k, sep...)
	return append(k, id...)
}

// putSubject writes sub and moves its search-index entries from old (nil:
// none, a new subject).
func putSubject(tx *bolt.Tx, old *store.Subject, sub store.Subject, v []byte) error {
	idx := tx.Bucket(bucketSubjectSearch)
	if old != nil {
		for _, k := range subjectSearchKeys(*old) {
			if err := idx.Delete(k); err != nil {
				return err
			}
		}
	}
	for _, k := range subjectSearchKeys(sub) {
		if err := idx.Put(k, []byte(sub.ID)); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketSubjects).Put([]byte(sub.ID), v)
}

// putAuditIndexes adds e's entries to the audit indexes.
func putAuditIndexes(tx *bolt.Tx, e store.AuditEvent) error {
	if err := tx.Bucket(bucketAuditByTarget).Put(indexKey(e.Target, seqKey(e.Seq)), nil); err != nil {
		return err
	}
	if e.Subject != "" && e.Subject != e.Target {
		if err := tx.Bucket(bucketAuditByTarget).Put(indexKey(e.Subject, seqKey(e.Seq)), nil); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketAuditByAction).Put(indexKey(e.Action, seqKey(e.Seq)), nil)
}

// buildSearchIndexes indexes every subject and audit event of a file that
// has no search indexes yet, in one transaction.
func buildSearchIndexes(ctx context.Context, db *bolt.DB, logger *slog.Logger) error {
	return db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta.Get(keySearchIndexed) != nil {
			return nil
		}
		var subjects, events int
		err := tx.Bucket(bucketSubjects).ForEach(func(_, v []byte) error {
			var sub store.Subject
			if err := decode(v, &sub); err != nil {
				return err
			}
			subjects++
			return putSubject(tx, nil, sub, v)
		})
		if err != nil {
			return fmt.Errorf("index subjects: %w", err)
		}
		err = tx.Bucket(bucketAudit).ForEach(func(_, v []byte) error {
			var e store.AuditEvent
			if err := decode(v, &e); err != nil {
				return err
			}
			events++
			return putAuditIndexes(tx, e)
		})
		if err != nil {
			return fmt.Errorf("index audit events: %w", err)
		}
		if subjects+events > 0 {
			logger.InfoContext(ctx, "search indexes built", "subjects", subjects, "audit_events", events)
		}
		return meta.Put(keySearchIndexed, []byte("1"))
	})
}

// SearchSubjects implements store.Searcher: with a prefix, it walks the
// index range of the prefix in each field and collects the IDs after
// q.After; without, it walks the subjects from q.After.
func (s *Store) SearchSubjects(ctx context.Context, q store.SubjectQuery) (store.SubjectPage, error) {
	limit := store.PageSize(q.Limit)
	var page store.SubjectPage
	err := s.view(ctx, "search subjects", func(tx *bolt.Tx) error {
		page = store.SubjectPage{}
		var ids []string
		if q.Prefix == "" {
			c := tx.Bucket(bucketSubjects).Cursor()
			k, _ := c.Seek([]byte(q.After))
			if k != nil && string(k) == q.After {
				k, _ = c.Next()
			}
			for ; k != nil && len(ids) <= limit; k, _ = c.Next() {
				ids = append(ids, string(k))
			}
		} else {
			ids = searchIDs(tx, strings.ToLower(q.Prefix), q.After, limit)
		}
		if len(ids) > limit {
			ids = ids[:limit]
			page.Next = ids[limit-1]
		}
		for _, id := range ids {
			var sub store.Subject
			if err := get(tx, bucketSubjects, []byte(id), &sub); err != nil {
				return fmt.Errorf("subject %q of the search index: %w", id, err)
			}
			page.Subjects = append(page.Subjects, sub)
		}
		return nil
	})
	if err != nil {
		return store.SubjectPage{}, err
	}
	return page, nil
}

// searchIDs returns, sorted and distinct, the first limit+1 IDs after
// `after` of the subjects with a field starting with prefix (lower-cased).
// It walks every matching index entry but keeps only the limit+1 least IDs
// (a max-heap), so a short prefix matching half the people costs a scan,
// not a sort of them all.
func searchIDs(tx *bolt.Tx, prefix, after string, limit int) []string {
	if strings.Contains(prefix, sep) {
		return nil // no field value of an index key can hold it before the separator
	}
	keep := &leastIDs{max: limit + 1, in: map[string]struct{}{}}
	c := tx.Bucket(bucketSubjectSearch).Cursor()
	for field := byte('a'); field < 'a'+5; field++ {
		p := append([]byte{field}, prefix...)
		for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			if string(v) > after {
				keep.offer(v)
			}
		}
	}
	ids := keep.ids
	slices.Sort(ids)
	return ids
}

// leastIDs keeps the max least distinct IDs offered, as a max-heap.
type leastIDs struct {
	max int
	ids []string
	in  map[string]struct{}
}

func (l *leastIDs) offer(v []byte) {
	if len(l.ids) == l.max && string(v) >= l.ids[0] {
		return
	}
	if _, dup := l.in[string(v)]; dup {
		return
	}
	id := string(v)
	if len(l.ids) == l.max { // replace the greatest
		delete(l.in, l.ids[0])
		l.ids[0] = id
		l.down(0)
	} else {
		l.ids = append(l.ids, id)
		l.up(len(l.ids) - 1)
	}
	l.in[id] = struct{}{}
}

func (l *leastIDs) up(i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if l.ids[parent] >= l.ids[i] {
			return
		}
		l.ids[parent], l.ids[i] = l.ids[i], l.ids[parent]
		i = parent
	}
}

func (l *leastIDs) down(i int) {
	for {
		largest := i
		for _, c := range []int{2*i + 1, 2*i + 2} {
			if c < len(l.ids) && l.ids[c] > l.ids[largest] {
				largest = c
			}
		}
		if largest == i {
			return
		}
		l.ids[i], l.ids[largest] = l.ids[largest], l.ids[i]
		i = largest
	}
}

// QueryAudit implements store.Searcher: it walks back from q.Before
// through the Target index (for Person or Target), else the Action index, else the log itself,
// and applies the other filters to each event.
func (s *Store) QueryAudit(ctx context.Context, q store.AuditQuery) (store.AuditPage, error) {
	limit := store.PageSize(q.Limit)
	q.Since, q.Until = utc(q.Since), utc(q.Until)
	var page store.AuditPage
	err := s.view(ctx, "query audit events", func(tx *bolt.Tx) error {
		page = store.AuditPage{}
		audit := tx.Bucket(bucketAudit)
		visit := func(v []byte) (bool, error) {
			var e store.AuditEvent
			if err := decode(v, &e); err != nil {
				return false, err
			}
			if !q.Matches(e) {
				return true, nil
			}
			if len(page.Events) == limit {
				page.Next = page.Events[limit-1].Seq
				return false, nil
			}
			page.Events = append(page.Events, e)
			return true, nil
		}
		before := uint64(q.Before)
		if q.Before <= 0 {
			before = 1<<63 - 1
		}
		var index []byte
		var value string
		switch {
		case q.Person != "":
			index, value = bucketAuditByTarget, q.Person
		case q.Target != "":
			index, value = bucketAuditByTarget, q.Target
		case q.Action != "":
			index, value = bucketAuditByAction, q.Action
		default:
			c := audit.Cursor()
			for k, v := seekBefore(c, binary.BigEndian.AppendUint64(nil, before)); k != nil; k, v = c.Prev() {
				if more, err := visit(v); err != nil || !more {
					return err
				}
			}
			return nil
		}
		prefix := []byte(value + sep)
		c := tx.Bucket(index).Cursor()
		for k, _ := seekBefore(c, binary.BigEndian.AppendUint64(bytes.Clone(prefix), before)); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Prev() {
			v := audit.Get(k[len(prefix):])
			if v == nil {
				continue // not possible: events are never deleted
			}
			if more, err := visit(v); err != nil || !more {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return store.AuditPage{}, err
	}
	return page, nil
}

// seekBefore positions c on the last key below key.
func seekBefore(c *bolt.Cursor, key []byte) ([]byte, []byte) {
	k, _ := c.Seek(key)
	if k == nil {
		return c.Last()
	}
	return c.Prev()
}

// ListGrantsBySubject implements store.Searcher from the grants_by_subject
// index (keys subject\0kind\0signature, so already in order).
func (s *Store) ListGrantsBySubject(ctx context.Context, subject string, kinds ...store.GrantKind) ([]store.Grant, error) {
	if subject == "" {
		return nil, nil
	}
	var list []store.Grant
	err := s.view(ctx, "list grants by subject", func(tx *bolt.Tx) error {
		list = nil
		keys := grantsOf(tx, bucketGrantBySubject, subject, kinds)
		slices.SortFunc(keys, bytes.Compare)
		for _, k := range keys {
			var g store.Grant
			if err := get(tx, bucketGrants, k, &g); err != nil {
				continue // a dangling index entry, or a kind listed twice
			}
			if len(list) > 0 && list[len(list)-1].Kind == g.Kind && list[len(list)-1].Signature == g.Signature {
				continue
			}
			list = append(list, g)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return list, nil
}
