package e2e

import (
	"context"
	"errors"
	"net/http/cookiejar"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/store"
	"github.com/keyward/keyward/store/bolt"
	"github.com/keyward/keyward/test/brokertest"
)

// racingStore runs hook once, just before the first refresh-token record is
// stored after arm (by CreateGrant, or by the Apply of a unit of work that
// creates it): the moment after a token request read the record it redeems
// and signed the new tokens, and before it stores them, when a concurrent
// revocation used to leave the new tokens alive.
type racingStore struct {
	store.Store
	mu   sync.Mutex
	kind store.GrantKind // the kind whose creation runs hook
	hook func(ctx context.Context, g store.Grant)
}

func (s *racingStore) arm(hook func(ctx context.Context, g store.Grant)) {
	s.armAt(store.GrantRefreshToken, hook)
}

func (s *racingStore) armAt(kind store.GrantKind, hook func(ctx context.Context, g store.Grant)) {
	s.mu.Lock()
	s.kind, s.hook = kind, hook
	s.mu.Unlock()
}

func (s *racingStore) CreateGrant(ctx context.Context, g store.Grant) error {
	s.maybeHook(ctx, g)
	return s.Store.CreateGrant(ctx, g)
}

func (s *racingStore) Apply(ctx context.Context, b store.Batch) (store.BatchResult, error) {
	for _, g := range b.GrantCreates {
		s.maybeHook(ctx, g)
	}
	return s.Store.Apply(ctx, b)
}

// maybeHook runs the armed hook if g is of its kind.
func (s *racingStore) maybeHook(ctx context.Context, g store.Grant) {
	s.mu.Lock()
	hook := s.hook
	if g.Kind == s.kind {
		s.hook = nil
	} else {
		hook = nil
	}
	s.mu.Unlock()
	if hook != nil {
		hook(ctx, g)
	}
}

// newRacingEnv is a broker on a bbolt store wrapped in a racingStore, and
// the OAuth config of its client asking for a refresh token.
func newRacingEnv(t *testing.T) (*bolt.Store, *racingStore, *brokertest.Env, oauth2.Config) {
	t.Helper()
	bst, err := bolt.Open(t.Context(), bolt.Options{Path: filepath.Join(t.TempDir(), "keyward.db"), NoSync: true})
	if err != nil {
		t.Fatalf("open bolt: %v", err)
	}
	t.Cleanup(func() { _ = bst.Close() })
	st := &racingStore{Store: bst}
	env := brokertest.New(t, brokertest.Options{
		Store:     st,
		AutoLogin: "alice",
		Clients:   []broker.Client{{ID: appID, Name: "The App", Secret: appSecret, RedirectURIs: []string{appRedir}}},
	})
	oc := oauth2.Config{
		ClientID: appID, ClientSecret: appSecret, RedirectURL: appRedir,
		Endpoint: oauth2.Endpoint{AuthURL: env.Issuer + "/authorize", TokenURL: env.Issuer + "/token", AuthStyle: oauth2.AuthStyleInHeader},
		Scopes:   []string{"openid", "email", "offline_access"},
	}
	return bst, st, env, oc
}

// familySize counts the grants of requestID, any kind, without changing them.
func familySize(t *testing.T, st store.Store, requestID string) int {
	t.Helper()
	n, err := st.UpdateGrantsByRequest(t.Context(), requestID, nil, func(g store.Grant) (store.Grant, error) { return g, nil })
	if err != nil {
		t.Fatalf("count grants: %v", err)
	}
	return n
}

