package broker

import (
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/federation"
	"github.com/keyward/keyward/keys"
	"github.com/keyward/keyward/store"
	"github.com/keyward/keyward/store/bolt"
)

// The unit tests of broker's parts share this fixture: a bolt store in a
// temp dir, a real key manager on it, and fakeUpstream, an in-package
// upstream identity provider.

const testIssuer = "https://keyward.example.com"

type fixture struct {
	path string // of the bolt file
	st   *bolt.Store
	keys *keys.Manager
	now  time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "keyward.db")
	st, err := bolt.Open(ctx, bolt.Options{Path: path, NoSync: true})
	if err != nil {
		t.Fatalf("bolt.Open: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	km, err := keys.New(keys.Config{
		Store:         st,
		SessionSecret: []byte("session-secret-0123456789-0123456789-0123456789"),
		MaxTokenTTL:   15 * time.Minute,
		Logger:        slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatalf("keys.New: %v", err)
	}
	if err := km.Load(ctx); err != nil {
		t.Fatalf("keys.Load: %v", err)
	}
	return &fixture{path: path, st: st, keys: km, now: time.Now().UTC().Truncate(time.Second)}
}

func (f *fixture) clock() time.Time { return f.now }

func (f *fixture) clients(t *testing.T, cs ...Client) *clientRegistry {
	t.Helper()
	reg, err := newClientRegistry(cs)
	if err != nil {
		t.Fatalf("newClientRegistry: %v", err)
	}
	return reg
}

// subject stores a subject of upstream with email.
func (f *fixture) subject(t *testing.T, upstreamID, upstreamSub, email string) string {
	t.Helper()
	id := SubjectID(upstreamID, upstreamSub)
	_, err := f.st.UpsertSubject(t.Context(), id, func() store.Subject {
		return store.Subject{ID: id, UpstreamID: upstreamID, UpstreamSubject: upstreamSub, Email: email, CreatedAt: f.now, UpdatedAt: f.now}
	}, func(s store.Subject) (store.Subject, error) { return s, nil })
	if err != nil {
		t.Fatalf("UpsertSubject: %v", err)
	}
	return id
}

// session stores a live Keyward session of subject, signed in at upstream,
// with a session-client record for each of clientIDs.
func (f *fixture) session(t *testing.T, subject, upstreamID string, clientIDs ...string) store.Session {
	t.Helper()
	s := store.Session{
		ID: randomString(16), Subject: subject, UpstreamID: upstreamID, UpstreamSubject: "up-" + subject,
		AuthTime: f.now, CreatedAt: f.now, LastSeenAt: f.now, ExpiresAt: f.now.Add(time.Hour),
	}
	if err := f.st.CreateSession(t.Context(), s); err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	for _, c := range clientIDs {
		err := f.st.CreateGrant(t.Context(), store.Grant{
			Kind: store.GrantSessionClient, Signature: s.ID + "/" + c, ClientID: c, Subject: subject,
			SessionID: s.ID, Active: true, RequestedAt: f.now, ExpiresAt: s.ExpiresAt,
		})
		if err != nil {
			t.Fatalf("CreateGrant: %v", err)
		}
	}
	return s
}

// notified is a logoutNotifier that records what it is told.
type notified struct {
	mu    sync.Mutex
	calls []string // "subject sid client,client"
}

func (n *notified) notifyLogout(_ context.Context, subject, sid string, clientIDs []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	line := subject + " " + sid
	for i, c := range clientIDs {
		if i == 0 {
			line += " "
		} else {
			line += ","
		}
		line += c
	}
	n.calls = append(n.calls, line)
}

// fakeUpstream is an upstream identity provider for unit tests: each
// method answers what its fields say.
type fakeUpstream struct {
	id, name, issuer string

	// sign-in
	authURL     string // "" : not ready
	identity    federation.Identity
	exchangeErr error
	issuerErr   error
	readyErr    error

	// native sign-in
	nativeIdentity federation.Identity
	nativeErr      error
	nativePublic   bool

	// back-channel logout in
	logoutClaims federation.LogoutClaims
	logoutErr    error

	// upstream logout
	upstreamLogout bool
	logoutReq      federation.LogoutRequest
	logoutReqErr   error

	// re-check
	interval, maxAge time.Duration
	refreshed        string
	refreshErr       error
	refreshes        int
}

func (u *fakeUpstream) ID() string     { return u.id }
func (u *fakeUpstream) Name() string   { return u.name }
func (u *fakeUpstream) Issuer() string { return u.issuer }
func (u *fakeUpstream) AuthCodeURL(state, nonce, verifier string, opts federation.AuthOptions) string {
	if u.authURL == "" {
		return ""
	}
	url := u.authURL + "?state=" + state
	if opts.Prompt != "" {
		url += "&prompt=" + opts.Prompt
	}
	return url
}
func (u *fakeUpstream) Exchange(ctx context.Context, code, verifier, nonce string) (federation.Identity, error) {
	return u.identity, u.exchangeErr
}
func (u *fakeUpstream) CheckAuthorizationResponseIssuer(iss string) error { return u.issuerErr }
func (u *fakeUpstream) VerifyIDToken(ctx context.Context, raw string) (federation.Identity, error) {
	return u.nativeIdentity, u.nativeErr
}
func (u *fakeUpstream) NativePublicClients() bool { return u.nativePublic }
func (u *fakeUpstream) VerifyLogoutToken(ctx context.Context, raw string) (federation.LogoutClaims, error) {
	return u.logoutClaims, u.logoutErr
}
func (u *fakeUpstream) Ready() error         { return u.readyErr }
func (u *fakeUpstream) UpstreamLogout() bool { return u.upstreamLogout }
func (u *fakeUpstream) LogoutRequest(postLogoutRedirectURI, state string) (federation.LogoutRequest, error) {
	return u.logoutReq, u.logoutReqErr
}
func (u *fakeUpstream) RecheckInterval() time.Duration { return u.interval }
func (u *fakeUpstream) RecheckMaxAge() time.Duration   { return u.maxAge }
func (u *fakeUpstream) Refresh(ctx context.Context, token string) (string, error) {
	u.refreshes++
	return u.refreshed, u.refreshErr
}

var (
	_ Upstream         = (*fakeUpstream)(nil)
	_ readiness        = (*fakeUpstream)(nil)
	_ upstreamLogouter = (*fakeUpstream)(nil)
	_ rechecker        = (*fakeUpstream)(nil)
)

// isKind reports whether err is a *Refusal of kind.
func isKind(err error, kind RefusalKind) bool {
	var r *Refusal
	return errors.As(err, &r) && r.Kind == kind
}

func base64RawURL(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }
