package bolt_test

import (
	"path/filepath"
	"testing"

	bbolt "go.etcd.io/bbolt"

	"github.com/keyward/keyward/store"
	"github.com/keyward/keyward/store/bolt"
)

// A file written before the search indexes existed gets them at Open: the
// subjects and audit events it holds are found.
func TestOpenIndexesOlderFile(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "keyward.db")
	s := open(t, bolt.Options{Path: path})
	if err := s.CreateSubject(ctx, store.Subject{ID: "u-1", Email: "Alice@Example.com", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendAudit(ctx, store.AuditEvent{At: t0, Actor: "admin-api", Action: "reinstate", Target: "u-1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Make it an older file: no index buckets, no marker.
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range []string{"subjects_search", "audit_by_target", "audit_by_action"} {
			if err := tx.DeleteBucket([]byte(b)); err != nil {
				return err
			}
		}
		return tx.Bucket([]byte("meta")).Delete([]byte("search_indexed"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, bolt.Options{Path: path})
	page, err := s.SearchSubjects(ctx, store.SubjectQuery{Prefix: "alice@"})
	if err != nil || len(page.Subjects) != 1 || page.Subjects[0].ID != "u-1" {
		t.Errorf("SearchSubjects(alice@) after reopening = %+v, %v; want u-1", page, err)
	}
	audit, err := s.QueryAudit(ctx, store.AuditQuery{Target: "u-1"})
	if err != nil || len(audit.Events) != 1 || audit.Events[0].Action != "reinstate" {
		t.Errorf("QueryAudit(u-1) after reopening = %+v, %v; want the reinstate event", audit, err)
	}
}
