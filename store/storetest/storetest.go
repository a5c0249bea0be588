// Package storetest is the conformance suite of the store.Store contract.
// Every backend runs Run, unchanged, against a fresh store per subtest: the
// suite is the executable form of the contract documented in package store.
//
// It imports only the standard library, go-cmp and store; it must never
// import a backend.
package storetest

import (
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyward/keyward/store"
)

// Run runs the conformance suite. open must return a new, empty store for
// one subtest and register its Close with t.Cleanup; the suite may already
// have closed it, so a second Close must not panic.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, s store.Store)
	}{
		{"LoginAttempts", testLoginAttempts},
		{"Sessions", testSessions},
		{"ListSessions", testListSessions},
		{"Subjects", testSubjects},
		{"UpsertSubject", testUpsertSubject},
		{"Grants", testGrants},
		{"GrantsByRequest", testGrantsByRequest},
		{"DeleteGrantsBySubject", testDeleteGrantsBySubject},
		{"EndSession", testEndSession},
		{"GrantIndexesFollowUpdates", testGrantIndexes},
		{"KeySet", testKeySet},
		{"UpdaterError", testUpdaterError},
		{"UpdaterChangingKey", testUpdaterChangingKey},
		{"ConcurrentUpdates", testConcurrentUpdates},
		{"GarbageCollect", testGarbageCollect},
		{"Deprovision", testDeprovision},
		{"RevocationFeed", testRevocationFeed},
		{"GarbageCollectRevocations", testGarbageCollectRevocations},
		{"ConcurrentAppends", testConcurrentAppends},
		{"Audit", testAudit},
		{"SCIMResources", testSCIMResources},
		{"SCIMNames", testSCIMNames},
		{"SCIMSubjects", testSCIMSubjects},
		{"RevocationTimesUTCMicroseconds", testRevocationTimes},
		{"TimesUTCMicroseconds", testTimes},
		{"NoAliasing", testNoAliasing},
		{"Apply", testApply},
		{"ApplyAllOrNothing", testApplyAllOrNothing},
		{"ApplyEmpty", testApplyEmpty},
		{"ApplyNewFields", testApplyNewFields},
		{"ApplyConcurrent", testApplyConcurrent},
		{"ContextCancelled", testContextCancelled},
		{"Close", testClose},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(t, open(t))
		})
	}
}

// t0 is the base instant of the fixtures: UTC, at µs precision, so that a
// fixture reads back exactly as written.
func t0() time.Time { return time.Date(2030, 1, 2, 3, 4, 5, 6000, time.UTC) }

func loginAttempt(id, state string) store.LoginAttempt {
	return store.LoginAttempt{
		ID:             id,
		ClientID:       "client-1",
		AuthorizeForm:  url.Values{"scope": {"openid", "email"}, "state": {"client-state-" + id}},
		UpstreamID:     "upstream-1",
		State:          state,
		Nonce:          "nonce-" + id,
		PKCEVerifier:   "verifier-" + id,
		BrowserBinding: "binding-" + id,
		CreatedAt:      t0(),
		ExpiresAt:      t0().Add(10 * time.Minute),
	}
}

func session(id, subject string, created time.Time) store.Session {
	return store.Session{
		ID:              id,
		Subject:         subject,
		UpstreamID:      "upstream-1",
		UpstreamSubject: "upstream-" + subject,
		Identity: store.Identity{
			Email:             subject + "@example.com",
			EmailVerified:     true,
			Name:              "Name of " + subject,
			PreferredUsername: subject,
			Groups:            []string{"admins", "devs"},
			Extra:             map[string]string{"department": "R&D"},
		},
		AuthTime:   created,
		CreatedAt:  created,
		LastSeenAt: created.Add(time.Minute),
		ExpiresAt:  created.Add(24 * time.Hour),

		UpstreamRefreshToken: []byte("sealed-" + id),
		UpstreamCheckedAt:    created,
	}
}

func subject(id string) store.Subject {
	return store.Subject{
		ID:              id,
		UpstreamID:      "upstream-1",
		UpstreamSubject: "upstream-" + id,
		Email:           id + "@example.com",
		Name:            "Name of " + id,
		CreatedAt:       t0(),
		UpdatedAt:       t0(),
		LastLoginAt:     t0().Add(time.Hour),
	}
}

func grant(kind store.GrantKind, signature, requestID, subject, sessionID string) store.Grant {
	g := store.Grant{
		Kind:        kind,
		Signature:   signature,
		RequestID:   requestID,
		ClientID:    "client-1",
		Subject:     subject,
		SessionID:   sessionID,
		Active:      true,
		RequestedAt: t0(),
		ExpiresAt:   t0().Add(time.Hour),
		Data:        []byte(`{"request":"` + requestID + `"}`),
	}
	if kind == store.GrantRefreshToken || kind == store.GrantAuthorizeCode {
		// The access token issued with it, which is not stored.
		g.AccessTokenID, g.AccessExpiresAt = "jti-"+signature, t0().Add(5*time.Minute)
	}
	return g
}

func keySet(version int64, kids ...string) store.KeySet {
	ks := store.KeySet{NextRotation: t0().Add(24 * time.Hour), Version: version, UpdatedAt: t0()}
	for i, kid := range kids {
		ks.Keys = append(ks.Keys, store.SigningKey{
			ID:          kid,
			Algorithm:   "ES256",
			State:       store.KeyCurrent,
			PrivateKey:  []byte{1, 2, 3, byte(i)},
			Encrypted:   true,
			PublicKey:   []byte{4, 5, 6, byte(i)},
			CreatedAt:   t0(),
			ActivatesAt: t0().Add(time.Hour),
		})
	}
	return ks
}

// must fails the test now when err is not nil.
func must(t *testing.T, call string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s = %v, want nil", call, err)
	}
}

// wantErr reports an error unless errors.Is(err, want).
func wantErr(t *testing.T, call string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s = %v, want %v", call, err, want)
	}
}

// wantCount reports an error unless the call removed or updated want records.
func wantCount(t *testing.T, call string, got int, err error, want int) {
	t.Helper()
	if err != nil || got != want {
		t.Errorf("%s = %d, %v; want %d, nil", call, got, err, want)
	}
}

// diff reports an error when got differs from want.
func diff(t *testing.T, call string, want, got any, opts ...cmp.Option) {
	t.Helper()
	if d := cmp.Diff(want, got, opts...); d != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", call, d)
	}
}

// neverCalled is an updater for calls that must not reach it.
func neverCalled[T any](t *testing.T, call string) func(T) (T, error) {
	return func(v T) (T, error) {
		t.Errorf("%s called its updater", call)
		return v, nil
	}
}
