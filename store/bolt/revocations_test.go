package bolt_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/keyward/keyward/store"
	"github.com/keyward/keyward/store/bolt"
)

// deprovisionSteps are the steps of Deprovision's transaction, in order.
var deprovisionSteps = []string{"subject", "sessions", "grants", "revocation", "audit"}

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 6000, time.UTC)

// seedAlice stores a subject alice with two sessions and three grants, and
// one feed entry and one audit event, so that the Seqs are not at 0.
func seedAlice(t *testing.T, s *bolt.Store) {
	t.Helper()
	ctx := t.Context()
	for _, err := range []error{
		s.CreateSubject(ctx, store.Subject{ID: "alice", Email: "alice@example.com", CreatedAt: t0, UpdatedAt: t0}),
		s.CreateSession(ctx, store.Session{ID: "sess-1", Subject: "alice", CreatedAt: t0}),
		s.CreateSession(ctx, store.Session{ID: "sess-2", Subject: "alice", CreatedAt: t0.Add(time.Second)}),
		s.CreateGrant(ctx, store.Grant{Kind: store.GrantAccessToken, Signature: "sig-1", RequestID: "req-1", Subject: "alice", SessionID: "sess-1"}),
		s.CreateGrant(ctx, store.Grant{Kind: store.GrantRefreshToken, Signature: "sig-2", RequestID: "req-1", Subject: "alice", SessionID: "sess-1"}),
		s.CreateGrant(ctx, store.Grant{Kind: store.GrantRefreshToken, Signature: "sig-3", RequestID: "req-2", Subject: "alice"}),
	} {
		if err != nil {
			t.Fatalf("seed = %v", err)
		}
	}
	if _, err := s.AppendRevocation(ctx, store.Revocation{Kind: store.RevokeSession, Subject: "bob", SessionID: "sess-b", NotBefore: t0}); err != nil {
		t.Fatalf("AppendRevocation(seed) = %v", err)
	}
	if _, err := s.AppendAudit(ctx, store.AuditEvent{At: t0, Actor: "test", Action: "seed"}); err != nil {
		t.Fatalf("AppendAudit(seed) = %v", err)
	}
}

// state is everything Deprovision(alice) may change.
type state struct {
	Subject     store.Subject
	Sessions    []store.Session
	Grants      []store.Grant
	ByRequest   int // grants found through the request index (by a no-op update)
	Feed        []store.Revocation
	Highest     int64
	AuditEvents []store.AuditEvent
}

func readState(t *testing.T, s *bolt.Store) state {
	t.Helper()
	ctx := t.Context()
	var st state
	var err error
	if st.Subject, err = s.GetSubject(ctx, "alice"); err != nil {
		t.Fatalf("GetSubject(alice) = %v", err)
	}
	if st.Sessions, err = s.ListSessions(ctx, "alice"); err != nil {
		t.Fatalf("ListSessions(alice) = %v", err)
	}
	for _, k := range []struct {
		kind store.GrantKind
		sig  string
	}{{store.GrantAccessToken, "sig-1"}, {store.GrantRefreshToken, "sig-2"}, {store.GrantRefreshToken, "sig-3"}} {
		g, err := s.GetGrant(ctx, k.kind, k.sig)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("GetGrant(%s) = %v", k.sig, err)
		}
		st.Grants = append(st.Grants, g)
	}
	for _, req := range []string{"req-1", "req-2"} {
		n, err := s.UpdateGrantsByRequest(ctx, req, nil, func(g store.Grant) (store.Grant, error) { return g, nil })
		if err != nil {
			t.Fatalf("UpdateGrantsByRequest(%s) = %v", req, err)
		}
		st.ByRequest += n
	}
	if st.Feed, st.Highest, err = s.ListRevocations(ctx, 0, 0); err != nil {
		t.Fatalf("ListRevocations = %v", err)
	}
	if st.AuditEvents, err = s.ListAudit(ctx, 0); err != nil {
		t.Fatalf("ListAudit = %v", err)
	}
	return st
}

func deprovisionAlice(at time.Time) store.Deprovisioning {
	return store.Deprovisioning{
		Subject:       "alice",
		At:            at,
		FeedExpiresAt: at.Add(time.Hour),
		Audit:         store.AuditEvent{At: at, Actor: "admin-api", Action: "deprovision", Target: "alice", Reason: "left"},
	}
}

