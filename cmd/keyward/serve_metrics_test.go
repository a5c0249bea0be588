package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/oauth2"

	"github.com/keyward/keyward/test/fakeidp"
)

// TestServeMetricsAfterSignIn runs serve against a fake upstream, signs a
// person in, refreshes, replays a rotated refresh token, reads the
// revocation feed, then scrapes /metrics: the series operators alert on
// exist with the counts the requests imply.
func TestServeMetricsAfterSignIn(t *testing.T) {
	b := startBroker(t)
	issuer, cfg, logs := b.issuer, b.cfg, b.logs
	oc := b.client()
	tok := signIn(t, oc)
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token")
	}
	refresh := func() error {
		_, err := oc.TokenSource(t.Context(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
		return err
	}
	// The first use rotates the token; the second is the grace use (a
	// client racing itself); the third is a replay: refused, the family
	// revoked.
	for i, wantErr := range []bool{false, false, true} {
		if err := refresh(); (err != nil) != wantErr {
			t.Fatalf("refresh %d: %v, want an error: %v", i+1, err, wantErr)
		}
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, issuer+"/revocations?after=0", nil)
	req.SetBasicAuth("app", "app-secret-0123456789")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var feed struct {
		Highest int64 `json:"highest"`
	}
	err = json.NewDecoder(resp.Body).Decode(&feed)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || err != nil {
		t.Fatalf("GET /revocations = %d, %v", resp.StatusCode, err)
	}

	families := scrape(t, "http://"+cfg.Metrics.Listen+"/metrics")
	for _, c := range []struct {
		name   string
		labels map[string]string
		check  func(float64) bool
		want   string
	}{
		{"keyward_build_info", map[string]string{"version": version, "goversion": runtime.Version()}, eq(1), "1"},
		{"keyward_tokens_issued_total", map[string]string{"grant_type": "authorization_code", "client_id": "app"}, eq(1), "1"},
		{"keyward_tokens_issued_total", map[string]string{"grant_type": "refresh_token", "client_id": "app"}, eq(2), "2"},
		{"keyward_token_requests_total", map[string]string{"grant_type": "refresh_token", "result": "issued"}, eq(2), "2"},
		{"keyward_token_requests_total", map[string]string{"grant_type": "refresh_token", "result": "invalid_grant"}, eq(1), "1"},
		{"keyward_token_reuse_detected_total", map[string]string{"token": "refresh_token"}, eq(1), "1"},
		{"keyward_sign_ins_total", map[string]string{"upstream": "corp", "result": "succeeded"}, eq(1), "1"},
		{"keyward_upstream_requests_total", map[string]string{"upstream": "corp", "result": "2xx"}, atLeast(3), "discovery, JWKS and token: at least 3"},
		{"keyward_upstream_requests_total", map[string]string{"upstream": "corp", "result": "error"}, eq(0), "0"},
		{"keyward_upstream_request_duration_seconds", map[string]string{"upstream": "corp"}, atLeast(3), "as many observations as requests"},
		{"keyward_signing_key_age_seconds", nil, between(0, 3600), "between 0 and 1h"},
		{"keyward_signing_key_next_rotation_timestamp_seconds", nil, between(float64(time.Now().Unix()), float64(time.Now().Add(48*time.Hour).Unix())), "within the next two days"},
		{"keyward_http_requests_in_flight", nil, eq(0), "0"},
		{"keyward_revocation_feed_highest_seq", nil, eq(float64(feed.Highest)), "the feed's highest"},
		{"keyward_revocation_feed_reader_lag", map[string]string{"client_id": "app"}, eq(0), "0 (one short page read it all)"},
		{"keyward_revocation_feed_reader_last_read_timestamp_seconds", map[string]string{"client_id": "app"}, between(float64(time.Now().Add(-time.Minute).Unix()), float64(time.Now().Unix()+1)), "the last minute"},
	} {
		v, ok := value(families, c.name, c.labels)
		if !ok {
			t.Errorf("%s%v: no such series", c.name, c.labels)
			continue
		}
		if !c.check(v) {
			t.Errorf("%s%v = %v, want %s", c.name, c.labels, v, c.want)
		}
	}
	if t.Failed() {
		t.Logf("log:\n%s", logs.String())
	}
}

func eq(want float64) func(float64) bool      { return func(v float64) bool { return v == want } }
func atLeast(want float64) func(float64) bool { return func(v float64) bool { return v >= want } }
func between(lo, hi float64) func(float64) bool {
	return func(v float64) bool { return v >= lo && v <= hi }
}

// value returns the value of the series name with labels (a counter's or
// gauge's value, a histogram's count).
func value(families map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	f, ok := families[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if got[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// scrape reads the metrics at url.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	return families
}

// testBroker is a running serve with one upstream (corp, a fakeidp that
// approves ada at once) and one client (app, also a revocation-feed
// reader), logging JSON at warn.
type testBroker struct {
	issuer string
	cfg    *Config
	logs   *lockedBuffer
	// stop ends serve and waits for it (once; the test's end calls it too).
	stop func()
}

// client is the OAuth 2.0 configuration of the client app.
func (b testBroker) client() oauth2.Config {
	return oauth2.Config{
		ClientID: "app", ClientSecret: "app-secret-0123456789",
		Endpoint:    oauth2.Endpoint{AuthURL: b.issuer + "/authorize", TokenURL: b.issuer + "/token", AuthStyle: oauth2.AuthStyleInHeader},
		RedirectURL: "http://127.0.0.1:3000/callback",
		Scopes:      []string{"openid", "email", "offline_access"},
	}
}

// startBroker starts serve and waits until it is ready; it stops when the
// test ends (and the test fails if serve then reports an error).
func startBroker(t *testing.T) testBroker {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	issuer := "http://" + addr
	idp := fakeidp.NewTest(t, fakeidp.Config{
		Users:     []fakeidp.User{{Username: "ada", Subject: "sub-ada", Email: "ada@example.com", EmailVerified: true}},
		Clients:   []fakeidp.Client{{ID: "keyward", Secret: "upstream-secret", RedirectURIs: []string{issuer + "/callback"}}},
		AutoLogin: "ada",
	})
	dir := t.TempDir()
	cfgPath := writeFile(t, dir, "keyward.yaml", fmt.Sprintf(`issuer: %s
listen: %s
sessionSecretFile: %s
store: {path: %s}
upstreams:
  - {id: corp, issuer: %s, clientID: keyward, clientSecret: upstream-secret}
clients:
  - {id: app, secret: app-secret-0123456789, redirectURIs: ["http://127.0.0.1:3000/callback"]}
revocationFeed: {readers: [app]}
metrics: {listen: "127.0.0.1:0"}
logging: {format: json, level: warn}
`, issuer, addr, writeFile(t, dir, "session-secret", strings.Repeat("s", 32)+"\n"), filepath.Join(dir, "keyward.db"), idp.URL()))
	cfg, sec, err := loadConfigFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	// The metrics address is logged at Info, under level warn: listen on
	// a known one instead.
	mln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Metrics.Listen = mln.Addr().String()
	_ = mln.Close()
	ctx, cancel := context.WithCancel(t.Context())
	logs := &lockedBuffer{}
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, sec, logs) }()
	stop := sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve ended with %v", err)
		}
	})
	t.Cleanup(stop)
	waitReady(t, issuer+"/readyz", done, logs)
	return testBroker{issuer: issuer, cfg: cfg, logs: logs, stop: stop}
}

// waitReady waits until url answers 200, failing if serve ends first.
func waitReady(t *testing.T, url string, done <-chan error, logs *lockedBuffer) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-done:
			t.Fatalf("serve stopped early: %v\n%s", err, logs.String())
		default:
		}
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within 20s:\n%s", url, logs.String())
		}
	}
}

// signIn signs ada in as oc's client through the auto-approving upstream
// (code with PKCE), and returns the tokens.
func signIn(t *testing.T, oc oauth2.Config) *oauth2.Token {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	redirect, _ := url.Parse(oc.RedirectURL)
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if req.URL.Host == redirect.Host {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	verifier := oauth2.GenerateVerifier()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet,
		oc.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("nonce", "nonce-0123456789")), nil)
	resp, err := browser.Do(req)
	if err != nil {
		t.Fatalf("authorize: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("sign-in ended with %d Location %q; body %.300s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	tok, err := oc.Exchange(t.Context(), loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	return tok
}
