package keys

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"

	"github.com/keyward/keyward/cmd/config"
	"github.com/keyward/keyward/store"
)

func jwksKIDs(t *testing.T, m *Manager) []string {
	t.Helper()
	body, _ := m.JWKS()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatalf("parse JWKS: %v", err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.KeyID)
	}
	return kids
}

func mustRotate(t *testing.T, m *Manager, want bool) {
	t.Helper()
	got, err := m.Rotate(t.Context())
	if err != nil || got != want {
		t.Fatalf("Rotate() = %v, %v; want %v, nil", got, err, want)
	}
}

// TestRotationSequence walks several periods with a fake clock.
func TestRotationSequence(t *testing.T) {
	const period, ttl = 24 * time.Hour, time.Hour
	st, clock := &memStore{}, newClock()
	m := mustNew(t, testConfig(t, st, clock))
	keep := ttl + retireLeeway + DefaultReloadInterval // how long a retired key stays

	for i := range 4 {
		cur, next := m.SigningKey().ID, kidsOf(st.set())[store.KeyNext][0]
		// The next key is published a whole period before it signs.
		if kids := jwksKIDs(t, m); !slices.Contains(kids, next) {
			t.Fatalf("period %d: next key %s not in JWKS %v", i, next, kids)
		}
		tok, err := m.Sign(t.Context(), map[string]any{"exp": clock.Now().Add(ttl).Unix()}, nil)
		if err != nil {
			t.Fatal(err)
		}
		signedAt := clock.Now()

		clock.Advance(m.NextRotation().Sub(clock.Now()) - time.Second)
		mustRotate(t, m, false)
		if got := m.SigningKey().ID; got != cur {
			t.Fatalf("period %d: rotated early: SigningKey %s, want %s", i, got, cur)
		}
		clock.Advance(time.Second)
		mustRotate(t, m, true)
		mustRotate(t, m, false) // idempotent
		rotatedAt := clock.Now()
		if got := m.SigningKey().ID; got != next {
			t.Fatalf("period %d: SigningKey after rotation = %s, want the next key %s", i, got, next)
		}
		if !m.NextRotation().Equal(rotatedAt.Add(period)) {
			t.Errorf("period %d: NextRotation = %v, want %v", i, m.NextRotation(), rotatedAt.Add(period))
		}
		infos := m.Keys()
		if got, want := infos[2], (KeyInfo{
			ID: cur, Algorithm: ES256, State: store.KeyRetired,
			CreatedAt: infos[2].CreatedAt, ActivatesAt: infos[2].ActivatesAt,
			RetiredAt: rotatedAt.UTC(), ExpiresAt: rotatedAt.Add(keep).UTC(),
		}); got != want {
			t.Errorf("period %d: retired key = %+v, want %+v", i, got, want)
		}
		for _, k := range st.set().Keys {
			if k.State == store.KeyRetired && k.PrivateKey != nil {
				t.Errorf("period %d: retired key %s kept its private key", i, k.ID)
			}
		}

		// The old key verifies tokens it signed until ExpiresAt.
		if err := verifyWithManager(m, tok, signedAt); err != nil {
			t.Errorf("period %d: token of the retired key: %v", i, err)
		}
		clock.Advance(keep - time.Second)
		mustRotate(t, m, false) // prunes nothing yet
		if _, ok := m.PublicKey(cur); !ok || !slices.Contains(jwksKIDs(t, m), cur) {
			t.Errorf("period %d: retired key gone before ExpiresAt", i)
		}
		clock.Advance(time.Second)
		if _, ok := m.PublicKey(cur); ok {
			t.Errorf("period %d: PublicKey(%s) found at ExpiresAt", i, cur)
		}
		mustRotate(t, m, false)
		if kids := jwksKIDs(t, m); slices.Contains(kids, cur) || len(kids) != 2 {
			t.Errorf("period %d: JWKS after pruning = %v, want 2 keys without %s", i, kids, cur)
		}
	}
}