// TestDeprovisionAtomic makes Deprovision's transaction fail after each of
// its steps, while other writes share its group commit: nothing of the
// deprovisioning is stored, the other writes are, and a later Deprovision
// gets the Seqs the failed one would have had.
func TestDeprovisionAtomic(t *testing.T) {
	errCrash := errors.New("crash")
	modes := []struct {
		name string
		opts bolt.Options
	}{
		{"group commit", bolt.Options{}},
		{"DB.Batch", bolt.Options{BatchDelay: time.Millisecond}},
		{"unbatched", bolt.Options{BatchDelay: -1}},
	}
	for _, mode := range modes {
		for _, step := range deprovisionSteps {
			t.Run(mode.name+"/after "+step, func(t *testing.T) {
				ctx := t.Context()
				s := open(t, mode.opts)
				seedAlice(t, s)
				before := readState(t, s)

				var mu sync.Mutex
				var reached []string
				bolt.SetFailDeprovisionAfter(s, func(got string) error {
					mu.Lock()
					defer mu.Unlock()
					reached = append(reached, got)
					if got == step {
						return errCrash
					}
					return nil
				})
				var wg sync.WaitGroup
				const others = 8
				errs := make(chan error, others)
				for i := range others { // writes that may share the failing transaction
					wg.Go(func() {
						errs <- s.CreateSession(ctx, store.Session{ID: fmt.Sprintf("other-%d", i), Subject: "bob", CreatedAt: t0})
					})
				}
				_, err := s.Deprovision(ctx, deprovisionAlice(t0.Add(time.Hour)))
				wg.Wait()
				close(errs)
				if !errors.Is(err, errCrash) {
					t.Fatalf("Deprovision(alice) failing after %s = %v, want %v", step, err, errCrash)
				}
				mu.Lock()
				if reached[len(reached)-1] != step {
					t.Errorf("hook reached %v, want it to stop at %s", reached, step)
				}
				mu.Unlock()
				for err := range errs {
					if err != nil {
						t.Errorf("CreateSession alongside the failed Deprovision = %v, want nil", err)
					}
				}
				if d := cmp.Diff(before, readState(t, s)); d != "" {
					t.Errorf("after Deprovision failed after %s, state changed (-before +after):\n%s", step, d)
				}
				bob, err := s.ListSessions(ctx, "bob")
				if err != nil || len(bob) != others {
					t.Errorf("ListSessions(bob) = %d sessions, %v; want %d, nil", len(bob), err, others)
				}

				// Without the hook it goes through, with the Seqs the failed one would have had.
				bolt.SetFailDeprovisionAfter(s, nil)
				res, err := s.Deprovision(ctx, deprovisionAlice(t0.Add(time.Hour)))
				if err != nil {
					t.Fatalf("Deprovision(alice) without the hook = %v", err)
				}
				if res.Revocation.Seq != 2 || res.Sessions != 2 || res.Grants != 3 {
					t.Errorf("Deprovision(alice) = Seq %d, %d sessions, %d grants; want 2, 2, 3",
						res.Revocation.Seq, res.Sessions, res.Grants)
				}
				events, err := s.ListAudit(ctx, 0)
				if err != nil || len(events) != 2 || events[1].Seq != 2 {
					t.Errorf("ListAudit(0) = %+v, %v; want two events, the last with Seq 2", events, err)
				}
			})
		}
	}
}

// crashEnv names the database file for the child process of
// TestDeprovisionCrash.
const crashEnv = "KEYWARD_BOLT_DEPROVISION_CRASH_PATH"

// TestDeprovisionCrash kills a process in the middle of Deprovision's
// transaction, after every step has written, and reopens the file: nothing
// of the deprovisioning is there.
func TestDeprovisionCrash(t *testing.T) {
	if path := os.Getenv(crashEnv); path != "" {
		s, err := bolt.Open(t.Context(), bolt.Options{Path: path})
		if err != nil {
			fmt.Fprintln(os.Stderr, "child: open:", err)
			os.Exit(1)
		}
		bolt.SetFailDeprovisionAfter(s, func(step string) error {
			if step == deprovisionSteps[len(deprovisionSteps)-1] {
				os.Exit(3) // die with the transaction open
			}
			return nil
		})
		_, err = s.Deprovision(t.Context(), deprovisionAlice(t0.Add(time.Hour)))
		fmt.Fprintln(os.Stderr, "child: Deprovision returned:", err)
		os.Exit(1)
	}

	path := filepath.Join(t.TempDir(), "keyward.db")
	s, err := bolt.Open(t.Context(), bolt.Options{Path: path})
	if err != nil {
		t.Fatalf("Open(%q) = %v", path, err)
	}
	seedAlice(t, s)
	before := readState(t, s)
	if err := s.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}

	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestDeprovisionCrash$")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("child = %v, want exit status 3; output:\n%s", err, out)
	}

	s = open(t, bolt.Options{Path: path})
	if d := cmp.Diff(before, readState(t, s)); d != "" {
		t.Errorf("after a crash inside Deprovision, state changed (-before +after):\n%s", d)
	}
}

