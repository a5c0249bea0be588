package gateway

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/cmd/config"
	"github.com/keyward/keyward/keys"
	"github.com/keyward/keyward/test/brokertest"
	"github.com/keyward/keyward/web/verify"
)

// Timing of the rotation test, on the shared injected clock. The period is
// the shortest keyward.yaml accepts with a JWKS max-age of 1m (rotation ≥ 2 ×
// max-age), and 1m is also the least max-age web/verify honours.
const (
	rotPeriod    = 2 * time.Minute
	rotMaxAge    = time.Minute
	rotTokenTTL  = 15 * time.Minute // access tokens, and the keys' MaxTokenTTL
	rotRotations = 4
	rotWorkers   = 4
	botID        = "rotation-bot"
	botSecret    = "rotation-bot-secret-0123456789-0123456789"
)

// shiftClock is the real clock plus an offset that the test advances: the
// broker's keys, the broker and the verifier all read it, as machines whose
// clocks agree would.
type shiftClock = brokertest.Clock

// rotatingBroker is newBroker with a key manager on an injected clock and a
// short rotation period, a client_credentials client, and a count of the
// JWKS requests it serves.
type rotatingBroker struct {
	*brokerEnv
	keys     *keys.Manager
	jwksHits atomic.Int64
}

func newRotatingBroker(t *testing.T, clock *shiftClock) *rotatingBroker {
	t.Helper()
	rb := &rotatingBroker{}
	rb.brokerEnv = startBroker(t, brokertest.Options{
		Keys: keys.Config{
			Algorithm:      keys.ES256, // fast key generation under -race; the protocol is the same
			RotationPeriod: config.Duration(rotPeriod), JWKSMaxAge: config.Duration(rotMaxAge), MaxTokenTTL: rotTokenTTL,
		},
		Now: clock.Now,
		Clients: []broker.Client{
			ordersClient,
			{ID: botID, Secret: botSecret, GrantTypes: []string{"client_credentials"}, Audiences: []string{apiAudience}, Scopes: []string{"orders:read"}},
		},
		Broker: func(bc *broker.Config) { bc.AccessTokenTTL = rotTokenTTL },
		Handler: func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/keys" {
					rb.jwksHits.Add(1)
				}
				h.ServeHTTP(rw, r)
			})
		},
	})
	rb.keys = rb.Keys
	return rb
}

// clientCredentials gets a machine token for apiAudience. It reports errors
// instead of failing, for use off the test goroutine.
func (b *rotatingBroker) clientCredentials(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.issuer()+"/token",
		strings.NewReader(url.Values{"grant_type": {"client_credentials"}, "audience": {apiAudience}}.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(botID, botSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("client_credentials: %d %.300s", resp.StatusCode, body)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &tok); err != nil || tok.AccessToken == "" {
		return "", fmt.Errorf("client_credentials: no access_token in %.300s", body)
	}
	return tok.AccessToken, nil
}

// kidOf reads the kid from a JWT header, unverified.
func kidOf(token string) string {
	h, _, _ := strings.Cut(token, ".")
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		return ""
	}
	var hdr struct {
		Kid string `json:"kid"`
	}
	_ = json.Unmarshal(b, &hdr)
	return hdr.Kid
}

// tokenPool holds every token issued during the test; workers verify them
// round robin, and each token's successful checks are counted by kid.
type tokenPool struct {
	mu     sync.Mutex
	tokens []string
	ok     map[string]int // kid → successful verifications
	bad    []string       // rejections of valid tokens
	checks int
}

func (p *tokenPool) add(tok string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tokens = append(p.tokens, tok)
}

func (p *tokenPool) pick(i int) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	// Favour the newest tokens (the current key's), but keep revisiting old
	// ones (retired keys, still published, still valid).
	n := len(p.tokens)
	if i%2 == 0 {
		return p.tokens[n-1-(i/2)%min(n, 4)]
	}
	return p.tokens[(i/2)%n]
}

func (p *tokenPool) record(tok string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.checks++
	if err != nil {
		if len(p.bad) < 10 {
			p.bad = append(p.bad, fmt.Sprintf("kid %s: %v", kidOf(tok), err))
		} else {
			p.bad = append(p.bad, "")
		}
		return
	}
	p.ok[kidOf(tok)]++
}

func (p *tokenPool) okCount(kid string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ok[kid]
}

