package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/oauth2"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/store"
	"github.com/keyward/keyward/test/brokertest"
	"github.com/keyward/keyward/web"
)

// attemptCounter counts the login-attempt writes that reach the store.
type attemptCounter struct {
	broker.Store
	created, updated atomic.Int64
}

func (s *attemptCounter) CreateLoginAttempt(ctx context.Context, a store.LoginAttempt) error {
	s.created.Add(1)
	return s.Store.CreateLoginAttempt(ctx, a)
}

func (s *attemptCounter) UpdateLoginAttempt(ctx context.Context, id string, f func(store.LoginAttempt) (store.LoginAttempt, error)) error {
	s.updated.Add(1)
	return s.Store.UpdateLoginAttempt(ctx, id, f)
}

// limitedEnv is a broker with login limits, a fake clock, its metrics and
// a count of login-attempt writes.
type limitedEnv struct {
	*brokertest.Env
	clock    *clock
	reg      *prometheus.Registry
	attempts *attemptCounter
}

func newLimitedEnv(t *testing.T, upstreams int, limits broker.LoginLimits, trusted ...netip.Prefix) *limitedEnv {
	t.Helper()
	le := &limitedEnv{clock: &clock{}, reg: prometheus.NewRegistry()}
	le.Env = brokertest.New(t, brokertest.Options{
		Dir: t.TempDir(), NoSync: true, Upstreams: upstreams, AutoLogin: "alice",
		Clients: []broker.Client{{ID: appID, Name: "The App", Secret: appSecret, RedirectURIs: []string{appRedir}}},
		Now:     le.clock.Now,
		Broker: func(bc *broker.Config) {
			bc.LoginLimits = limits
			le.attempts = &attemptCounter{Store: bc.Store}
			bc.Store = le.attempts
		},
		Web: func(wc *web.Config) {
			wc.Registerer = le.reg
			wc.TrustedProxies = trusted
		},
	})
	return le
}

// authorizeURL is a valid /authorize request of the app.
func (le *limitedEnv) authorizeURL() string {
	oc := oauth2.Config{ClientID: appID, RedirectURL: appRedir, Endpoint: oauth2.Endpoint{AuthURL: le.Issuer + "/authorize"}, Scopes: []string{"openid", "email"}}
	return oc.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("nonce", "nonce-0123456789"))
}

// getNoFollow sends GET u with the X-Forwarded-For lines xff, without following
// redirects, and returns the response with its body.
func getNoFollow(t *testing.T, c *http.Client, u string, xff ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range xff {
		req.Header.Add("X-Forwarded-For", v)
	}
	if c == nil {
		c = noRedirect()
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// wantUpstreamRedirect fails unless resp sends the browser to the upstream.
func (le *limitedEnv) wantUpstreamRedirect(t *testing.T, what string, resp *http.Response, body string) {
	t.Helper()
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), le.IdPs[0].URL()) {
		t.Fatalf("%s = %d Location %q, want 303 to the upstream; body: %.300s", what, resp.StatusCode, resp.Header.Get("Location"), body)
	}
}

// wantLimited fails unless resp is the 429 page with Retry-After.
func wantLimited(t *testing.T, what string, resp *http.Response, body, retryAfter string) {
	t.Helper()
	if resp.StatusCode != http.StatusTooManyRequests || pageTitle(body) != "Too many sign-in attempts" {
		t.Fatalf("%s = %d %q, want 429 Too many sign-in attempts; body: %.300s", what, resp.StatusCode, pageTitle(body), body)
	}
	if got := resp.Header.Get("Retry-After"); got != retryAfter {
		t.Errorf("%s Retry-After = %q, want %q", what, got, retryAfter)
	}
	if ct, cc := resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"); !strings.HasPrefix(ct, "text/html") || cc != "no-store" {
		t.Errorf("%s Content-Type, Cache-Control = %q, %q; want an HTML page, no-store", what, ct, cc)
	}
	if resp.Header.Get("Set-Cookie") != "" {
		t.Errorf("%s sets a cookie (%q), want none: nothing was started", what, resp.Header.Get("Set-Cookie"))
	}
}

