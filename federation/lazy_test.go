package federation

import (
	"github.com/keyward/keyward/cmd/config"

	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/keyward/keyward/test/fakeidp"
)

const lazySecret = "lazy-client-secret-never-logged"

var lazyNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// lazyIdP serves a fake IdP whose discovery answers 503 to the first
// failures requests (all of them when failures < 0).
func lazyIdP(t *testing.T, failures int) (*fakeidp.Server, *atomic.Int64) {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	idp, err := fakeidp.New(fakeidp.Config{
		Issuer:    "http://" + ts.Listener.Addr().String(),
		Users:     fakeidp.DemoUsers(),
		Clients:   []fakeidp.Client{{ID: "keyward", Secret: lazySecret, RedirectURIs: []string{redirectURL}}},
		AutoLogin: "alice",
	})
	if err != nil {
		t.Fatalf("fakeidp.New: %v", err)
	}
	var discoveries atomic.Int64
	h := idp.Handler()
	ts.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/.well-known/openid-configuration") {
			if n := discoveries.Add(1); failures < 0 || n <= int64(failures) {
				http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
	ts.Start()
	t.Cleanup(ts.Close)
	return idp, &discoveries
}

func lazyConfig(issuer string) Config {
	return Config{
		ID: "corp", Name: "Corp SSO", Issuer: issuer, ClientID: "keyward", ClientSecret: lazySecret,
		RedirectURL: redirectURL, Scopes: []string{"openid", "offline_access"}, RecheckInterval: config.Duration(time.Hour),
	}
}

// stepWait replaces the backoff sleep: each wait hands its delay to the
// test and returns when the test says so (or when ctx ends).
type stepWait struct {
	delays chan time.Duration
	goOn   chan struct{}
}

func newStepWait() *stepWait {
	return &stepWait{delays: make(chan time.Duration), goOn: make(chan struct{})}
}

func (s *stepWait) wait(ctx context.Context, d time.Duration) bool {
	select {
	case s.delays <- d:
	case <-ctx.Done():
		return false
	}
	select {
	case <-s.goOn:
		return true
	case <-ctx.Done():
		return false
	}
}

// next returns the delay of the next wait.
func (s *stepWait) next(t *testing.T) time.Duration {
	t.Helper()
	select {
	case d := <-s.delays:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("the retry loop did not wait for a next attempt")
		return 0
	}
}

// lazyHooks fixes the clock and jitter (factor 1) and steps the waits.
func lazyHooks(w *stepWait) LazyOption {
	return func(o *lazyOptions) {
		o.now = func() time.Time { return lazyNow }
		o.jitter = func() float64 { return 0.5 }
		if w != nil {
			o.wait = w.wait
		}
	}
}

// syncBuffer is a log sink for a logger used from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startLazy builds an upstream with NewLazy, runs it under ctx (stopped and
// waited for when the test ends) and waits for its first discovery attempt,
// as the binary does before it serves.
func startLazy(t *testing.T, ctx context.Context, cfg Config, client *http.Client, logger *slog.Logger, opts ...LazyOption) (*LazyUpstream, error) {
	t.Helper()
	l, err := NewLazy(cfg, client, logger, opts...)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-runErr; err != nil {
			t.Errorf("Run() = %v, want nil", err)
		}
	})
	select {
	case <-l.Attempted():
	case <-time.After(10 * time.Second):
		t.Fatal("the first discovery attempt did not end")
	}
	return l, nil
}

func waitDone(t *testing.T, l *LazyUpstream) {
	t.Helper()
	select {
	case <-l.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the retry loop did not end")
	}
}