// TestKeyRotationUnderLoad rotates the broker's signing key several times
// while workers verify tokens with web/verify (keys fetched over HTTP from
// the broker's /keys) and new tokens keep being issued by the current key:
// not one valid token may be refused.
//
// Time is the injected clock: each rotation period is crossed in two steps.
// After the first (one JWKS max-age), the verifiers' cached key sets are
// stale, and the test waits until they have refetched /keys under load, as
// they would during a real period; after the second, the broker rotates.
// Every token lives 15m and the clock moves 8m in all, so every token issued
// stays valid, and no retired key is pruned, until the end.
func TestKeyRotationUnderLoad(t *testing.T) {
	clock := &shiftClock{}
	b := newRotatingBroker(t, clock)
	ctx := t.Context()

	// Two verifiers, as two gateways: one with the verified-token cache,
	// one without (every check looks its key up and checks the signature).
	var verifiers []*verify.Verifier
	for _, entries := range []int{0, -1} {
		v, err := verify.New(ctx, verify.Config{Issuer: b.issuer(), Audiences: []string{apiAudience}, Cache: verify.CacheConfig{MaxEntries: entries}, Now: clock.Now})
		if err != nil {
			t.Fatalf("verify.New: %v", err)
		}
		verifiers = append(verifiers, v)
	}
	pool := &tokenPool{ok: map[string]int{}}
	pool.add(b.signIn(t, "alice"))
	for _, v := range verifiers { // load the key sets before the load starts
		if _, err := v.Verify(ctx, pool.pick(0)); err != nil {
			t.Fatalf("first Verify: %v", err)
		}
	}

	// Workers: verify until stop; issuer: client_credentials tokens back to
	// back, concurrently with the rotations.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range rotWorkers {
		wg.Go(func() {
			v := verifiers[w%len(verifiers)]
			for i := w; ; i += rotWorkers {
				select {
				case <-stop:
					return
				default:
				}
				tok := pool.pick(i)
				_, err := v.Verify(ctx, tok)
				pool.record(tok, err)
			}
		})
	}
	var issueErr atomic.Pointer[error]
	var issued atomic.Int64
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			tok, err := b.clientCredentials(ctx)
			if err != nil {
				if ctx.Err() == nil {
					issueErr.CompareAndSwap(nil, &err)
				}
				return
			}
			pool.add(tok)
			issued.Add(1)
		}
	})
	stopLoad := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(stopLoad)

	// waitFor polls cond for at most 20 s (a bound, not a timing assertion).
	// Every 5 s of waiting it moves the clock 2 s on: a verifier whose fetch
	// failed (a loaded CI machine) waits out its 1 s backoff on this clock,
	// which would otherwise stand still.
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		start := time.Now()
		nudge := start.Add(5 * time.Second)
		for !cond() {
			if time.Since(start) > 20*time.Second {
				stopLoad()
				var ie error
				if p := issueErr.Load(); p != nil {
					ie = *p
				}
				t.Fatalf("gave up waiting (20s) for %s (JWKS fetches %d, tokens issued %d, issuing error: %v)", what, b.jwksHits.Load(), issued.Load(), ie)
			}
			if time.Now().After(nudge) {
				clock.Advance(2 * time.Second)
				nudge = time.Now().Add(5 * time.Second)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}

	kids := []string{b.keys.SigningKey().ID}
	for r := range rotRotations {
		// One max-age into the period (web/verify keeps a key set for the
		// max-age ± 10% jitter): the verifiers' key sets are stale and are
		// refetched under load (in the background; checks go on).
		hits := b.jwksHits.Load()
		stale := rotMaxAge*11/10 + time.Second
		clock.Advance(stale)
		waitFor(fmt.Sprintf("a JWKS refetch before rotation %d", r+1), func() bool {
			if b.jwksHits.Load() >= hits+int64(len(verifiers)) {
				return true
			}
			// A stale key set is refetched when it is used, and a verifier
			// with a token cache uses it only for a token it has not seen:
			// give every verifier a new one, whatever the issuing goroutine
			// is doing on a loaded machine.
			if tok, err := b.clientCredentials(ctx); err == nil {
				pool.add(tok)
				for _, v := range verifiers {
					_, err := v.Verify(ctx, tok)
					pool.record(tok, err)
				}
			}
			return false
		})
		// The rest of the period: rotate.
		clock.Advance(rotPeriod - stale)
		rotated, err := b.keys.Rotate(ctx)
		if err != nil || !rotated {
			stopLoad()
			t.Fatalf("rotation %d: Rotate() = %v, %v; want true, nil", r+1, rotated, err)
		}
		kid := b.keys.SigningKey().ID
		kids = append(kids, kid)
		// A person signs in now: a token from the new key, through the
		// real login form; the worker pool must verify it.
		tok := b.signIn(t, "alice")
		if got := kidOf(tok); got != kid {
			stopLoad()
			t.Fatalf("rotation %d: sign-in token has kid %q, want the new current key %q", r+1, got, kid)
		}
		pool.add(tok)
		waitFor(fmt.Sprintf("a verified token of key %s (rotation %d)", kid, r+1), func() bool { return pool.okCount(kid) >= 2*rotWorkers })
	}
	stopLoad()

	if p := issueErr.Load(); p != nil {
		t.Errorf("issuing tokens during the rotations: %v", *p)
	}
	// Every token is still valid: prove it with a fresh verifier before
	// judging the rejections (a refusal here would be the test's fault).
	fresh, err := verify.New(ctx, verify.Config{Issuer: b.issuer(), Audiences: []string{apiAudience}, Cache: verify.CacheConfig{MaxEntries: -1}, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	pool.mu.Lock()
	defer pool.mu.Unlock()
	for _, tok := range pool.tokens {
		if _, err := fresh.Verify(ctx, tok); err != nil {
			t.Fatalf("a token issued during the test is not valid at its end (kid %s): %v", kidOf(tok), err)
		}
	}
	if n := len(pool.bad); n > 0 {
		t.Errorf("%d of %d checks refused a valid token during %d rotations; first: %s", n, pool.checks, rotRotations, strings.Join(pool.bad[:min(n, 10)], "; "))
	}
	for _, kid := range kids {
		if pool.ok[kid] == 0 {
			t.Errorf("no token signed by key %s was verified: the load did not cover it", kid)
		}
	}
	t.Logf("%d checks, %d tokens (%d by client_credentials), %d rotations, keys %v, verified per key %v, JWKS fetches %d",
		pool.checks, len(pool.tokens), issued.Load(), rotRotations, kids, pool.ok, b.jwksHits.Load())
}
