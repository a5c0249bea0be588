package e2e

import (
	"context"
	"net/http"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/store"
	"github.com/keyward/keyward/store/bolt"
)

// countingStore counts the store's write transactions: every call of a
// method that writes (a non-empty Apply is one transaction, as is each
// Create, Update, Upsert, Delete …), and remembers which methods they were.
type countingStore struct {
	store.Store
	mu     sync.Mutex
	writes []string
}

func (s *countingStore) wrote(method string) {
	s.mu.Lock()
	s.writes = append(s.writes, method)
	s.mu.Unlock()
}

// take returns the writes counted since the last take and starts afresh.
func (s *countingStore) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.writes
	s.writes = nil
	return w
}

func (s *countingStore) Apply(ctx context.Context, b store.Batch) (store.BatchResult, error) {
	if !b.IsEmpty() {
		s.wrote("Apply")
	}
	return s.Store.Apply(ctx, b)
}

func (s *countingStore) CreateLoginAttempt(ctx context.Context, a store.LoginAttempt) error {
	s.wrote("CreateLoginAttempt")
	return s.Store.CreateLoginAttempt(ctx, a)
}

func (s *countingStore) UpdateLoginAttempt(ctx context.Context, id string, f func(store.LoginAttempt) (store.LoginAttempt, error)) error {
	s.wrote("UpdateLoginAttempt")
	return s.Store.UpdateLoginAttempt(ctx, id, f)
}

func (s *countingStore) DeleteLoginAttempt(ctx context.Context, id string) error {
	s.wrote("DeleteLoginAttempt")
	return s.Store.DeleteLoginAttempt(ctx, id)
}

func (s *countingStore) CreateSession(ctx context.Context, x store.Session) error {
	s.wrote("CreateSession")
	return s.Store.CreateSession(ctx, x)
}

func (s *countingStore) UpdateSession(ctx context.Context, id string, f func(store.Session) (store.Session, error)) error {
	s.wrote("UpdateSession")
	return s.Store.UpdateSession(ctx, id, f)
}

func (s *countingStore) DeleteSession(ctx context.Context, id string) error {
	s.wrote("DeleteSession")
	return s.Store.DeleteSession(ctx, id)
}

func (s *countingStore) CreateSubject(ctx context.Context, x store.Subject) error {
	s.wrote("CreateSubject")
	return s.Store.CreateSubject(ctx, x)
}

func (s *countingStore) UpdateSubject(ctx context.Context, id string, f func(store.Subject) (store.Subject, error)) error {
	s.wrote("UpdateSubject")
	return s.Store.UpdateSubject(ctx, id, f)
}

func (s *countingStore) UpsertSubject(ctx context.Context, id string, c func() store.Subject, f func(store.Subject) (store.Subject, error)) (store.Subject, error) {
	s.wrote("UpsertSubject")
	return s.Store.UpsertSubject(ctx, id, c, f)
}

func (s *countingStore) CreateGrant(ctx context.Context, g store.Grant) error {
	s.wrote("CreateGrant " + string(g.Kind))
	return s.Store.CreateGrant(ctx, g)
}

func (s *countingStore) UpdateGrant(ctx context.Context, k store.GrantKind, sig string, f func(store.Grant) (store.Grant, error)) error {
	s.wrote("UpdateGrant " + string(k))
	return s.Store.UpdateGrant(ctx, k, sig, f)
}

func (s *countingStore) DeleteGrant(ctx context.Context, k store.GrantKind, sig string) error {
	s.wrote("DeleteGrant " + string(k))
	return s.Store.DeleteGrant(ctx, k, sig)
}

func (s *countingStore) DeleteGrantsByRequest(ctx context.Context, id string, kinds ...store.GrantKind) (int, error) {
	s.wrote("DeleteGrantsByRequest")
	return s.Store.DeleteGrantsByRequest(ctx, id, kinds...)
}

func (s *countingStore) UpdateGrantsByRequest(ctx context.Context, id string, kinds []store.GrantKind, f func(store.Grant) (store.Grant, error)) (int, error) {
	s.wrote("UpdateGrantsByRequest")
	return s.Store.UpdateGrantsByRequest(ctx, id, kinds, f)
}