func TestLazyRetriesUntilDiscoveryWorks(t *testing.T) {
	idp, discoveries := lazyIdP(t, 3)
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	w := newStepWait()
	l, err := startLazy(t, t.Context(), lazyConfig(idp.URL()), &http.Client{Timeout: 5 * time.Second}, logger, lazyHooks(w))
	if err != nil {
		t.Fatalf("NewLazy() = %v, want a lazy upstream", err)
	}

	var delays []time.Duration
	for attempt := 1; attempt <= 3; attempt++ {
		delays = append(delays, w.next(t))
		err := l.Ready()
		if !errors.Is(err, ErrUpstreamUnavailable) {
			t.Fatalf("after %d failures: Ready() = %v, want ErrUpstreamUnavailable", attempt, err)
		}
		next := lazyNow.Add(delays[attempt-1]).Format(time.RFC3339)
		for _, want := range []string{`"corp"`, "discovery attempt " + string(rune('0'+attempt)) + " failed at 2030-01-02T03:04:05Z", "next retry at " + next, "503"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("after %d failures: Ready() = %q, want it to contain %q", attempt, err, want)
			}
		}
		w.goOn <- struct{}{}
	}
	waitDone(t, l)
	if err := l.Ready(); err != nil {
		t.Fatalf("after discovery worked: Ready() = %v, want nil", err)
	}
	if diff := cmp.Diff([]time.Duration{time.Second, 2 * time.Second, 4 * time.Second}, delays); diff != "" {
		t.Errorf("backoff delays (-want +got):\n%s", diff)
	}
	if got := discoveries.Load(); got != 4 {
		t.Errorf("discovery requests = %d, want 4 (3 failures, 1 success)", got)
	}
	if u := l.AuthCodeURL("state-1", "nonce-1", "verifier-0123456789-0123456789-0123456789-01", AuthOptions{}); !strings.HasPrefix(u, idp.URL()+"/authorize?") || !strings.Contains(u, "state=state-1") {
		t.Errorf("AuthCodeURL() when ready = %q, want the upstream's authorize URL", u)
	}

	out := logs.String()
	for _, want := range []string{"upstream=corp", "attempt=1", "attempt=3", "retry_in=4s", "event=upstream_unavailable", "event=upstream_recovered"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, lazySecret) {
		t.Errorf("log contains the client secret:\n%s", out)
	}
}

func TestLazyBeforeReady(t *testing.T) {
	idp, _ := lazyIdP(t, -1)
	cfg := lazyConfig(idp.URL())
	cfg.NativeClientIDs = []string{"mobile"}
	cfg.NativePublicClients = true
	l, err := startLazy(t, t.Context(), cfg, nil, nil, lazyHooks(newStepWait()))
	if err != nil {
		t.Fatalf("NewLazy() = %v", err)
	}
	if l.ID() != "corp" || l.Name() != "Corp SSO" || l.Issuer() != idp.URL() || l.RecheckInterval() != time.Hour || !l.NativePublicClients() {
		t.Errorf("ID, Name, Issuer, RecheckInterval, NativePublicClients = %q, %q, %q, %v, %v; want the configuration's",
			l.ID(), l.Name(), l.Issuer(), l.RecheckInterval(), l.NativePublicClients())
	}
	if u := l.AuthCodeURL("s", "n", "v", AuthOptions{}); u != "" {
		t.Errorf("AuthCodeURL() before ready = %q, want empty", u)
	}
	ctx := t.Context()
	_, err = l.Exchange(ctx, "code", "verifier", "nonce")
	checkIs(t, "Exchange", err, ErrUpstreamUnavailable)
	_, err = l.VerifyLogoutToken(ctx, "a.b.c")
	checkIs(t, "VerifyLogoutToken", err, ErrUpstreamUnavailable)
	_, err = l.Refresh(ctx, "refresh-token")
	checkIs(t, "Refresh", err, ErrUpstreamUnavailable, ErrRefreshUnavailable)
	if err != nil && strings.Contains(err.Error(), "refresh-token") {
		t.Errorf("Refresh() error %q contains the token", err)
	}

	token := func(iss, aud string) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": iss, "aud": aud, "sub": "alice"}).SignedString([]byte("k"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	_, err = l.VerifyIDToken(ctx, token(idp.URL(), "mobile"))
	checkIs(t, "VerifyIDToken(native aud)", err, ErrUpstreamUnavailable, ErrIssuerUnavailable)
	_, err = l.VerifyIDToken(ctx, token(idp.URL(), "web"))
	checkIs(t, "VerifyIDToken(other aud)", err, ErrNativeNotAccepted)
	_, err = l.VerifyIDToken(ctx, token("https://other.example.com", "mobile"))
	checkIs(t, "VerifyIDToken(other iss)", err, ErrNativeNotAccepted)
	_, err = l.VerifyIDToken(ctx, "not a jwt")
	checkIs(t, "VerifyIDToken(garbage)", err, ErrInvalidIDToken)
}

