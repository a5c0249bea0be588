package keys

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyward/keyward/store"
	"github.com/keyward/keyward/store/bolt"
	"github.com/keyward/keyward/store/postgres"
	"github.com/keyward/keyward/store/postgres/pgtest"
)

// openReplicaStores opens n stores on one fresh PostgreSQL database, each
// with its own connection pool, as n replicas would.
func openReplicaStores(t *testing.T, n int) []*postgres.Store {
	t.Helper()
	dsn := pgtest.DSN(t)
	var out []*postgres.Store
	for range n {
		st, err := postgres.Open(t.Context(), postgres.Options{DSN: dsn, Migrate: true, MaxConns: 4})
		if err != nil {
			t.Fatalf("postgres.Open() = %v", err)
		}
		t.Cleanup(func() { _ = st.Close() })
		out = append(out, st)
	}
	return out
}

// jwksKIDSet is the kids a manager publishes now.
func jwksKIDSet(t *testing.T, m *Manager) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, kid := range jwksKIDs(t, m) {
		out[kid] = true
	}
	return out
}

// race runs f on each manager at once and waits for all.
func race(ms []*Manager, f func(m *Manager) error) []error {
	errs := make([]error, len(ms))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Go(func() {
			<-start
			errs[i] = f(m)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// checkOneRotation checks that between before and after exactly one
// rotation was stored: one more version, the old next key current, the old
// current key retired, exactly one new (next) key; and that the new signing
// key was published by every replica before the round and for at least
// minPublished.
func checkOneRotation(t *testing.T, round int, before, after store.KeySet, published []map[string]bool, minPublished time.Duration) {
	t.Helper()
	if got, want := after.Version, before.Version+1; got != want {
		t.Errorf("round %d: Version = %d, want %d (exactly one stored rotation)", round, got, want)
	}
	old, cur := kidsOf(before), kidsOf(after)
	if !slices.Equal(cur[store.KeyCurrent], old[store.KeyNext]) {
		t.Errorf("round %d: current = %v, want the old next key %v", round, cur[store.KeyCurrent], old[store.KeyNext])
	}
	if !slices.Contains(cur[store.KeyRetired], old[store.KeyCurrent][0]) {
		t.Errorf("round %d: retired = %v, want the old current key %s among them", round, cur[store.KeyRetired], old[store.KeyCurrent][0])
	}
	var added []string
	for _, k := range after.Keys {
		if !slices.ContainsFunc(before.Keys, func(b store.SigningKey) bool { return b.ID == k.ID }) {
			added = append(added, k.ID)
		}
	}
	if len(added) != 1 || !slices.Equal(added, cur[store.KeyNext]) {
		t.Errorf("round %d: new keys = %v, want exactly one, the next key %v", round, added, cur[store.KeyNext])
	}
	signer := cur[store.KeyCurrent][0]
	for i, kids := range published {
		if !kids[signer] {
			t.Errorf("round %d: replica %d signs with %s, which its JWKS did not publish before the rotation", round, i, signer)
		}
	}
	for _, k := range after.Keys {
		if k.ID == signer && k.ActivatesAt.Sub(k.CreatedAt) < minPublished {
			t.Errorf("round %d: %s signs %v after it was created, want at least %v", round, signer, k.ActivatesAt.Sub(k.CreatedAt), minPublished)
		}
	}
}

// TestReplicasRotateOnceOnPostgres races two key managers, each on its own
// connection pool to one PostgreSQL database, through several rotation
// steps: scheduled rotations (Rotate) and early ones (RotateNow). Every step
// stores exactly one rotation, and no replica signs with a key before it
// has been published for the required time.
func TestReplicasRotateOnceOnPostgres(t *testing.T) {
	sts := openReplicaStores(t, 2)
	clock := newClock()
	var ms []*Manager
	for _, st := range sts {
		ms = append(ms, mustNew(t, testConfig(t, st, clock)))
	}
	if ms[0].SigningKey().ID != ms[1].SigningKey().ID {
		t.Fatalf("replicas start with keys %s and %s, want one key set", ms[0].SigningKey().ID, ms[1].SigningKey().ID)
	}
	const period, maxAge = DefaultRotationPeriod, DefaultJWKSMaxAge

	t.Run("Rotate", func(t *testing.T) {
		for round := range 5 {
			before, err := sts[0].GetKeySet(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			published := []map[string]bool{jwksKIDSet(t, ms[0]), jwksKIDSet(t, ms[1])}
			clock.Advance(period)
			rotated := make([]bool, len(ms))
			errs := race(ms, func(m *Manager) error {
				var err error
				rotated[slices.Index(ms, m)], err = m.Rotate(t.Context())
				return err
			})
			for i, err := range errs {
				if err != nil {
					t.Fatalf("round %d: replica %d: Rotate() = %v", round, i, err)
				}
			}
			if rotated[0] == rotated[1] {
				t.Errorf("round %d: Rotate() = %v, want exactly one true", round, rotated)
			}
			after, err := sts[0].GetKeySet(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			checkOneRotation(t, round, before, after, published, period)
			if a, b := ms[0].SigningKey().ID, ms[1].SigningKey().ID; a != b {
				t.Errorf("round %d: replicas sign with %s and %s", round, a, b)
			}
		}
	})

	t.Run("RotateNow", func(t *testing.T) {
		for round := range 5 {
			// The next key has been published for longer than a max-age:
			// an early rotation may promote it at once.
			clock.Advance(2 * maxAge)
			before, err := sts[0].GetKeySet(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			published := []map[string]bool{jwksKIDSet(t, ms[0]), jwksKIDSet(t, ms[1])}
			errs := race(ms, func(m *Manager) error { return m.RotateNow(t.Context()) })
			for i, err := range errs {
				if err != nil {
					t.Fatalf("round %d: replica %d: RotateNow() = %v", round, i, err)
				}
			}
			after, err := sts[0].GetKeySet(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			// The winner stores the early schedule, then the rotation.
			before.Version++
			checkOneRotation(t, round, before, after, published, maxAge)
		}
	})

	t.Run("RotateNow before the next key is a max-age old", func(t *testing.T) {
		before := ms[0].SigningKey().ID
		if errs := race(ms, func(m *Manager) error { return m.RotateNow(t.Context()) }); errs[0] != nil || errs[1] != nil {
			t.Fatalf("RotateNow() = %v", errs)
		}
		for i, m := range ms {
			if got := m.SigningKey().ID; got != before {
				t.Errorf("replica %d signs with %s right after RotateNow, want %s until the next key is a max-age old", i, got, before)
			}
		}
	})
}

// TestReplicaFollowsRotationWithinReloadInterval: replica A rotates; replica
// B, whose Run waits at most one ReloadInterval, signs with the new key after
// that one wait, without rotating again. Until then B's tokens verify with
// A's JWKS (the retired key stays published).
func TestReplicaFollowsRotationWithinReloadInterval(t *testing.T) {
	sts := openReplicaStores(t, 2)
	clock := newClock()
	const reload = time.Minute
	cfgA, cfgB := testConfig(t, sts[0], clock), testConfig(t, sts[1], clock)
	cfgA.ReloadInterval, cfgB.ReloadInterval = reload, reload
	a, b := mustNew(t, cfgA), mustNew(t, cfgB)

	ctx, cancel := context.WithCancel(t.Context())
	reqs := fakeTimers(ctx, b)
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v, want nil", err)
		}
	}()

	r := <-reqs
	if r.d > reload {
		t.Fatalf("Run waits %v, want at most the reload interval %v", r.d, reload)
	}
	// Just before the rotation is due, B has read the store and waits for it.
	clock.Advance(DefaultRotationPeriod - reload)
	r.fire <- clock.Now()
	r = <-reqs
	old := b.SigningKey().ID
	clock.Advance(reload)
	if rotated, err := a.Rotate(t.Context()); err != nil || !rotated {
		t.Fatalf("A.Rotate() = %v, %v; want a rotation", rotated, err)
	}
	rotatedSet, err := sts[0].GetKeySet(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	tok, err := b.Sign(t.Context(), map[string]any{"sub": "x"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := a.JWKS()
	if _, _, err := verifyWithJWKS(t, body, tok, clock.Now()); err != nil {
		t.Errorf("a token B signed with %s before it reloaded does not verify with A's JWKS: %v", old, err)
	}

	if r.d > reload {
		t.Fatalf("Run waits %v, want at most the reload interval %v", r.d, reload)
	}
	r.fire <- clock.Now()
	r = <-reqs // B's step is done
	if got, want := b.SigningKey().ID, a.SigningKey().ID; got != want || got == old {
		t.Errorf("after one reload interval B signs with %s, want A's new key %s", got, want)
	}
	after, err := sts[1].GetKeySet(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if after.Version != rotatedSet.Version {
		t.Errorf("Version = %d after B's step, want %d: B rotated again", after.Version, rotatedSet.Version)
	}
	if r.d > reload {
		t.Errorf("Run then waits %v, want at most %v", r.d, reload)
	}
}

// TestReplicasSealPlaintextOnce: two replicas of a new version start at
// once on the plaintext key set an older version stored. Exactly one store
// update seals it, both sign with the same key, and each verifies the
// other's tokens; on bbolt (two managers on one store) and on PostgreSQL
// (two connection pools).
func TestReplicasSealPlaintextOnce(t *testing.T) {
	backends := map[string]func(t *testing.T) []Store{
		"bolt": func(t *testing.T) []Store {
			st, err := bolt.Open(t.Context(), bolt.Options{Path: filepath.Join(t.TempDir(), "keyward.db"), NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = st.Close() })
			return []Store{st, st}
		},
		"postgres": func(t *testing.T) []Store {
			sts := openReplicaStores(t, 2)
			return []Store{sts[0], sts[1]}
		},
	}
	for name, open := range backends {
		t.Run(name, func(t *testing.T) {
			sts, clock := open(t), newClock()
			first := mustNew(t, testConfig(t, sts[0], clock))
			makePlaintext(t, sts[0], derivedKEK(t, testSessionSecret))
			before, err := sts[0].GetKeySet(t.Context())
			if err != nil {
				t.Fatal(err)
			}

			ms := make([]*Manager, len(sts))
			errs := make([]error, len(sts))
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i, st := range sts {
				wg.Go(func() {
					<-start
					ms[i], errs[i] = newLoaded(t, testConfig(t, st, clock))
				})
			}
			close(start)
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("replica %d: New() = %v", i, err)
				}
			}

			after, err := sts[0].GetKeySet(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if after.Version != before.Version+1 {
				t.Errorf("Version = %d, want %d: exactly one update seals the set", after.Version, before.Version+1)
			}
			checkSealedWith(t, after, derivedKEK(t, testSessionSecret))
			if diff := cmp.Diff(kidsOf(before), kidsOf(after)); diff != "" {
				t.Errorf("kids changed by sealing (-before +after):\n%s", diff)
			}
			for i, m := range ms {
				if got, want := m.SigningKey().ID, first.SigningKey().ID; got != want {
					t.Errorf("replica %d signs with %s, want %s", i, got, want)
				}
				tok, err := m.Sign(t.Context(), map[string]any{"sub": "alice", "exp": clock.Now().Add(time.Minute).Unix()}, nil)
				if err != nil {
					t.Fatalf("replica %d: Sign() = %v", i, err)
				}
				if err := verifyWithManager(ms[1-i], tok, clock.Now()); err != nil {
					t.Errorf("token of replica %d, verified by the other: %v", i, err)
				}
			}
		})
	}
}

// TestReplicasAddAlgorithmOnce: two replicas on PostgreSQL restart at once
// with keys.accessTokenAlgorithm added to an existing ES256 set. Exactly one
// update stores exactly one EdDSA key, as next; both replicas sign access
// tokens with the ES256 key until it is due, then with that EdDSA key.
func TestReplicasAddAlgorithmOnce(t *testing.T) {
	sts, clock := openReplicaStores(t, 2), newClock()
	old := mustNew(t, testConfig(t, sts[0], clock))
	before, err := sts[0].GetKeySet(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ms, errs := make([]*Manager, 2), make([]error, 2)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, st := range sts {
		wg.Go(func() {
			<-start
			cfg := testConfig(t, st, clock)
			cfg.AccessTokenAlgorithm = EdDSA
			ms[i], errs[i] = newLoaded(t, cfg)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: New() + Load() = %v", i, err)
		}
	}
	after, err := sts[0].GetKeySet(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if after.Version != before.Version+1 {
		t.Errorf("Version = %d, want %d: exactly one update adds the algorithm", after.Version, before.Version+1)
	}
	added := keyOf(t, after, EdDSA, store.KeyNext)
	if n := len(after.Keys); n != len(before.Keys)+1 {
		t.Errorf("%d keys, want %d (one EdDSA key added)", n, len(before.Keys)+1)
	}
	for i, m := range ms {
		if got, want := m.SigningKeyFor(EdDSA).ID, old.SigningKey().ID; got != want {
			t.Errorf("replica %d signs access tokens with %s before the EdDSA key is due, want the ES256 key %s", i, got, want)
		}
	}
	clock.Advance(DefaultJWKSMaxAge)
	for i, err := range race(ms, func(m *Manager) error { _, err := m.Rotate(t.Context()); return err }) {
		if err != nil {
			t.Fatalf("replica %d: Rotate() = %v", i, err)
		}
	}
	for i, m := range ms {
		if err := m.Reload(t.Context()); err != nil {
			t.Fatal(err)
		}
		if got := m.SigningKeyFor(EdDSA).ID; got != added.ID {
			t.Errorf("replica %d signs access tokens with %s once due, want the EdDSA key %s", i, got, added.ID)
		}
	}
}
