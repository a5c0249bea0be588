package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/store"
	"github.com/keyward/keyward/web"
)

// grantWrites counts the broker's grant reads and writes: every /token
// request that reaches fosite reads or writes one.
type grantWrites struct {
	broker.Store
	writes, reads atomic.Int64
}

func (s *grantWrites) CreateGrant(ctx context.Context, g store.Grant) error {
	s.writes.Add(1)
	return s.Store.CreateGrant(ctx, g)
}

func (s *grantWrites) UpdateGrant(ctx context.Context, kind store.GrantKind, sig string, u func(store.Grant) (store.Grant, error)) error {
	s.writes.Add(1)
	return s.Store.UpdateGrant(ctx, kind, sig, u)
}

func (s *grantWrites) DeleteGrant(ctx context.Context, kind store.GrantKind, sig string) error {
	s.writes.Add(1)
	return s.Store.DeleteGrant(ctx, kind, sig)
}

func (s *grantWrites) DeleteGrantsByRequest(ctx context.Context, requestID string, kinds ...store.GrantKind) (int, error) {
	s.writes.Add(1)
	return s.Store.DeleteGrantsByRequest(ctx, requestID, kinds...)
}

func (s *grantWrites) GetGrant(ctx context.Context, kind store.GrantKind, sig string) (store.Grant, error) {
	s.reads.Add(1)
	return s.Store.GetGrant(ctx, kind, sig)
}

type limitAnswer struct {
	status     int
	retryAfter string
	body       map[string]any
}

// postToken posts form to /token as the client behind the X-Forwarded-For
// address xff ("" for the loopback peer itself), with HTTP Basic
// credentials when id is set.
func postLimited(t *testing.T, issuer string, form url.Values, id, secret, xff string) limitAnswer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, issuer+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a := limitAnswer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &a.body); err != nil {
		t.Fatalf("POST /token: %d, body is not JSON: %.300s", resp.StatusCode, raw)
	}
	return a
}

func wantTokenLimited(t *testing.T, what string, a limitAnswer) {
	t.Helper()
	if a.status != http.StatusTooManyRequests || a.retryAfter == "" || a.body["error"] != "temporarily_unavailable" {
		t.Errorf("%s = %d Retry-After %q %v, want 429 with Retry-After and temporarily_unavailable", what, a.status, a.retryAfter, a.body)
	}
}

func counterValue(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					if m.GetCounter() != nil {
						return m.GetCounter().GetValue()
					}
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("%s{%s=%q} is not exported", name, label, value)
	return 0
}

// TestTokenClientLimitRefusesBurstWithoutStoreWork: a client past its
// bucket gets 429 with Retry-After at once, and the refused request reads
// and writes no grant; after the wait its refresh token still works.
func TestTokenClientLimitRefusesBurstWithoutStoreWork(t *testing.T) {
	var counted *grantWrites
	reg := prometheus.NewRegistry()
	e := newEnv(t, envOptions{
		broker: func(bc *broker.Config) {
			bc.TokenLimits = broker.TokenLimits{PerSecond: 1, Burst: 2}
			counted = &grantWrites{Store: bc.Store}
			bc.Store = counted
		},
		web: func(wc *web.Config) { wc.Registerer = reg },
	})
	c := e.client(appID, appSecret, appRedir, nil)
	tok, _ := c.signIn() // the code exchange takes the first token
	rt := tok.RefreshToken
	refresh := func() limitAnswer {
		return postLimited(t, e.issuer, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, appID, appSecret, "")
	}
	if a := refresh(); a.status != http.StatusOK {
		t.Fatalf("refresh within the burst = %d %v, want 200", a.status, a.body)
	} else {
		rt = a.body["refresh_token"].(string)
	}
	writes, reads := counted.writes.Load(), counted.reads.Load()
	wantTokenLimited(t, "refresh beyond the burst", refresh())
	if w, r := counted.writes.Load()-writes, counted.reads.Load()-reads; w != 0 || r != 0 {
		t.Errorf("refused refresh: %d grant writes, %d grant reads, want none", w, r)
	}
	if got := counterValue(t, reg, "keyward_token_requests_limited_total", "limit", broker.TokenLimitClient); got != 1 {
		t.Errorf("keyward_token_requests_limited_total{limit=client} = %v, want 1", got)
	}
	e.clock.Advance(2 * time.Second)
	if a := refresh(); a.status != http.StatusOK {
		t.Errorf("refresh after Retry-After = %d %v, want 200 (the refused one changed nothing)", a.status, a.body)
	}
}