func checkIs(t *testing.T, call string, err error, targets ...error) {
	t.Helper()
	for _, target := range targets {
		if !errors.Is(err, target) {
			t.Errorf("%s() = %v, want an error wrapping %q", call, err, target)
		}
	}
}

func TestLazyStopsWhenContextEnds(t *testing.T) {
	idp, discoveries := lazyIdP(t, -1)
	ctx, cancel := context.WithCancel(t.Context())
	w := newStepWait()
	l, err := startLazy(t, ctx, lazyConfig(idp.URL()), nil, nil, lazyHooks(w))
	if err != nil {
		t.Fatalf("NewLazy() = %v", err)
	}
	w.next(t) // waiting for the second attempt
	cancel()
	waitDone(t, l)
	if got := discoveries.Load(); got != 1 {
		t.Errorf("discovery requests = %d, want 1 (no retry after cancel)", got)
	}
	err = l.Ready()
	if !errors.Is(err, ErrUpstreamUnavailable) || !strings.Contains(err.Error(), "retries stopped") {
		t.Errorf("Ready() after cancel = %v, want ErrUpstreamUnavailable saying retries stopped", err)
	}
}

func TestLazyFirstAttemptHasDeadline(t *testing.T) {
	idp, _ := lazyIdP(t, 0)
	idp.SetLatency(time.Hour) // the request is dropped when the client gives up
	w := newStepWait()
	short := func(o *lazyOptions) { o.firstTimeout = 50 * time.Millisecond }
	l, err := startLazy(t, t.Context(), lazyConfig(idp.URL()), nil, nil, lazyHooks(w), short)
	if err != nil {
		t.Fatalf("NewLazy() = %v", err)
	}
	if err := l.Ready(); !errors.Is(err, ErrUpstreamUnavailable) {
		t.Errorf("Ready() after a hanging discovery = %v, want ErrUpstreamUnavailable", err)
	}
	if d := w.next(t); d != time.Second {
		t.Errorf("first retry delay = %v, want 1s", d)
	}
	idp.SetLatency(0)
	w.goOn <- struct{}{}
	waitDone(t, l)
	if err := l.Ready(); err != nil {
		t.Errorf("Ready() after discovery answered = %v, want nil", err)
	}
}

func TestLazyReadyAtOnce(t *testing.T) {
	idp, discoveries := lazyIdP(t, 0)
	l, err := startLazy(t, t.Context(), lazyConfig(idp.URL()), nil, nil)
	if err != nil {
		t.Fatalf("NewLazy() = %v", err)
	}
	if err := l.Ready(); err != nil {
		t.Errorf("Ready() = %v, want nil", err)
	}
	waitDone(t, l) // Run returns once discovery succeeded
	if got := discoveries.Load(); got != 1 {
		t.Errorf("discovery requests = %d, want 1", got)
	}
}

