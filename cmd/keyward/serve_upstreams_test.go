package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/federation"
	"github.com/keyward/keyward/test/fakeidp"
)

// unreachableIssuer is a loopback URL nobody listens on: discovery there
// fails at once (connection refused).
func unreachableIssuer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return "http://" + addr
}

func TestBuildUpstreamsSurvivesUnreachableDiscovery(t *testing.T) {
	cfg := &Config{
		Issuer:    "https://sso.example.com",
		Upstreams: []federation.Config{{ID: "corp", Name: "Corp", Issuer: unreachableIssuer(t), ClientID: "keyward"}},
	}
	sec := Secrets{UpstreamClientSecrets: map[string]string{"corp": "upstream-secret"}}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ups, err := buildUpstreams(ctx, cfg, sec, slog.New(slog.DiscardHandler), http.DefaultTransport, nil)
	if err != nil {
		t.Fatalf("buildUpstreams(unreachable discovery) = %v, want the upstream, not yet ready", err)
	}
	if len(ups) != 1 || ups[0].ID() != "corp" || ups[0].Name() != "Corp" {
		t.Fatalf("buildUpstreams() = %v, want one upstream corp", ups)
	}
	lazy, ok := ups[0].(*federation.LazyUpstream)
	if !ok {
		t.Fatalf("upstream is %T, want *federation.LazyUpstream", ups[0])
	}
	// Building does no I/O; Run (the binary's errgroup runs it) discovers.
	done := make(chan error, 1)
	go func() { done <- lazy.Run(ctx) }()
	<-lazy.Attempted()
	if err := lazy.Ready(); !errors.Is(err, federation.ErrUpstreamUnavailable) || !strings.Contains(err.Error(), "discovery attempt 1 failed") {
		t.Errorf("Ready() = %v, want ErrUpstreamUnavailable after a failed attempt", err)
	}
	// Shutdown (ctx cancelled) stops the background retries.
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run() = %v, want nil once ctx ended", err)
	}
	select {
	case <-lazy.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the retry loop did not stop after ctx was cancelled")
	}
}

func TestBuildUpstreamsConfigErrorStillFails(t *testing.T) {
	cfg := &Config{
		Issuer:    "https://sso.example.com",
		Upstreams: []federation.Config{{ID: "corp", Issuer: unreachableIssuer(t), ClientID: "keyward"}},
	}
	sec := Secrets{UpstreamClientSecrets: map[string]string{}} // no client secret
	_, err := buildUpstreams(t.Context(), cfg, sec, slog.New(slog.DiscardHandler), http.DefaultTransport, nil)
	if err == nil || !strings.Contains(err.Error(), "upstreams[0] (corp)") || !strings.Contains(err.Error(), "clientSecretFile") {
		t.Errorf("buildUpstreams(no client secret) = %v, want an error naming upstreams[0] (corp) and clientSecretFile", err)
	}
}

// TestServeWaitsForFirstDiscovery: discovery runs in the background (the
// upstream's Run), yet an upstream that is up takes the very first sign-in:
// serve answers only once the first discovery attempt has ended. The
// upstream's discovery is held until the test's first request has
// connected; that request must still be sent on to the upstream, not
// shown the "unavailable" page.
func TestServeWaitsForFirstDiscovery(t *testing.T) {
	ts := httptest.NewUnstartedServer(nil)
	idp, err := fakeidp.New(fakeidp.Config{Issuer: "http://" + ts.Listener.Addr().String(), Users: fakeidp.DemoUsers(),
		Clients: []fakeidp.Client{{ID: "keyward", Secret: "upstream-secret", RedirectURIs: []string{"http://127.0.0.1:5556/callback"}}}})
	if err != nil {
		t.Fatal(err)
	}
	asked, release := make(chan struct{}, 1), make(chan struct{})
	var once sync.Once
	ts.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/.well-known/openid-configuration") {
			once.Do(func() { asked <- struct{}{} })
			<-release
		}
		idp.Handler().ServeHTTP(w, r)
	})
	ts.Start()
	t.Cleanup(ts.Close)
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()

	dir := t.TempDir()
	cfgPath := writeFile(t, dir, "keyward.yaml", fmt.Sprintf(`issuer: http://127.0.0.1:5556
listen: 127.0.0.1:0
sessionSecretFile: %s
store: {path: %s}
upstreams:
  - {id: corp, issuer: %s, clientID: keyward, clientSecret: upstream-secret}
clients:
  - {id: app, secret: app-secret, redirectURIs: ["http://127.0.0.1:3000/callback"]}
logging: {format: json, level: info}
`, writeFile(t, dir, "session-secret", strings.Repeat("s", 32)+"\n"), filepath.Join(dir, "keyward.db"), idp.URL()))
	cfg, sec, err := loadConfigFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	// serve opens its listener before it builds anything: take the
	// address from the config by listening ourselves first.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen = ln.Addr().String()
	_ = ln.Close()

	ctx, cancel := context.WithCancel(t.Context())
	logs := &lockedBuffer{}
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, sec, logs) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve ended with %v", err)
		}
	}()
	select {
	case <-asked:
	case err := <-done:
		t.Fatalf("serve stopped early: %v\n%s", err, logs.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("no discovery request within 20s:\n%s", logs.String())
	}
	// The first sign-in connects while discovery is still held; discovery
	// is released once the connection is made.
	dialed := make(chan struct{})
	client := &http.Client{
		Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			close(dialed)
			return c, err
		}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       30 * time.Second,
	}
	type result struct {
		resp *http.Response
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := client.Get("http://" + cfg.Listen + "/authorize?client_id=app&response_type=code&scope=openid&state=state-123456&redirect_uri=" +
			"http%3A%2F%2F127.0.0.1%3A3000%2Fcallback&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256")
		got <- result{resp, err}
	}()
	<-dialed
	close(release)
	r := <-got
	if r.err != nil {
		t.Fatalf("GET /authorize: %v", r.err)
	}
	defer r.resp.Body.Close()
	body, _ := io.ReadAll(r.resp.Body)
	if loc := r.resp.Header.Get("Location"); r.resp.StatusCode/100 != 3 || !strings.HasPrefix(loc, idp.URL()+"/authorize?") {
		t.Fatalf("first sign-in: %d Location %q, want a redirect to the upstream %s/authorize\n%.400s\n%s", r.resp.StatusCode, loc, idp.URL(), body, logs.String())
	}
}
