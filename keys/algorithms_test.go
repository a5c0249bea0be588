package keys

import (
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyward/keyward/store"
)

// Key sets of two algorithms (Config.AccessTokenAlgorithm): each has its
// own chain and schedule in the one set and JWKS. The fake-clock style of
// rotate_test.go.

// keyOf returns the key of alg in state of the stored set.
func keyOf(t *testing.T, ks store.KeySet, alg string, state store.KeyState) store.SigningKey {
	t.Helper()
	var found []store.SigningKey
	for _, k := range ks.Keys {
		if k.Algorithm == alg && k.State == state {
			found = append(found, k)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d %s %s keys in the set, want 1", len(found), alg, state)
	}
	return found[0]
}

// TestSecondAlgorithmAdded upgrades a single-algorithm key set (ES256) to
// one whose access tokens are EdDSA, then walks several periods. In the
// first period the EdDSA key is next: published at once, due one JWKS
// max-age later, and until then ES256 signs access tokens too. From then
// on each algorithm has its own chain, rotating every period, each next key
// published a whole period before it signs, and every token verifying
// against the one JWKS.
func TestSecondAlgorithmAdded(t *testing.T) {
	const period, ttl = 24 * time.Hour, time.Hour
	st, clock := &memStore{}, newClock()
	mustNew(t, testConfig(t, st, clock)) // an existing ES256 set
	clock.Advance(5 * time.Hour)
	cfg := testConfig(t, st, clock)
	cfg.AccessTokenAlgorithm = EdDSA
	m := mustNew(t, cfg)
	keep := ttl + retireLeeway + DefaultReloadInterval

	if diff := cmp.Diff([]string{ES256, EdDSA}, m.Algorithms()); diff != "" {
		t.Fatalf("Algorithms() (-want +got):\n%s", diff)
	}
	added := keyOf(t, st.set(), EdDSA, store.KeyNext)
	if want := clock.Now().Add(DefaultJWKSMaxAge).UTC(); !added.ActivatesAt.Equal(want) {
		t.Errorf("first EdDSA key activates at %v, want %v (one JWKS max-age after it was published)", added.ActivatesAt, want)
	}
	if !slices.Contains(jwksKIDs(t, m), added.ID) {
		t.Fatalf("first EdDSA key %s not in the JWKS", added.ID)
	}
	if !m.NextRotation().Equal(added.ActivatesAt) {
		t.Errorf("NextRotation = %v, want the EdDSA key's activation %v", m.NextRotation(), added.ActivatesAt)
	}
	es := keyOf(t, st.set(), ES256, store.KeyCurrent)
	// Until then ES256 signs access tokens, and they verify.
	for _, at := range []time.Duration{0, DefaultJWKSMaxAge - time.Second} {
		clock.Advance(at)
		mustRotate(t, m, false)
		if k := m.SigningKeyFor(EdDSA); k.ID != es.ID || k.Algorithm != ES256 {
			t.Fatalf("access tokens before the EdDSA key is due signed by %s (%s), want the ES256 key %s", k.ID, k.Algorithm, es.ID)
		}
		tok, err := m.SignAs(t.Context(), EdDSA, map[string]any{"sub": "x"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := m.JWKS()
		if _, parsed, err := verifyWithJWKS(t, body, tok, clock.Now()); err != nil || parsed.Method.Alg() != ES256 {
			t.Fatalf("access token before the EdDSA key is due: %v (alg %v)", err, parsed.Method.Alg())
		}
	}
	clock.Advance(time.Second)
	mustRotate(t, m, true)
	if k := m.SigningKeyFor(EdDSA); k.ID != added.ID {
		t.Fatalf("after one JWKS max-age access tokens signed by %s, want the first EdDSA key %s", k.ID, added.ID)
	}
	if k := m.SigningKey(); k.ID != es.ID {
		t.Errorf("the ES256 chain rotated with the EdDSA one: signs with %s, want %s", k.ID, es.ID)
	}
	if ks := st.set(); keyOf(t, ks, ES256, store.KeyCurrent).ID != es.ID || len(kidsOf(ks)[store.KeyRetired]) != 0 {
		t.Errorf("promoting the first EdDSA key retired keys: %v", kidsOf(ks))
	}

	// Several periods: each algorithm rotates on its own schedule.
	for i := range 5 {
		before := st.set()
		due := m.NextRotation()
		clock.Advance(due.Sub(clock.Now()) - time.Second)
		mustRotate(t, m, false)
		signedAt := clock.Now()
		toks := map[string]string{}
		for _, alg := range m.Algorithms() {
			if got := m.SigningKeyFor(alg).Algorithm; got != alg {
				t.Fatalf("period %d: %s tokens signed %s", i, alg, got)
			}
			tok, err := m.SignAs(t.Context(), alg, map[string]any{"exp": signedAt.Add(ttl).Unix()}, nil)
			if err != nil {
				t.Fatal(err)
			}
			toks[alg] = tok
		}
		clock.Advance(time.Second)
		mustRotate(t, m, true)
		after := st.set()
		rotated := 0
		for _, alg := range m.Algorithms() {
			oldNext := keyOf(t, before, alg, store.KeyNext)
			if !dueAt(oldNext, before).Equal(due) {
				if keyOf(t, after, alg, store.KeyCurrent).ID != keyOf(t, before, alg, store.KeyCurrent).ID {
					t.Errorf("period %d: %s rotated before its next key was due", i, alg)
				}
				continue
			}
			rotated++
			cur := keyOf(t, after, alg, store.KeyCurrent)
			if cur.ID != oldNext.ID || cur.ActivatesAt.Sub(oldNext.CreatedAt) < DefaultJWKSMaxAge {
				t.Errorf("period %d: %s current = %s (published %v before signing), want the old next key %s", i, alg, cur.ID, cur.ActivatesAt.Sub(oldNext.CreatedAt), oldNext.ID)
			}
			if n := keyOf(t, after, alg, store.KeyNext); !n.ActivatesAt.Equal(clock.Now().Add(period).UTC()) {
				t.Errorf("period %d: new %s next key due %v, want a period from now", i, alg, n.ActivatesAt)
			}
			if err := verifyWithManager(m, toks[alg], signedAt); err != nil {
				t.Errorf("period %d: %s token of the retired key: %v", i, alg, err)
			}
		}
		if rotated != 1 {
			t.Errorf("period %d: %d algorithms rotated at %v, want 1 (their schedules are an hour apart)", i, rotated, due)
		}
		retired := kidsOf(after)[store.KeyRetired]
		clock.Advance(keep - time.Second)
		mustRotate(t, m, false)
		for _, kid := range retired {
			if _, ok := m.PublicKey(kid); !ok {
				t.Errorf("period %d: retired key %s unpublished before its tokens expired", i, kid)
			}
		}
		clock.Advance(time.Second)
		mustRotate(t, m, false)
		if n := len(kidsOf(st.set())[store.KeyRetired]); n != 0 {
			t.Errorf("period %d: %d retired keys left after their tokens expired", i, n)
		}
	}
	if kids := jwksKIDs(t, m); len(kids) != 4 {
		t.Errorf("JWKS after the last pruning = %v, want 4 keys (next and current of each algorithm)", kids)
	}
}

// TestFirstStartTwoAlgorithms: a new key set gets a current and a next key
// of each algorithm; both sign at once (no verifier can hold an older JWKS
// of it), and RotateNow rotates both.
func TestFirstStartTwoAlgorithms(t *testing.T) {
	st, clock := &memStore{}, newClock()
	cfg := testConfig(t, st, clock)
	cfg.AccessTokenAlgorithm = EdDSA
	m := mustNew(t, cfg)
	for _, alg := range []string{ES256, EdDSA} {
		cur := keyOf(t, st.set(), alg, store.KeyCurrent)
		if got := m.SigningKeyFor(alg).ID; got != cur.ID {
			t.Errorf("%s signs with %s, want its current key %s", alg, got, cur.ID)
		}
		keyOf(t, st.set(), alg, store.KeyNext)
	}
	if n := len(jwksKIDs(t, m)); n != 4 {
		t.Errorf("JWKS has %d keys, want 4", n)
	}
	if _, err := m.SignAs(t.Context(), RS256, nil, nil); err == nil {
		t.Errorf("SignAs(RS256) on an ES256+EdDSA set = nil error")
	}

	clock.Advance(2 * DefaultJWKSMaxAge)
	before := st.set()
	if err := m.RotateNow(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, alg := range []string{ES256, EdDSA} {
		if got, want := m.SigningKeyFor(alg).ID, keyOf(t, before, alg, store.KeyNext).ID; got != want {
			t.Errorf("after RotateNow %s signs with %s, want the old next key %s", alg, got, want)
		}
	}
}

// TestAlgorithmChange: a new Config.Algorithm gets its first key as next,
// published one JWKS max-age before it signs; the old algorithm signs until
// then, and its keys retire as soon as the new one signs.
func TestAlgorithmChange(t *testing.T) {
	st, clock := &memStore{}, newClock()
	old := mustNew(t, testConfig(t, st, clock)) // ES256 keys
	oldCur := old.SigningKey().ID
	oldNext := kidsOf(st.set())[store.KeyNext][0]
	cfg := testConfig(t, st, clock)
	cfg.Algorithm = EdDSA
	m := mustNew(t, cfg)

	infos := m.Keys()
	var eddsa KeyInfo
	for _, k := range infos {
		if k.Algorithm == EdDSA {
			eddsa = k
		}
	}
	if eddsa.State != store.KeyNext || !eddsa.ActivatesAt.Equal(clock.Now().Add(DefaultJWKSMaxAge)) {
		t.Fatalf("EdDSA key = %+v, want next, due one JWKS max-age (%v) from now", eddsa, DefaultJWKSMaxAge)
	}
	if slices.Contains(jwksKIDs(t, m), oldNext) {
		t.Errorf("the ES256 next key (never signed) is still published after the change")
	}
	var got []string
	for range 4 {
		tok, err := m.Sign(t.Context(), map[string]any{"sub": "x"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := m.JWKS()
		if _, _, err := verifyWithJWKS(t, body, tok, clock.Now()); err != nil {
			t.Fatalf("verify: %v", err)
		}
		got = append(got, m.Algorithm())
		clock.Advance(30 * time.Minute)
		_, err = m.Rotate(t.Context())
		if err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff([]string{ES256, ES256, EdDSA, EdDSA}, got); diff != "" {
		t.Errorf("signing algorithm every 30 minutes (-want +got):\n%s", diff)
	}
	for _, k := range m.Keys() {
		if k.ID == oldCur && k.State != store.KeyRetired {
			t.Errorf("old ES256 key %s is %s, want retired", k.ID, k.State)
		}
	}
	if _, ok := m.PublicKey(oldCur); !ok {
		t.Errorf("old ES256 key unpublished before the tokens it signed expired")
	}
}
