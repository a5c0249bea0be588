package bolt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/keyward/keyward/store"
)

// Feed entries and audit events are keyed by their Seq, 8 bytes big endian,
// so that key order is Seq order. Each kind has a counter in the meta bucket
// holding the highest Seq ever assigned: collecting entries never lowers it,
// so a Seq is never reused.

func seqKey(seq int64) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(seq))
}

// readSeq returns the counter at key in the meta bucket (0 when unset).
func readSeq(tx *bolt.Tx, key []byte) (int64, error) {
	v := tx.Bucket(bucketMeta).Get(key)
	if v == nil {
		return 0, nil
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("counter %s has %d bytes, want 8", key, len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), nil
}

// nextSeq increments the counter at key and returns its new value. It reads
// the counter from tx, so a re-run transaction assigns the same Seq again.
func nextSeq(tx *bolt.Tx, key []byte) (int64, error) {
	seq, err := readSeq(tx, key)
	if err != nil {
		return 0, err
	}
	seq++
	return seq, tx.Bucket(bucketMeta).Put(key, seqKey(seq))
}

func normRevocation(r store.Revocation) store.Revocation {
	r.NotBefore = utc(r.NotBefore)
	r.ExpiresAt = utc(r.ExpiresAt)
	r.CreatedAt = utc(r.CreatedAt)
	return r
}

func normAudit(e store.AuditEvent) store.AuditEvent {
	e.At = utc(e.At)
	return e
}

// appendRevocation stores r (normalised) under the next Seq and returns it.
func appendRevocation(tx *bolt.Tx, r store.Revocation) (store.Revocation, error) {
	seq, err := nextSeq(tx, keyRevocationSeq)
	if err != nil {
		return store.Revocation{}, err
	}
	r.Seq = seq
	v, err := encode(r)
	if err != nil {
		return store.Revocation{}, err
	}
	return r, tx.Bucket(bucketRevocations).Put(seqKey(seq), v)
}

// appendAudit stores e (normalised) under the next Seq and returns it.
func appendAudit(tx *bolt.Tx, e store.AuditEvent) (store.AuditEvent, error) {
	seq, err := nextSeq(tx, keyAuditSeq)
	if err != nil {
		return store.AuditEvent{}, err
	}
	e.Seq = seq
	v, err := encode(e)
	if err != nil {
		return store.AuditEvent{}, err
	}
	if err := tx.Bucket(bucketAudit).Put(seqKey(seq), v); err != nil {
		return store.AuditEvent{}, err
	}
	return e, putAuditIndexes(tx, e)
}

// deprovisionStep calls the test hook after a step of Deprovision has
// written.
func (s *Store) deprovisionStep(step string) error {
	if s.failDeprovisionAfter == nil {
		return nil
	}
	return s.failDeprovisionAfter(step)
}

// Deprovision takes a subject's access away in one write transaction: the
// subject (created with ID, CreatedAt = d.At when unknown; otherwise every
// other field kept) gets Disabled, NotBefore = UpdatedAt = d.At; its sessions
// and grants are deleted with their index entries; the feed entry
// {RevokeSubject, Subject, NotBefore: d.At, ExpiresAt: d.FeedExpiresAt,
// CreatedAt: d.At} and d.Audit are appended under the next Seqs. d.Subject
// must be a valid key and d.At non-zero.
func (s *Store) Deprovision(ctx context.Context, d store.Deprovisioning) (store.DeprovisionResult, error) {
	const op = "deprovision"
	at := utc(d.At)
	if err := checkKey("subject", d.Subject, true); err != nil {
		return store.DeprovisionResult{}, wrapErr(op, err)
	}
	if at.IsZero() {
		return store.DeprovisionResult{}, wrapErr(op, errors.New("at is zero"))
	}
	id := []byte(d.Subject)
	entry := store.Revocation{
		Kind:      store.RevokeSubject,
		Subject:   d.Subject,
		NotBefore: at,
		ExpiresAt: utc(d.FeedExpiresAt),
		CreatedAt: at,
	}
	event := normAudit(d.Audit)
	var res store.DeprovisionResult
	err := s.update(ctx, op, func(tx *bolt.Tx) error {
		res = store.DeprovisionResult{} // fn may be re-run
		sub := store.Subject{ID: d.Subject, CreatedAt: at}
		var old *store.Subject
		if v := tx.Bucket(bucketSubjects).Get(id); v != nil {
			if err := decode(v, &sub); err != nil {
				return refuse(err) // nothing written yet
			}
			o := sub
			old = &o
		}
		sub.Disabled, sub.NotBefore, sub.UpdatedAt = true, at, at
		sub.DisabledAt, sub.DisabledBy, sub.DisabledReason = at, event.Actor, event.Reason
		v, err := encode(sub)
		if err != nil {
			return refuse(err)
		}
		// From here on an error must abort the transaction (no refuse).
		if err := putSubject(tx, old, sub, v); err != nil {
			return err
		}
		if err := s.deprovisionStep("subject"); err != nil {
			return err
		}

		for _, sid := range scanIndex(tx, bucketSessionBySubj, d.Subject, "") {
			var sess store.Session
			err := get(tx, bucketSessions, sid, &sess)
			if errors.Is(err, store.ErrNotFound) { // a dangling index entry
				if err := tx.Bucket(bucketSessionBySubj).Delete(indexKey(d.Subject, sid)); err != nil {
					return err
				}
				continue
			}
			if err != nil {
				return err
			}
			if err := deleteSession(tx, sess); err != nil {
				return err
			}
			res.Sessions++
		}
		if err := s.deprovisionStep("sessions"); err != nil {
			return err
		}

		removed, err := deleteGrantsOf(tx, grantsOf(tx, bucketGrantBySubject, d.Subject, nil))
		if err != nil {
			return err
		}
		res.Grants, res.SessionClients = len(removed), sessionClients(removed)
		if err := s.deprovisionStep("grants"); err != nil {
			return err
		}

		if res.Revocation, err = appendRevocation(tx, entry); err != nil {
			return err
		}
		if err := s.deprovisionStep("revocation"); err != nil {
			return err
		}

		if _, err := appendAudit(tx, event); err != nil {
			return err
		}
		return s.deprovisionStep("audit")
	})
	if err != nil {
		return store.DeprovisionResult{}, err
	}
	return res, nil
}

// AppendRevocation stores r under the next Seq (its own Seq is ignored) and
// returns it as stored.
func (s *Store) AppendRevocation(ctx context.Context, r store.Revocation) (store.Revocation, error) {
	r = normRevocation(r)
	var stored store.Revocation
	err := s.update(ctx, "append revocation", func(tx *bolt.Tx) error {
		var err error
		stored, err = appendRevocation(tx, r)
		return err
	})
	if err != nil {
		return store.Revocation{}, err
	}
	return stored, nil
}

// ListRevocations returns the entries with Seq > after, ascending, at most
// limit of them (every one when limit <= 0), and the highest Seq ever
// assigned, both from one read transaction.
func (s *Store) ListRevocations(ctx context.Context, after int64, limit int) ([]store.Revocation, int64, error) {
	var (
		list    []store.Revocation
		highest int64
	)
	err := s.view(ctx, "list revocations", func(tx *bolt.Tx) error {
		list = nil
		var err error
		if highest, err = readSeq(tx, keyRevocationSeq); err != nil {
			return err
		}
		if after >= highest {
			return nil // also keeps after+1 from overflowing
		}
		c := tx.Bucket(bucketRevocations).Cursor()
		for k, v := c.Seek(seqKey(max(after, 0) + 1)); k != nil; k, v = c.Next() {
			if limit > 0 && len(list) == limit {
				break
			}
			var r store.Revocation
			if err := decode(v, &r); err != nil {
				return err
			}
			list = append(list, r)
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return list, highest, nil
}

// AppendAudit stores e under the next audit Seq (its own Seq is ignored) and
// returns it as stored.
func (s *Store) AppendAudit(ctx context.Context, e store.AuditEvent) (store.AuditEvent, error) {
	e = normAudit(e)
	var stored store.AuditEvent
	err := s.update(ctx, "append audit event", func(tx *bolt.Tx) error {
		var err error
		stored, err = appendAudit(tx, e)
		return err
	})
	if err != nil {
		return store.AuditEvent{}, err
	}
	return stored, nil
}

// ListAudit returns the newest limit events (every event when limit <= 0),
// oldest first. Audit events are never collected.
func (s *Store) ListAudit(ctx context.Context, limit int) ([]store.AuditEvent, error) {
	var list []store.AuditEvent
	err := s.view(ctx, "list audit events", func(tx *bolt.Tx) error {
		list = nil
		c := tx.Bucket(bucketAudit).Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			if limit > 0 && len(list) == limit {
				break
			}
			var e store.AuditEvent
			if err := decode(v, &e); err != nil {
				return err
			}
			list = append(list, e)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Reverse(list)
	return list, nil
}