func (le *limitedEnv) refusals(t *testing.T, limit string) float64 {
	t.Helper()
	mfs, err := le.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "keyward_login_attempts_refused_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "limit" && l.GetValue() == limit {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("keyward_login_attempts_refused_total{limit=%q} is not exported", limit)
	return 0
}

func TestLoginRateLimit(t *testing.T) {
	le := newLimitedEnv(t, 1, broker.LoginLimits{PerMinute: 2, Burst: 3})

	// A whole sign-in takes one token; its browser keeps a session.
	browser := newBrowser(t)
	resp, err := browser.Get(le.authorizeURL())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), appRedir) {
		t.Fatalf("sign-in = %d Location %q, want 303 to the app", resp.StatusCode, resp.Header.Get("Location"))
	}
	// Two more fill the burst of 3 …
	for i := range 2 {
		resp, body := getNoFollow(t, nil, le.authorizeURL())
		le.wantUpstreamRedirect(t, fmt.Sprintf("authorize #%d", i+2), resp, body)
	}
	// … and the 4th (burst + 1) is refused, writing nothing: one token
	// per 30 s.
	resp, body := getNoFollow(t, nil, le.authorizeURL())
	wantLimited(t, "authorize #4", resp, body, "30")
	if n := le.attempts.created.Load(); n != 3 {
		t.Errorf("login attempts written = %d, want 3 (none for the refused request)", n)
	}
	// X-Forwarded-For is not believed from an untrusted peer.
	resp, body = getNoFollow(t, nil, le.authorizeURL(), "198.51.100.7")
	wantLimited(t, "authorize with a forged X-Forwarded-For", resp, body, "30")

	// Single sign-on writes no attempt and is not limited.
	resp, err = browser.Get(le.authorizeURL())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), appRedir) {
		t.Errorf("single sign-on while limited = %d Location %q, want 303 to the app", resp.StatusCode, resp.Header.Get("Location"))
	}

	if got := le.refusals(t, broker.LimitClient); got != 2 {
		t.Errorf("keyward_login_attempts_refused_total{limit=client} = %v, want 2", got)
	}
	if got := le.refusals(t, broker.LimitGlobal); got != 0 {
		t.Errorf("keyward_login_attempts_refused_total{limit=global} = %v, want 0", got)
	}
	if n := le.attempts.created.Load(); n != 3 {
		t.Errorf("login attempts written = %d, want 3", n)
	}
	// In the store: the two unfinished attempts (the finished one was
	// deleted at its callback), none for the refusals.
	gc, err := le.Store.GarbageCollect(t.Context(), time.Now().Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if gc.LoginAttempts != 2 {
		t.Errorf("login attempts in the store = %d, want 2", gc.LoginAttempts)
	}

	// Retry-After was right: 30 s later one more is allowed.
	le.clock.Advance(30 * time.Second)
	resp, body = getNoFollow(t, nil, le.authorizeURL())
	le.wantUpstreamRedirect(t, "authorize after Retry-After", resp, body)
	resp, body = getNoFollow(t, nil, le.authorizeURL())
	wantLimited(t, "the next authorize", resp, body, "30")
}

func TestLoginRateLimitChooser(t *testing.T) {
	le := newLimitedEnv(t, 2, broker.LoginLimits{PerMinute: 1, Burst: 2})
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, body := getNoFollow(t, c, le.authorizeURL())
	link := chooserLink(body, "corp")
	if resp.StatusCode != http.StatusOK || link == "" {
		t.Fatalf("authorize = %d, want the chooser with a link to corp; body: %.500s", resp.StatusCode, body)
	}
	choose := le.Issuer + link
	resp, body = getNoFollow(t, c, choose)
	le.wantUpstreamRedirect(t, "choosing corp", resp, body)
	// Each choice rewrites the attempt, so it counts too.
	resp, body = getNoFollow(t, c, choose)
	wantLimited(t, "choosing corp again", resp, body, "60")
	if c, u := le.attempts.created.Load(), le.attempts.updated.Load(); c != 1 || u != 1 {
		t.Errorf("login attempts created, updated = %d, %d; want 1, 1 (nothing for the refusal)", c, u)
	}
}