func (s *countingStore) DeleteGrantsBySubject(ctx context.Context, subject string) (int, error) {
	s.wrote("DeleteGrantsBySubject")
	return s.Store.DeleteGrantsBySubject(ctx, subject)
}

func (s *countingStore) EndSession(ctx context.Context, id string, feed store.Revocation) (store.GrantDeletion, error) {
	s.wrote("EndSession")
	return s.Store.EndSession(ctx, id, feed)
}

func (s *countingStore) UpdateKeySet(ctx context.Context, f func(store.KeySet) (store.KeySet, error)) error {
	s.wrote("UpdateKeySet")
	return s.Store.UpdateKeySet(ctx, f)
}

func (s *countingStore) Deprovision(ctx context.Context, d store.Deprovisioning) (store.DeprovisionResult, error) {
	s.wrote("Deprovision")
	return s.Store.Deprovision(ctx, d)
}

func (s *countingStore) AppendRevocation(ctx context.Context, r store.Revocation) (store.Revocation, error) {
	s.wrote("AppendRevocation")
	return s.Store.AppendRevocation(ctx, r)
}

func (s *countingStore) AppendAudit(ctx context.Context, e store.AuditEvent) (store.AuditEvent, error) {
	s.wrote("AppendAudit")
	return s.Store.AppendAudit(ctx, e)
}

func (s *countingStore) GarbageCollect(ctx context.Context, now time.Time) (store.GCResult, error) {
	s.wrote("GarbageCollect")
	return s.Store.GarbageCollect(ctx, now)
}

// TestStoreWritesPerOperation counts the store's write transactions per
// operation (issue #14): a whole sign-in (authorize, callback, code →
// token) with one upstream and no chooser at most 3, a refresh 1, token
// exchange and client credentials none (1 when the trust rule makes the
// subject token single-use). Structural counts, not timings.
func TestStoreWritesPerOperation(t *testing.T) {
	bst, err := bolt.Open(t.Context(), bolt.Options{Path: filepath.Join(t.TempDir(), "keyward.db"), NoSync: true})
	if err != nil {
		t.Fatalf("bolt.Open() = %v", err)
	}
	t.Cleanup(func() { _ = bst.Close() })
	st := &countingStore{Store: bst}
	x := newExchangeEnvWith(t, st)
	c := x.client(appID, appSecret, appRedir, nil)
	var tok map[string]any

	tests := []struct {
		name string
		want int
		run  func(t *testing.T)
	}{
		{"sign-in: authorize, callback, code → token", 3, func(t *testing.T) {
			tk, _ := c.signIn()
			tok = map[string]any{"refresh_token": tk.RefreshToken, "access_token": tk.AccessToken}
		}},
		{"refresh", 1, func(t *testing.T) {
			status, m := c.refresh(tok["refresh_token"].(string))
			if status != http.StatusOK {
				t.Fatalf("refresh = %d %v", status, m)
			}
			tok = m
		}},
		{"token exchange of a Keyward access token", 0, func(t *testing.T) {
			status, m := x.exchange(t, gwID, gwSecret, url.Values{
				"subject_token": {tok["access_token"].(string)}, "subject_token_type": {tokenTypeAT}, "audience": {"orders-api"},
			})
			if status != http.StatusOK {
				t.Fatalf("exchange = %d %v", status, m)
			}
		}},
		{"client credentials", 0, func(t *testing.T) {
			x.clientCredentials(t, botID, botSecret, url.Values{"audience": {"orders-api"}})
		}},
		{"token exchange, single-use subject token", 1, func(t *testing.T) {
			status, m := x.exchange(t, ciID, "", url.Values{
				"subject_token": {x.ciToken(nil)}, "subject_token_type": {tokenTypeJW}, "audience": {"deploy-api"},
			})
			if status != http.StatusOK {
				t.Fatalf("exchange = %d %v", status, m)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st.take()
			tt.run(t)
			if got := st.take(); len(got) != tt.want {
				t.Errorf("%d write transactions %q, want %d", len(got), got, tt.want)
			}
		})
	}
}