// TestRevocationWhileIssuingLeavesNoLiveToken: a revocation that lands
// between the redemption of a code or refresh token and the storing of the
// new tokens must not leave those tokens alive.
func TestRevocationWhileIssuingLeavesNoLiveToken(t *testing.T) {
	revokeFamily := func(t *testing.T, st store.Store) func(ctx context.Context, g store.Grant) {
		return func(ctx context.Context, g store.Grant) {
			if _, err := st.DeleteGrantsByRequest(ctx, g.RequestID); err != nil {
				t.Errorf("revoke family: %v", err)
			}
		}
	}
	deprovision := func(t *testing.T, st store.Store) func(ctx context.Context, g store.Grant) {
		return func(ctx context.Context, g store.Grant) {
			now := time.Now().UTC()
			if _, err := st.Deprovision(ctx, store.Deprovisioning{
				Subject: g.Subject, At: now, FeedExpiresAt: now.Add(time.Hour),
				Audit: store.AuditEvent{At: now, Actor: "test", Action: "subject.deprovision", Target: g.Subject},
			}); err != nil {
				t.Errorf("deprovision: %v", err)
			}
		}
	}
	tests := []struct {
		name string
		// atCode: the race hits the code redemption; otherwise a refresh.
		atCode bool
		hook   func(t *testing.T, st store.Store) func(ctx context.Context, g store.Grant)
	}{
		{"refresh, family revoked", false, revokeFamily},
		{"refresh, subject deprovisioned", false, deprovision},
		{"code redemption, subject deprovisioned", true, deprovision},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bst, st, env, oc := newRacingEnv(t)
			var requestID string
			arm := func() {
				hook := tt.hook(t, bst)
				st.arm(func(ctx context.Context, g store.Grant) {
					requestID = g.RequestID
					hook(ctx, g)
				})
			}

			if tt.atCode {
				arm()
				tok, err := env.SignIn(t.Context(), oc)
				if err == nil {
					t.Fatalf("code redemption succeeded (refresh token issued: %v) after the subject was deprovisioned during it", tok.RefreshToken != "")
				}
				var re *oauth2.RetrieveError
				if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
					t.Errorf("code redemption error = %v, want invalid_grant", err)
				}
			} else {
				tok, err := env.SignIn(t.Context(), oc)
				if err != nil {
					t.Fatalf("sign in: %v", err)
				}
				arm()
				_, err = oc.TokenSource(t.Context(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
				var re *oauth2.RetrieveError
				if err == nil {
					t.Fatal("refresh succeeded although the family was revoked during it")
				} else if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
					t.Errorf("refresh error = %v, want invalid_grant", err)
				}
				// The old refresh token stays dead too.
				if _, err := oc.TokenSource(t.Context(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err == nil {
					t.Error("the redeemed refresh token works again")
				}
			}
			if requestID == "" {
				t.Fatal("the hook never ran: no refresh token record was created")
			}
			if n := familySize(t, bst, requestID); n != 0 {
				t.Errorf("%d grants of the revoked request remain, want 0", n)
			}
		})
	}
}

// TestCodeOfEndedSessionNotRedeemed: a code written just after its session
// ended (a single sign-on answer was in flight at logout) is refused at the
// token endpoint, and nothing of it stays. (A callback creates its session
// and its code in one unit of work: no logout falls between them.)
func TestCodeOfEndedSessionNotRedeemed(t *testing.T) {
	bst, st, env, oc := newRacingEnv(t)
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.SignInWith(t.Context(), jar, oc); err != nil {
		t.Fatalf("first sign-in: %v", err)
	}
	var requestID string
	st.armAt(store.GrantAuthorizeCode, func(ctx context.Context, g store.Grant) {
		requestID = g.RequestID
		if _, err := bst.EndSession(ctx, g.SessionID, store.Revocation{}); err != nil {
			t.Errorf("end session: %v", err)
		}
	})
	_, err = env.SignInWith(t.Context(), jar, oc) // single sign-on
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
		t.Fatalf("redeeming a code of an ended session = %v, want invalid_grant", err)
	}
	if requestID == "" {
		t.Fatal("the hook never ran")
	}
	n, err := bst.UpdateGrantsByRequest(t.Context(), requestID, []store.GrantKind{store.GrantAccessToken, store.GrantRefreshToken}, func(g store.Grant) (store.Grant, error) { return g, nil })
	if err != nil || n != 0 {
		t.Errorf("tokens of the refused code = %d (%v), want 0", n, err)
	}
}