func TestLoginRateLimitTrustedProxy(t *testing.T) {
	le := newLimitedEnv(t, 1, broker.LoginLimits{PerMinute: 1, Burst: 1}, netip.MustParsePrefix("127.0.0.0/8"))
	a, b := "198.51.100.7", "203.0.113.9"
	resp, body := getNoFollow(t, nil, le.authorizeURL(), a)
	le.wantUpstreamRedirect(t, "authorize from A", resp, body)
	resp, body = getNoFollow(t, nil, le.authorizeURL(), a)
	wantLimited(t, "authorize from A again", resp, body, "60")
	// B has its own bucket, also when A's address is written before it
	// (the client part of the header, left of what the proxy appended).
	resp, body = getNoFollow(t, nil, le.authorizeURL(), a+", "+b)
	le.wantUpstreamRedirect(t, "authorize from B", resp, body)
	resp, body = getNoFollow(t, nil, le.authorizeURL(), b)
	wantLimited(t, "authorize from B again", resp, body, "60")
	// The proxy itself (no header) is one more client.
	resp, body = getNoFollow(t, nil, le.authorizeURL())
	le.wantUpstreamRedirect(t, "authorize from the proxy", resp, body)
	if n := le.attempts.created.Load(); n != 3 {
		t.Errorf("login attempts written = %d, want 3", n)
	}
	if got := le.refusals(t, broker.LimitClient); got != 2 {
		t.Errorf("client refusals = %v, want 2", got)
	}
}

// TestLoginRateLimitFloodLeavesRoomForNewcomers: 100 addresses (behind a
// trusted proxy) flood /authorize at their own limit, five times the
// global ceiling together; while they do, one fresh address a second
// signs in, after that second's flood. At least 9 of 10 get through, and
// the ceiling holds for everybody together. Limits are scaled down (1/s
// per address, 20/s for all) to keep the request count bounded: 1,510.
func TestLoginRateLimitFloodLeavesRoomForNewcomers(t *testing.T) {
	limits := broker.LoginLimits{PerMinute: 60, Burst: 3, GlobalPerSecond: 20, GlobalBurst: 40}
	le := newLimitedEnv(t, 1, limits, netip.MustParsePrefix("127.0.0.0/8"))
	start := le.clock.Now()
	allowed, fresh, freshAllowed := 0, 0, 0
	for round := range 15 {
		for i := range 100 {
			resp, _ := getNoFollow(t, nil, le.authorizeURL(), fmt.Sprintf("198.51.100.%d", i))
			if resp.StatusCode == http.StatusSeeOther {
				allowed++
			}
		}
		if round >= 5 { // the flood is under way
			fresh++
			resp, body := getNoFollow(t, nil, le.authorizeURL(), fmt.Sprintf("203.0.113.%d", round))
			switch resp.StatusCode {
			case http.StatusSeeOther:
				allowed++
				freshAllowed++
			case http.StatusTooManyRequests:
			default:
				t.Fatalf("fresh address = %d, want 303 or 429; body: %.300s", resp.StatusCode, body)
			}
		}
		le.clock.Advance(time.Second)
	}
	t.Logf("%d of %d fresh addresses signed in during the flood; %d attempts allowed in all", freshAllowed, fresh, allowed)
	if freshAllowed*10 < fresh*9 {
		t.Errorf("%d of %d fresh addresses signed in during the flood, want at least 9 of 10", freshAllowed, fresh)
	}
	elapsed := le.clock.Now().Sub(start).Seconds()
	if ceiling := int(float64(limits.GlobalPerSecond)*elapsed) + limits.GlobalBurst; allowed > ceiling {
		t.Errorf("%d attempts allowed in %.1f s, want at most the ceiling's %d", allowed, elapsed, ceiling)
	}
	if n := le.attempts.created.Load(); n != int64(allowed) {
		t.Errorf("login attempts written = %d, want %d (one per allowed request)", n, allowed)
	}
}
