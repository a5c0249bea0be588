package broker

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/keyward/keyward/federation"
	"github.com/keyward/keyward/store"
)

// logoutClient records the logout tokens POSTed to it and answers each
// with the next of statuses (200 once they run out).
type logoutClient struct {
	mu       sync.Mutex
	statuses []int
	tokens   []string
}

func (c *logoutClient) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	q, _ := url.ParseQuery(string(body))
	c.mu.Lock()
	c.tokens = append(c.tokens, q.Get("logout_token"))
	status := http.StatusOK
	if len(c.statuses) > 0 {
		status, c.statuses = c.statuses[0], c.statuses[1:]
	}
	c.mu.Unlock()
	w.WriteHeader(status)
}

func (c *logoutClient) posts() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.tokens...)
}

func newTestSender(t *testing.T, f *fixture, clients ...Client) *backchannelSender {
	t.Helper()
	cfg := Config{Issuer: testIssuer, Keys: f.keys, Now: f.clock, BackchannelClient: http.DefaultClient, BackchannelRetryDelay: time.Millisecond}
	return newBackchannelSender(cfg, f.clients(t, clients...), slog.New(slog.DiscardHandler))
}

// runSender runs s until the test ends.
func runSender(t *testing.T, s *backchannelSender) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v, want nil", err)
		}
	})
}

func TestBackchannelSenderDelivers(t *testing.T) {
	f := newFixture(t)
	ok := &logoutClient{}
	flaky := &logoutClient{statuses: []int{http.StatusServiceUnavailable, http.StatusTooManyRequests}}
	refusing := &logoutClient{statuses: []int{http.StatusBadRequest}}
	down := &logoutClient{statuses: []int{500, 500, 500, 500}}
	var uris []string
	for _, h := range []http.Handler{ok, flaky, refusing, down} {
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		uris = append(uris, srv.URL)
	}
	s := newTestSender(t, f,
		Client{ID: "ok", Secret: "s", BackchannelLogoutURI: uris[0]},
		Client{ID: "flaky", Secret: "s", BackchannelLogoutURI: uris[1]},
		Client{ID: "refusing", Secret: "s", BackchannelLogoutURI: uris[2]},
		Client{ID: "down", Secret: "s", BackchannelLogoutURI: uris[3]},
		Client{ID: "silent", Secret: "s"},
	)
	runSender(t, s)
	s.notifyLogout(t.Context(), "alice", "sid-1", []string{"ok", "flaky", "refusing", "down", "silent", "gone"})
	s.wait()

	for _, tt := range []struct {
		name  string
		c     *logoutClient
		posts int
	}{{"ok", ok, 1}, {"flaky", flaky, 3}, {"refusing", refusing, 1}, {"down", down, logoutAttempts}} {
		if got := len(tt.c.posts()); got != tt.posts {
			t.Errorf("%s: %d POSTs, want %d", tt.name, got, tt.posts)
		}
	}
	// The token is a logout token for that client (§2.4).
	var claims jwt.MapClaims
	tok, _, err := jwt.NewParser().ParseUnverified(ok.posts()[0], &claims)
	if err != nil {
		t.Fatalf("parse logout token: %v", err)
	}
	events, _ := claims["events"].(map[string]any)
	if tok.Header["typ"] != logoutTokenType || claims["iss"] != testIssuer || claims["aud"] != "ok" || claims["sub"] != "alice" ||
		claims["sid"] != "sid-1" || claims["jti"] == "" || events[federation.BackchannelLogoutEvent] == nil {
		t.Errorf("logout token header %v claims %v", tok.Header, claims)
	}
}

// TestBackchannelSenderRunStops: tokens queued when Run's context ends are
// abandoned, so waiting for them returns, and Run returns nil.
func TestBackchannelSenderRunStops(t *testing.T) {
	f := newFixture(t)
	c := &logoutClient{}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	s := newTestSender(t, f, Client{ID: "app", Secret: "s", BackchannelLogoutURI: srv.URL})
	s.notifyLogout(t.Context(), "alice", "sid-1", []string{"app"}) // queued: Run has not started
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Run(ctx); err != nil {
		t.Errorf("Run() = %v, want nil", err)
	}
	s.wait()
	if n := len(c.posts()); n != 0 {
		t.Errorf("%d POSTs after Run stopped, want 0", n)
	}
}