// TestVerifiersNeverMeetUnknownKID simulates two replicas and edge verifiers
// that cache the JWKS for exactly the served max-age. Replica a runs the
// schedule eagerly (with early rotations); replica b steps as Run does, at
// its NextRotation and every ReloadInterval.
// At every step, the kid each replica signs with is in every verifier's
// cached JWKS, and every unexpired token's key is still published.
//
// The variants run it with one algorithm, with two from the start, and with
// a second algorithm added midway (both replicas restarted with the new
// configuration, one of them a step later): then every algorithm's signing
// key must be known too.
func TestVerifiersNeverMeetUnknownKID(t *testing.T) {
	tests := []struct {
		name      string
		access    string // AccessTokenAlgorithm at the start
		upgradeTo string // AccessTokenAlgorithm from step 100 ("": no change)
	}{
		{name: "one algorithm"},
		{name: "two algorithms", access: EdDSA},
		{name: "second algorithm added", upgradeTo: EdDSA},
		{name: "access algorithm changed", access: EdDSA, upgradeTo: RS256},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { verifiersNeverMeetUnknownKID(t, tt.access, tt.upgradeTo) })
	}
}

func verifiersNeverMeetUnknownKID(t *testing.T, access, upgradeTo string) {
	const (
		period = 2 * time.Hour
		ttl    = 30 * time.Minute
		step   = 8 * time.Minute
		reload = 40 * time.Minute
	)
	st, clock := &memStore{}, newClock()
	cfg := testConfig(t, st, clock)
	cfg.RotationPeriod, cfg.MaxTokenTTL, cfg.ReloadInterval = config.Duration(period), ttl, reload
	cfg.AccessTokenAlgorithm = access
	a, b := mustNew(t, cfg), mustNew(t, cfg)
	algs := cfg.Algorithms()
	firstSigned := map[string]string{} // alg -> first kid of that algorithm to sign

	type cache struct {
		from    **Manager // the replica serving it, also after a restart
		kids    []string
		expires time.Time
	}
	caches := []*cache{{from: &a}, {from: &b}, {from: &b}}
	type token struct {
		kid string
		exp time.Time
	}
	var tokens []token
	lastStep := clock.Now() // of b, which steps as Run does
	rotations := 0
	for i := range 400 {
		now := clock.Advance(step)
		if i%3 == 0 {
			clock.Advance(time.Duration(i%5) * time.Second) // off the grid
		}
		if upgradeTo != "" && (i == 100 || i == 101) {
			up := cfg
			up.AccessTokenAlgorithm = upgradeTo
			algs = up.Algorithms()
			if i == 100 {
				a = mustNew(t, up)
			} else {
				b = mustNew(t, up)
			}
		}
		rotated, err := a.Rotate(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if rotated {
			rotations++
		}
		if i%50 == 25 || i%50 == 26 {
			if err := a.RotateNow(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		if now.Sub(lastStep) >= reload || !now.Before(b.NextRotation()) {
			rotated, err := b.Rotate(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if rotated {
				rotations++
			}
			lastStep = now
		}
		for j, c := range caches {
			if j == 2 && i%2 == 1 {
				continue // this verifier only looks every other step
			}
			if !now.Before(c.expires) {
				body, maxAge := (*c.from).JWKS()
				var set jose.JSONWebKeySet
				if err := json.Unmarshal(body, &set); err != nil {
					t.Fatal(err)
				}
				c.kids = nil
				for _, k := range set.Keys {
					c.kids = append(c.kids, k.KeyID)
				}
				c.expires = now.Add(maxAge)
			}
			for _, signer := range []*Manager{a, b} {
				for _, alg := range signer.Algorithms() {
					if kid := signer.SigningKeyFor(alg).ID; !slices.Contains(c.kids, kid) {
						t.Fatalf("step %d: verifier %d (cache until %v) does not know %s signing kid %s; cached %v", i, j, c.expires, alg, kid, c.kids)
					}
				}
			}
		}
		for _, signer := range []*Manager{a, b} {
			for _, alg := range signer.Algorithms() {
				k := signer.SigningKeyFor(alg)
				tokens = append(tokens, token{k.ID, now.Add(ttl)})
				if _, ok := firstSigned[k.Algorithm]; !ok {
					firstSigned[k.Algorithm] = k.ID
				}
			}
		}
		for _, tk := range tokens {
			if now.Before(tk.exp) && !slices.Contains(jwksKIDs(t, a), tk.kid) {
				t.Fatalf("step %d: key %s of an unexpired token was unpublished", i, tk.kid)
			}
		}
	}
	if rotations < 20 {
		t.Errorf("only %d rotations happened; the test exercised too little", rotations)
	}
	for _, alg := range algs {
		if firstSigned[alg] == "" {
			t.Errorf("no %s key ever signed", alg)
		}
		if got := a.SigningKeyFor(alg).Algorithm; got != alg {
			t.Errorf("at the end %s tokens are signed %s", alg, got)
		}
	}
}

func TestConcurrentRotationRotatesOnce(t *testing.T) {
	for _, retries := range []int{0, 1} {
		t.Run(map[int]string{0: "plain", 1: "retried updaters"}[retries], func(t *testing.T) {
			st, clock := &memStore{retries: retries}, newClock()
			a, b := mustNew(t, testConfig(t, st, clock)), mustNew(t, testConfig(t, st, clock))
			before := st.set()
			clock.Advance(24 * time.Hour)

			// Both read the due schedule and generate a key before either
			// writes.
			var arrived sync.WaitGroup
			arrived.Add(2)
			var calls atomic.Int32
			st.beforeUpdate = func() {
				if calls.Add(1) <= 2 {
					arrived.Done()
					arrived.Wait()
				}
			}
			var wg sync.WaitGroup
			results := make([]bool, 2)
			for i, m := range []*Manager{a, b} {
				wg.Go(func() {
					var err error
					if results[i], err = m.Rotate(t.Context()); err != nil {
						t.Errorf("Rotate() = %v", err)
					}
				})
			}
			wg.Wait()
			if results[0] == results[1] {
				t.Fatalf("Rotate() results = %v, want exactly one true", results)
			}
			after := st.set()
			if got, want := after.Version, before.Version+1; got != want {
				t.Errorf("Version = %d, want %d (one stored rotation)", got, want)
			}
			oldKids, newKids := kidsOf(before), kidsOf(after)
			if diff := cmp.Diff(oldKids[store.KeyNext], newKids[store.KeyCurrent]); diff != "" {
				t.Errorf("current after rotation (-old next +current):\n%s", diff)
			}
			if diff := cmp.Diff(oldKids[store.KeyCurrent], newKids[store.KeyRetired]); diff != "" {
				t.Errorf("retired after rotation (-old current +retired):\n%s", diff)
			}
			if a.SigningKey().ID != b.SigningKey().ID {
				t.Errorf("replicas sign with %s and %s", a.SigningKey().ID, b.SigningKey().ID)
			}
		})
	}
}

func TestRotateNow(t *testing.T) {
	const maxAge = time.Hour
	tests := []struct {
		name string
		// nextAge is how long the next key has been published.
		nextAge    time.Duration
		wantNow    bool          // rotated at once
		wantDelay  time.Duration // otherwise, rotation due after this
		rotateBack bool
	}{
		{name: "next published for a max-age", nextAge: 3 * time.Hour, wantNow: true},
		{name: "next published exactly a max-age", nextAge: maxAge, wantNow: true},
		{name: "next just published", nextAge: 0, wantDelay: maxAge},
		{name: "next published 20m ago", nextAge: 20 * time.Minute, wantDelay: 40 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, clock := &memStore{}, newClock()
			m := mustNew(t, testConfig(t, st, clock))
			clock.Advance(tt.nextAge)
			cur, next := m.SigningKey().ID, kidsOf(st.set())[store.KeyNext][0]

			if err := m.RotateNow(t.Context()); err != nil {
				t.Fatalf("RotateNow() = %v", err)
			}
			if tt.wantNow {
				if got := m.SigningKey().ID; got != next {
					t.Fatalf("after RotateNow SigningKey = %s, want the next key %s", got, next)
				}
				return
			}
			if got := m.SigningKey().ID; got != cur {
				t.Fatalf("RotateNow signed with a key published for %v < max-age", tt.nextAge)
			}
			if got, want := m.NextRotation(), clock.Now().Add(tt.wantDelay); !got.Equal(want) {
				t.Errorf("NextRotation = %v, want %v", got, want)
			}
			clock.Advance(tt.wantDelay - time.Second)
			mustRotate(t, m, false)
			clock.Advance(time.Second)
			mustRotate(t, m, true)
			if got := m.SigningKey().ID; got != next {
				t.Errorf("SigningKey = %s, want %s", got, next)
			}
		})
	}
}

func TestRotationLog(t *testing.T) {
	var buf bytes.Buffer
	st, clock := &memStore{}, newClock()
	cfg := testConfig(t, st, clock)
	cfg.Logger = slog.New(slog.NewJSONHandler(&buf, nil))
	m := mustNew(t, cfg)
	clock.Advance(24 * time.Hour)
	mustRotate(t, m, true)

	var rotated map[string]any
	for line := range strings.Lines(buf.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		if rec["event"] == "key_rotated" && rec["msg"] == "signing key rotated" {
			rotated = rec
		}
	}
	if rotated == nil || rotated["level"] != "INFO" || rotated["kid"] != m.SigningKey().ID || rotated["alg"] != ES256 || rotated["component"] != "keys" {
		t.Errorf("rotation log record = %v, want INFO event=key_rotated kid=%s alg=ES256 component=keys", rotated, m.SigningKey().ID)
	}
	for _, k := range st.set().Keys {
		if len(k.PrivateKey) > 0 && strings.Contains(buf.String(), base64.StdEncoding.EncodeToString(k.PrivateKey)) {
			t.Errorf("log contains private key %s", k.ID)
		}
	}
}

// timerReq is one timer Run asked for.
type timerReq struct {
	d    time.Duration
	fire chan time.Time
}

func fakeTimers(ctx context.Context, m *Manager) <-chan timerReq {
	reqs := make(chan timerReq)
	m.timer = func(d time.Duration) (<-chan time.Time, func() bool) {
		r := timerReq{d: d, fire: make(chan time.Time, 1)}
		select {
		case reqs <- r:
		case <-ctx.Done():
		}
		return r.fire, func() bool { return true }
	}
	return reqs
}

func TestRun(t *testing.T) {
	st, clock := &memStore{}, newClock()
	cfg := testConfig(t, st, clock)
	cfg.ReloadInterval = 2 * time.Hour
	m := mustNew(t, cfg)
	ctx, cancel := context.WithCancel(t.Context())
	reqs := fakeTimers(ctx, m)
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()

	expect := func(what string, want time.Duration) timerReq {
		t.Helper()
		r := <-reqs
		if r.d != want {
			t.Fatalf("%s: Run waits %v, want %v", what, r.d, want)
		}
		return r
	}
	r := expect("start", 2*time.Hour) // bounded by ReloadInterval
	clock.Advance(23 * time.Hour)
	r.fire <- clock.Now()
	r = expect("one hour before rotation", time.Hour)
	next := kidsOf(st.set())[store.KeyNext][0]
	clock.Advance(time.Hour)
	r.fire <- clock.Now()
	r = expect("after rotation", 2*time.Hour)
	if got := m.SigningKey().ID; got != next {
		t.Fatalf("Run did not rotate: SigningKey = %s, want %s", got, next)
	}
	// The retired key expires after 1h TTL + 1m + 2h (the reload interval).
	clock.Advance(150 * time.Minute)
	r.fire <- clock.Now()
	r = expect("before the retired key expires", 31*time.Minute)
	clock.Advance(31 * time.Minute)
	r.fire <- clock.Now()
	r = expect("after pruning", 2*time.Hour)
	if n := len(m.Keys()); n != 2 {
		t.Errorf("Run did not prune: %d keys", n)
	}

	// RotateNow wakes Run to follow the new schedule.
	clock.Advance(time.Hour + time.Second)
	st.setFail(nil)
	if err := m.RotateNow(t.Context()); err != nil {
		t.Fatal(err)
	}
	r = expect("after RotateNow", 2*time.Hour)

	// A failing store: Run logs, and retries no sooner than retryDelay.
	st.setFail(errors.New("store down"))
	clock.Advance(24 * time.Hour)
	r.fire <- clock.Now()
	r = expect("after a failure", retryDelay)
	st.setFail(nil)
	r.fire <- clock.Now()
	expect("recovered", 2*time.Hour)

	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run() = %v, want nil", err)
	}
}