// TestTokenGuessingIsSlowedWithoutLockingOutTheClient: wrong secrets for
// app from one address are refused with 429 after FailureBurst attempts
// (then even the right secret from that address, without a comparison);
// app itself, from another address, still gets tokens.
func TestTokenGuessingIsSlowedWithoutLockingOutTheClient(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, envOptions{
		broker: func(bc *broker.Config) {
			bc.TokenLimits = broker.TokenLimits{FailuresPerMinute: 1, FailureBurst: 3}
		},
		web: func(wc *web.Config) {
			wc.Registerer = reg
			wc.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		},
	})
	c := e.client(appID, appSecret, appRedir, nil)
	tok, _ := c.signIn()
	const attacker, legit = "192.0.2.66", "198.51.100.7"
	cc := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"guess"}}
	for i := range 3 {
		if a := postLimited(t, e.issuer, cc, appID, "wrong-secret", attacker); a.status != http.StatusUnauthorized || a.body["error"] != "invalid_client" {
			t.Fatalf("guess %d = %d %v, want 401 invalid_client", i, a.status, a.body)
		}
	}
	wantTokenLimited(t, "guess beyond the failure burst", postLimited(t, e.issuer, cc, appID, "wrong-secret", attacker))
	wantTokenLimited(t, "the right secret from the guessing address", postLimited(t, e.issuer, cc, appID, appSecret, attacker))
	a := postLimited(t, e.issuer, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, appID, appSecret, legit)
	if a.status != http.StatusOK || a.body["access_token"] == nil {
		t.Errorf("the client from its own address during the guessing = %d %v, want 200 with tokens", a.status, a.body)
	}
	// Naming app2 from the same address fails too, per address.
	if a := postLimited(t, e.issuer, cc, app2ID, "wrong-secret", attacker); a.status != http.StatusUnauthorized {
		t.Errorf("first guess at another client = %d %v, want 401 (its own failure bucket)", a.status, a.body)
	}
	if got := counterValue(t, reg, "keyward_token_requests_limited_total", "limit", broker.TokenLimitClientFailures); got != 2 {
		t.Errorf("keyward_token_requests_limited_total{limit=client_failures} = %v, want 2", got)
	}
}

// TestTokenEndpointShedsBeyondConcurrency holds the one token slot with a
// request whose body has not arrived, then checks that the next token
// request is answered at once 503 + Retry-After with RFC 6749 JSON, and
// that a browser endpoint held the same way gets a 503 page.
func TestTokenEndpointShedsBeyondConcurrency(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, envOptions{
		web: func(wc *web.Config) {
			wc.Registerer = reg
			wc.Concurrency = web.Concurrency{Token: 1, Browser: 1}
		},
	})
	hold := func(path, class string) {
		conn, err := net.Dial("tcp", strings.TrimPrefix(e.issuer, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		// A body promised but not sent keeps the handler reading.
		if _, err := io.WriteString(conn, "POST "+path+" HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ngrant_type="); err != nil {
			t.Fatal(err)
		}
		for counterValue(t, reg, "keyward_http_class_requests_in_flight", "class", class) != 1 {
			select {
			case <-t.Context().Done():
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	hold("/token", "token")
	a := postLimited(t, e.issuer, url.Values{"grant_type": {"client_credentials"}}, appID, appSecret, "")
	if a.status != http.StatusServiceUnavailable || a.retryAfter != "1" || a.body["error"] != "temporarily_unavailable" || a.body["error_description"] == "" {
		t.Errorf("token request while the slot is taken = %d Retry-After %q %v, want 503, Retry-After 1, temporarily_unavailable with a description", a.status, a.retryAfter, a.body)
	}
	if got := counterValue(t, reg, "keyward_http_shed_total", "class", "token"); got != 1 {
		t.Errorf("keyward_http_shed_total{class=token} = %v, want 1", got)
	}

	hold("/authorize", "browser")
	resp, err := http.Get(e.issuer + "/authorize?client_id=" + appID)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" ||
		!strings.Contains(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(body), "Keyward is busy") {
		t.Errorf("authorize while the slot is taken = %d Retry-After %q %q, want the 503 page with Retry-After 1", resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("Content-Type"))
	}
	// Unlimited routes still answer.
	if resp, err := http.Get(e.issuer + "/keys"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("GET /keys while both classes are full = %v %v, want 200", resp, err)
	} else {
		resp.Body.Close()
	}
}