func newTestReceiver(t *testing.T, ups ...*fakeUpstream) (*backchannelReceiver, *fixture) {
	t.Helper()
	a, f, _ := newTestAdmin(t)
	byID := map[string]Upstream{}
	for _, u := range ups {
		byID[u.id] = u
	}
	return &backchannelReceiver{store: f.st, upstreams: byID, sessions: a, log: slog.New(slog.DiscardHandler), now: f.clock}, f
}

// upstreamLogoutToken is a JWT with jti (the fake upstream verifies it).
func upstreamLogoutToken(t *testing.T, f *fixture, jti string) string {
	t.Helper()
	c := map[string]any{"iss": "https://idp.example.com", "exp": f.now.Add(time.Minute).Unix()}
	if jti != "" {
		c["jti"] = jti
	}
	raw, err := f.keys.Sign(t.Context(), c, map[string]any{"typ": "logout+jwt"})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestBackchannelReceiverEndsSessions(t *testing.T) {
	up := &fakeUpstream{id: "corp", name: "Corp", logoutClaims: federation.LogoutClaims{Subject: "alice"}}
	r, f := newTestReceiver(t, up, &fakeUpstream{id: "other"})
	ctx := t.Context()
	sub := f.subject(t, "corp", "alice", "")
	s1 := f.session(t, sub, "corp", "app")
	s2 := f.session(t, sub, "corp")
	kept := f.session(t, sub, "other") // same subject id, another upstream's session

	tok := upstreamLogoutToken(t, f, "jti-1")
	n, err := r.BackchannelLogout(ctx, "corp", tok)
	if err != nil || n != 2 {
		t.Fatalf("BackchannelLogout() = %d, %v; want 2 sessions ended", n, err)
	}
	for _, s := range []store.Session{s1, s2} {
		if _, err := f.st.GetSession(ctx, s.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("session %s: %v, want ended", s.ID[:4], err)
		}
	}
	if _, err := f.st.GetSession(ctx, kept.ID); err != nil {
		t.Errorf("another upstream's session: %v, want kept", err)
	}
	if _, err := r.BackchannelLogout(ctx, "corp", tok); !errors.Is(err, errLogoutTokenReplayed) {
		t.Errorf("replay: %v, want errLogoutTokenReplayed", err)
	}
}

func TestBackchannelReceiverRefusals(t *testing.T) {
	up := &fakeUpstream{id: "corp", logoutClaims: federation.LogoutClaims{Subject: "alice"}}
	r, f := newTestReceiver(t, up)
	ctx := t.Context()
	if _, err := r.BackchannelLogout(ctx, "ghost", "x"); !errors.Is(err, errUnknownLogoutUpstream) {
		t.Errorf("unknown upstream: %v", err)
	}
	if _, err := r.BackchannelLogout(ctx, "corp", upstreamLogoutToken(t, f, "")); !errors.Is(err, errLogoutTokenNoJTI) {
		t.Errorf("no jti: %v", err)
	}
	if _, err := r.BackchannelLogout(ctx, "corp", "not-a-jwt"); !errors.Is(err, errInvalidLogoutToken) {
		t.Errorf("unparsable: %v", err)
	}
	up.logoutClaims = federation.LogoutClaims{SessionID: "upstream-sid"}
	if _, err := r.BackchannelLogout(ctx, "corp", upstreamLogoutToken(t, f, "j2")); !errors.Is(err, errSidOnlyLogout) {
		t.Errorf("sid only: %v", err)
	}
	up.logoutErr = errors.New("bad signature")
	if _, err := r.BackchannelLogout(ctx, "corp", upstreamLogoutToken(t, f, "j3")); !errors.Is(err, errInvalidLogoutToken) {
		t.Errorf("unverified: %v", err)
	}
	up.logoutErr = federation.ErrUpstreamUnavailable
	var be *Error
	if _, err := r.BackchannelLogout(ctx, "corp", upstreamLogoutToken(t, f, "j4")); !errors.As(err, &be) || be.HTTPStatus() != 503 {
		t.Errorf("upstream unavailable: %v, want 503 temporarily_unavailable", err)
	}
}