// NewLazy does no I/O: nothing reaches the upstream before Run, and the
// upstream says it is not ready yet; Run then makes it ready, once.
func TestNewLazyDoesNoIO(t *testing.T) {
	idp, discoveries := lazyIdP(t, 0)
	l, err := NewLazy(lazyConfig(idp.URL()), nil, nil)
	if err != nil {
		t.Fatalf("NewLazy() = %v", err)
	}
	if got := discoveries.Load(); got != 0 {
		t.Errorf("discovery requests after NewLazy = %d, want 0", got)
	}
	err = l.Ready()
	if !errors.Is(err, ErrUpstreamUnavailable) || !strings.Contains(err.Error(), "discovery has not completed yet") {
		t.Errorf("Ready() before Run = %v, want ErrUpstreamUnavailable saying discovery has not completed", err)
	}
	if url := l.AuthCodeURL("s", "n", "v", AuthOptions{}); url != "" {
		t.Errorf("AuthCodeURL() before Run = %q, want \"\"", url)
	}
	if err := l.Run(t.Context()); err != nil {
		t.Fatalf("Run() = %v", err)
	}
	if err := l.Ready(); err != nil {
		t.Errorf("Ready() after Run = %v, want nil", err)
	}
	if err := l.Run(t.Context()); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("second Run() = %v, want an error", err)
	}
	if got := discoveries.Load(); got != 1 {
		t.Errorf("discovery requests = %d, want 1", got)
	}
}

func TestLazyConfigErrorFailsAtOnce(t *testing.T) {
	cfg := lazyConfig("http://127.0.0.1:1")
	cfg.ClientID = ""
	l, err := startLazy(t, t.Context(), cfg, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "clientID") {
		t.Fatalf("NewLazy(no client id) = %v, %v; want an error naming clientID", l, err)
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		name   string
		n      int
		jitter float64
		want   time.Duration
	}{
		{"first", 1, 0.5, time.Second},
		{"doubles", 4, 0.5, 8 * time.Second},
		{"capped", 10, 0.5, 5 * time.Minute},
		{"no overflow", 1000, 0.5, 5 * time.Minute},
		{"jitter low", 2, 0, 1600 * time.Millisecond},
		{"jitter high", 2, 0.75, 2200 * time.Millisecond},
		{"jitter around cap", 20, 0, 4 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := backoff(time.Second, 5*time.Minute, tt.n, tt.jitter); got != tt.want {
				t.Errorf("backoff(1s, 5m, %d, %v) = %v, want %v", tt.n, tt.jitter, got, tt.want)
			}
		})
	}
}

func TestSleepEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if sleep(ctx, time.Hour) {
		t.Error("sleep(cancelled ctx, 1h) = true, want false")
	}
	if !sleep(t.Context(), 0) {
		t.Error("sleep(ctx, 0) = false, want true")
	}
}

// failingTransport refuses every request, as an unreachable network does.
type failingTransport struct{}

func (failingTransport) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("network unreachable")
}

// A profile whose preset fixes the issuer (google) leaves Config.Issuer
// empty. Before discovery succeeds the lazy upstream must still answer with
// that issuer: the broker picks the upstream of a native ID token by
// Issuer(), so an empty one turned "try again later" into a permanent
// invalid_grant ("issuer not trusted") for every Google native sign-in
// during the outage.
func TestLazyPresetIssuerBeforeReady(t *testing.T) {
	cfg := Config{
		ID: "google", Profile: ProfileGoogle, ClientID: "web", ClientSecret: lazySecret,
		RedirectURL: redirectURL, NativeClientIDs: []string{"ios-app"},
	}
	l, err := startLazy(t, t.Context(), cfg, &http.Client{Transport: failingTransport{}}, nil, lazyHooks(newStepWait()))
	if err != nil {
		t.Fatalf("NewLazy() = %v", err)
	}
	if l.Ready() == nil {
		t.Fatal("Ready() = nil with an unreachable network")
	}
	if got := l.Issuer(); got != GoogleIssuer {
		t.Errorf("Issuer() before ready = %q, want %q", got, GoogleIssuer)
	}
	raw, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": GoogleIssuer, "aud": "ios-app", "sub": "alice"}).SignedString([]byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = l.VerifyIDToken(t.Context(), raw)
	checkIs(t, "VerifyIDToken(google token before ready)", err, ErrUpstreamUnavailable, ErrIssuerUnavailable)
}