// TestDeprovisionReopen reads a deprovisioning back after reopening the file,
// and checks that both Seq counters survive it.
func TestDeprovisionReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "keyward.db")
	s, err := bolt.Open(ctx, bolt.Options{Path: path})
	if err != nil {
		t.Fatalf("Open(%q) = %v", path, err)
	}
	seedAlice(t, s)
	d := deprovisionAlice(t0.Add(time.Hour))
	res, err := s.Deprovision(ctx, d)
	if err != nil {
		t.Fatalf("Deprovision(alice) = %v", err)
	}
	before := readState(t, s)
	// Collect every feed entry: the counter must still survive.
	if gc, err := s.GarbageCollect(ctx, t0.Add(24*time.Hour)); err != nil || gc.Revocations != 1 {
		t.Fatalf("GarbageCollect = %+v, %v; want 1 revocation (the seed's has no expiry)", gc, err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}

	s = open(t, bolt.Options{Path: path})
	got := readState(t, s)
	wantSubject := store.Subject{
		ID: "alice", Email: "alice@example.com", Disabled: true,
		NotBefore: d.At, CreatedAt: t0, UpdatedAt: d.At,
		DisabledAt: d.At, DisabledBy: d.Audit.Actor, DisabledReason: d.Audit.Reason,
	}
	if diff := cmp.Diff(wantSubject, got.Subject); diff != "" {
		t.Errorf("GetSubject(alice) after reopening mismatch (-want +got):\n%s", diff)
	}
	if len(got.Sessions) != 0 || len(got.Grants) != 0 || got.ByRequest != 0 {
		t.Errorf("after reopening: %d sessions, %d grants, %d by request; want none",
			len(got.Sessions), len(got.Grants), got.ByRequest)
	}
	if diff := cmp.Diff(before.Feed[:1], got.Feed, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("ListRevocations after GC and reopening mismatch (-want +got):\n%s", diff)
	}
	if got.Highest != 2 || res.Revocation.Seq != 2 {
		t.Errorf("highest after reopening = %d (Deprovision's Seq %d), want 2", got.Highest, res.Revocation.Seq)
	}
	wantEvent := d.Audit
	wantEvent.Seq = 2
	if diff := cmp.Diff(before.AuditEvents, got.AuditEvents); diff != "" || got.AuditEvents[1] != wantEvent {
		t.Errorf("ListAudit after reopening = %+v, want the seed's event and %+v", got.AuditEvents, wantEvent)
	}

	r, err := s.AppendRevocation(ctx, store.Revocation{Kind: store.RevokeSubject, Subject: "carol"})
	if err != nil || r.Seq != 3 {
		t.Errorf("AppendRevocation after reopening = Seq %d, %v; want 3, nil", r.Seq, err)
	}
	e, err := s.AppendAudit(ctx, store.AuditEvent{Action: "reinstate"})
	if err != nil || e.Seq != 3 {
		t.Errorf("AppendAudit after reopening = Seq %d, %v; want 3, nil", e.Seq, err)
	}
}

// TestDeprovisionInvalid: a subject that cannot be a key, or a zero At, is
// refused before anything is written.
func TestDeprovisionInvalid(t *testing.T) {
	s := open(t, bolt.Options{})
	ctx := t.Context()
	tests := []struct {
		name string
		d    store.Deprovisioning
	}{
		{"empty subject", store.Deprovisioning{At: t0}},
		{"NUL in subject", store.Deprovisioning{Subject: "a\x00b", At: t0}},
		{"zero at", store.Deprovisioning{Subject: "alice"}},
	}
	for _, tt := range tests {
		if _, err := s.Deprovision(ctx, tt.d); err == nil {
			t.Errorf("Deprovision(%s) = nil, want an error", tt.name)
		}
	}
	if feed, highest, err := s.ListRevocations(ctx, 0, 0); err != nil || len(feed) != 0 || highest != 0 {
		t.Errorf("ListRevocations after refused Deprovisions = %d entries, highest %d, %v; want none", len(feed), highest, err)
	}
	if _, err := s.GetSubject(ctx, "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetSubject(alice) after a refused Deprovision = %v, want ErrNotFound", err)
	}
}

// TestListAuditAll: in this backend a limit <= 0 lists every event.
func TestListAuditAll(t *testing.T) {
	s := open(t, bolt.Options{})
	ctx := t.Context()
	for i := range 3 {
		if _, err := s.AppendAudit(ctx, store.AuditEvent{Action: fmt.Sprint(i)}); err != nil {
			t.Fatalf("AppendAudit(%d) = %v", i, err)
		}
	}
	for _, limit := range []int{0, -1} {
		events, err := s.ListAudit(ctx, limit)
		if err != nil || len(events) != 3 || events[0].Seq != 1 || events[2].Seq != 3 {
			t.Errorf("ListAudit(%d) = %+v, %v; want Seqs 1..3", limit, events, err)
		}
	}
}
