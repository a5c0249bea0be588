package storetest

import (
	"cmp"
	"context"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/keyward/keyward/store"
)

func revocation(kind store.RevocationKind, subject, sessionID string, notBefore time.Time) store.Revocation {
	return store.Revocation{
		Kind:      kind,
		Subject:   subject,
		SessionID: sessionID,
		NotBefore: notBefore,
		ExpiresAt: notBefore.Add(time.Hour),
		CreatedAt: notBefore,
	}
}

func auditEvent(action, target string, at time.Time) store.AuditEvent {
	return store.AuditEvent{At: at, Actor: "admin-api", Action: action, Target: target, Reason: "reason for " + target}
}

func deprovisioning(subject string, at time.Time) store.Deprovisioning {
	return store.Deprovisioning{
		Subject:       subject,
		At:            at,
		FeedExpiresAt: at.Add(time.Hour),
		Audit:         auditEvent("deprovision", subject, at),
	}
}

// feedEntry is the entry Deprovision(d) appends, with seq.
func feedEntry(d store.Deprovisioning, seq int64) store.Revocation {
	return store.Revocation{
		Seq:       seq,
		Kind:      store.RevokeSubject,
		Subject:   d.Subject,
		NotBefore: d.At,
		ExpiresAt: d.FeedExpiresAt,
		CreatedAt: d.At,
	}
}

// withSeq returns e as stored under seq.
func withSeq(e store.AuditEvent, seq int64) store.AuditEvent {
	e.Seq = seq
	return e
}

// wantFeed checks ListRevocations(after, limit).
func wantFeed(t *testing.T, s store.Store, after int64, limit int, want []store.Revocation, wantHighest int64) {
	t.Helper()
	call := fmt.Sprintf("ListRevocations(%d, %d)", after, limit)
	got, highest, err := s.ListRevocations(t.Context(), after, limit)
	must(t, call, err)
	diff(t, call, want, got, cmpopts.EquateEmpty())
	if highest != wantHighest {
		t.Errorf("%s highest = %d, want %d", call, highest, wantHighest)
	}
}

// wantAudit checks ListAudit(limit).
func wantAudit(t *testing.T, s store.Store, limit int, want []store.AuditEvent) {
	t.Helper()
	call := fmt.Sprintf("ListAudit(%d)", limit)
	got, err := s.ListAudit(t.Context(), limit)
	must(t, call, err)
	diff(t, call, want, got, cmpopts.EquateEmpty())
}

// testDeprovision checks Deprovision end to end: the subject is disabled with
// the new NotBefore and its other fields kept, exactly its sessions and
// grants are gone (with their index entries), and a feed entry and an audit
// event are appended.
func testDeprovision(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice, bob := subject("alice"), subject("bob")
	alice.NotBefore = t0().Add(-time.Hour)
	must(t, "CreateSubject(alice)", s.CreateSubject(ctx, alice))
	must(t, "CreateSubject(bob)", s.CreateSubject(ctx, bob))
	for _, x := range []store.Session{
		session("sess-a1", "alice", t0()), session("sess-a2", "alice", t0().Add(time.Minute)),
		session("sess-b1", "bob", t0()),
	} {
		must(t, "CreateSession("+x.ID+")", s.CreateSession(ctx, x))
	}
	aliceGrants := []store.Grant{
		grant(store.GrantAuthorizeCode, "sig-a1", "req-a1", "alice", "sess-a1"),
		grant(store.GrantOIDC, "sig-a1", "req-a1", "alice", "sess-a1"),
		grant(store.GrantAccessToken, "sig-a2", "req-a1", "alice", "sess-a1"),
		grant(store.GrantRefreshToken, "sig-a3", "req-a1", "alice", "sess-a1"),
		grant(store.GrantRefreshToken, "sig-a4", "req-a2", "alice", ""), // no session
		grant(store.GrantSessionClient, "sess-a2/client-2", "", "alice", "sess-a2"),
		grant(store.GrantAccessToken, "sig-a5", "req-a3", "alice", "sess-a2"),
		grant(store.GrantAccessToken, "sig-a6", "req-a4", "alice", ""), // no session
		grant(store.GrantOIDC, "sig-a7", "req-a5", "alice", "sess-a3"), // its session gone
	}
	aliceGrants[5].ClientID = "client-2"
	aliceGrants[6].ClientID = "client-0"
	aliceGrants[7].ClientID = "client-3"
	aliceGrants[8].ClientID = "" // counted, not listed
	bobGrants := []store.Grant{
		grant(store.GrantAccessToken, "sig-b1", "req-b1", "bob", "sess-b1"),
		grant(store.GrantRefreshToken, "sig-b2", "req-b1", "bob", "sess-b1"),
	}
	for _, g := range slices.Concat(aliceGrants, bobGrants) {
		must(t, "CreateGrant("+g.Signature+")", s.CreateGrant(ctx, g))
	}
	// An entry before the deprovisioning: the store continues its Seq.
	first, err := s.AppendRevocation(ctx, revocation(store.RevokeSession, "bob", "sess-b0", t0()))
	must(t, "AppendRevocation(first)", err)
	firstEvent, err := s.AppendAudit(ctx, auditEvent("reinstate", "bob", t0()))
	must(t, "AppendAudit(first)", err)

	at := t0().Add(2 * time.Hour)
	d := deprovisioning("alice", at)
	res, err := s.Deprovision(ctx, d)
	must(t, "Deprovision(alice)", err)
	diff(t, "Deprovision(alice)", store.DeprovisionResult{
		Revocation: feedEntry(d, 2),
		Sessions:   2,
		Grants:     len(aliceGrants),
		// Per session, the distinct clients, sorted; not client-3, whose
		// grant has no session, nor sess-a3, whose grant has no client.
		SessionClients: map[string][]string{
			"sess-a1": {"client-1"},
			"sess-a2": {"client-0", "client-2"},
		},
	}, res)

	wantAlice := alice
	wantAlice.Disabled, wantAlice.NotBefore, wantAlice.UpdatedAt = true, at, at
	// Why, when and by whom, from the audit event.
	wantAlice.DisabledAt, wantAlice.DisabledBy, wantAlice.DisabledReason = at, d.Audit.Actor, d.Audit.Reason
	got, err := s.GetSubject(ctx, "alice")
	must(t, "GetSubject(alice)", err)
	diff(t, "GetSubject(alice) after Deprovision", wantAlice, got)
	got, err = s.GetSubject(ctx, "bob")
	must(t, "GetSubject(bob)", err)
	diff(t, "GetSubject(bob) after Deprovision(alice)", bob, got)

	// alice's sessions and grants are gone, from every index.
	for _, id := range []string{"sess-a1", "sess-a2"} {
		_, err := s.GetSession(ctx, id)
		wantErr(t, "GetSession("+id+") after Deprovision", err, store.ErrNotFound)
	}
	list, err := s.ListSessions(ctx, "alice")
	must(t, "ListSessions(alice)", err)
	diff(t, "ListSessions(alice) after Deprovision", []store.Session(nil), list, cmpopts.EquateEmpty())
	for _, g := range aliceGrants {
		_, err := s.GetGrant(ctx, g.Kind, g.Signature)
		wantErr(t, "GetGrant("+g.Signature+") after Deprovision", err, store.ErrNotFound)
	}
	n, err := s.UpdateGrantsByRequest(ctx, "req-a1", nil, neverCalled[store.Grant](t, "UpdateGrantsByRequest(req-a1)"))
	wantCount(t, "UpdateGrantsByRequest(req-a1) after Deprovision", n, err, 0)
	n, err = s.DeleteGrantsBySubject(ctx, "alice")
	wantCount(t, "DeleteGrantsBySubject(alice) after Deprovision", n, err, 0)
	// The keys are free again.
	must(t, "CreateSession(sess-a1) after Deprovision", s.CreateSession(ctx, session("sess-a1", "alice", t0())))
	must(t, "CreateGrant(sig-a1) after Deprovision", s.CreateGrant(ctx, aliceGrants[0]))
	must(t, "DeleteSession(sess-a1)", s.DeleteSession(ctx, "sess-a1"))
	must(t, "DeleteGrant(sig-a1)", s.DeleteGrant(ctx, aliceGrants[0].Kind, aliceGrants[0].Signature))

	// bob's are untouched.
	list, err = s.ListSessions(ctx, "bob")
	must(t, "ListSessions(bob)", err)
	diff(t, "ListSessions(bob) after Deprovision(alice)", []store.Session{session("sess-b1", "bob", t0())}, list)
	for _, g := range bobGrants {
		got, err := s.GetGrant(ctx, g.Kind, g.Signature)
		must(t, "GetGrant("+g.Signature+")", err)
		diff(t, "GetGrant("+g.Signature+") after Deprovision(alice)", g, got)
	}

	wantFeed(t, s, 0, 0, []store.Revocation{first, feedEntry(d, 2)}, 2)
	wantAudit(t, s, 100, []store.AuditEvent{firstEvent, withSeq(d.Audit, 2)})

	// An unknown subject is created, disabled. CreatedAt is the backend's
	// choice.
	dc := deprovisioning("carol", at.Add(time.Minute))
	res, err = s.Deprovision(ctx, dc)
	must(t, "Deprovision(carol)", err)
	diff(t, "Deprovision(carol)", store.DeprovisionResult{Revocation: feedEntry(dc, 3)}, res)
	got, err = s.GetSubject(ctx, "carol")
	must(t, "GetSubject(carol) after Deprovision", err)
	diff(t, "GetSubject(carol) after Deprovision",
		store.Subject{ID: "carol", Disabled: true, NotBefore: dc.At, UpdatedAt: dc.At,
			DisabledAt: dc.At, DisabledBy: dc.Audit.Actor, DisabledReason: dc.Audit.Reason}, got,
		cmpopts.IgnoreFields(store.Subject{}, "CreatedAt"))

	// Deprovisioning again moves NotBefore and appends again.
	d2 := deprovisioning("alice", at.Add(time.Hour))
	d2.Audit.Reason = "again"
	res, err = s.Deprovision(ctx, d2)
	must(t, "Deprovision(alice) again", err)
	diff(t, "Deprovision(alice) again", store.DeprovisionResult{Revocation: feedEntry(d2, 4)}, res)
	wantAlice.NotBefore, wantAlice.UpdatedAt = d2.At, d2.At
	wantAlice.DisabledAt, wantAlice.DisabledReason = d2.At, "again"
	got, err = s.GetSubject(ctx, "alice")
	must(t, "GetSubject(alice)", err)
	diff(t, "GetSubject(alice) after a second Deprovision", wantAlice, got)

	wantFeed(t, s, 0, 0, []store.Revocation{first, feedEntry(d, 2), feedEntry(dc, 3), feedEntry(d2, 4)}, 4)
	wantAudit(t, s, 100, []store.AuditEvent{firstEvent, withSeq(d.Audit, 2), withSeq(dc.Audit, 3), withSeq(d2.Audit, 4)})
}

// testRevocationFeed checks AppendRevocation's Seq and ListRevocations'
// after, limit and highest, also once entries are collected.
func testRevocationFeed(t *testing.T, s store.Store) {
	ctx := t.Context()
	wantFeed(t, s, 0, 0, nil, 0)

	var all []store.Revocation
	for i := range 5 {
		r := revocation(store.RevokeSession, fmt.Sprintf("sub-%d", i), fmt.Sprintf("sess-%d", i), t0().Add(time.Duration(i)*time.Minute))
		if i%2 == 1 {
			r.Kind, r.SessionID = store.RevokeSubject, ""
		}
		in := r
		in.Seq = 99 // ignored: the store assigns it
		got, err := s.AppendRevocation(ctx, in)
		must(t, "AppendRevocation("+r.Subject+")", err)
		r.Seq = int64(i + 1)
		diff(t, "AppendRevocation("+r.Subject+")", r, got)
		all = append(all, r)
	}
	tests := []struct {
		after int64
		limit int
		want  []store.Revocation
	}{
		{0, 0, all},
		{0, -1, all},
		{-7, 0, all},
		{0, 2, all[:2]},
		{2, 0, all[2:]},
		{2, 2, all[2:4]},
		{4, 10, all[4:]},
		{5, 0, nil},
		{9, 1, nil},
	}
	for _, tt := range tests {
		wantFeed(t, s, tt.after, tt.limit, tt.want, 5)
	}

	// Collecting entries leaves gaps; highest stays, and Seq is never reused.
	now := all[2].ExpiresAt
	_, err := s.AppendRevocation(ctx, store.Revocation{Kind: store.RevokeSubject, Subject: "never-expires"})
	must(t, "AppendRevocation(never-expires)", err)
	res, err := s.GarbageCollect(ctx, now)
	must(t, "GarbageCollect", err)
	diff(t, "GarbageCollect", store.GCResult{Revocations: 3}, res)
	forever := store.Revocation{Seq: 6, Kind: store.RevokeSubject, Subject: "never-expires"}
	wantFeed(t, s, 0, 0, []store.Revocation{all[3], all[4], forever}, 6)
	wantFeed(t, s, 1, 1, []store.Revocation{all[3]}, 6)
	wantFeed(t, s, 4, 0, []store.Revocation{all[4], forever}, 6)

	res, err = s.GarbageCollect(ctx, t0().Add(24*time.Hour))
	must(t, "GarbageCollect(everything)", err)
	diff(t, "GarbageCollect(everything)", store.GCResult{Revocations: 2}, res)
	wantFeed(t, s, 0, 0, []store.Revocation{forever}, 6)
	wantFeed(t, s, 6, 0, nil, 6)

	got, err := s.AppendRevocation(ctx, all[0])
	must(t, "AppendRevocation after GC", err)
	if got.Seq != 7 {
		t.Errorf("AppendRevocation after GC: Seq = %d, want 7", got.Seq)
	}
}

// testGarbageCollectRevocations checks which feed entries GarbageCollect
// removes at an injected now, and that it leaves deprovisioned subjects and
// audit events alone.
func testGarbageCollectRevocations(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := t0().Add(24 * time.Hour)
	tests := gcBoundaries(now)
	var kept []store.Revocation
	for _, tt := range tests {
		r := revocation(store.RevokeSession, "alice", "sess-"+tt.name, t0())
		r.ExpiresAt = tt.expiresAt
		got, err := s.AppendRevocation(ctx, r)
		must(t, "AppendRevocation("+tt.name+")", err)
		// A revoked access token leaves the feed when it expires.
		res, err := s.Apply(ctx, store.Batch{Revocations: []store.Revocation{{
			Kind: store.RevokeToken, Subject: "alice", TokenID: "jti-" + tt.name,
			NotBefore: t0(), ExpiresAt: tt.expiresAt, CreatedAt: t0(),
		}}})
		must(t, "Apply(token revocation "+tt.name+")", err)
		if !tt.collected {
			kept = append(kept, got, res.Revocations[0])
		}
	}
	d := deprovisioning("bob", t0())
	d.FeedExpiresAt = now.Add(-time.Hour)
	_, err := s.Deprovision(ctx, d)
	must(t, "Deprovision(bob)", err)

	// The instant counts, not the zone it is written in.
	res, err := s.GarbageCollect(ctx, now.In(time.FixedZone("West", -7*3600)))
	must(t, "GarbageCollect(now)", err)
	diff(t, "GarbageCollect(now)", store.GCResult{Revocations: 5}, res)
	wantFeed(t, s, 0, 0, kept, 9)

	sub, err := s.GetSubject(ctx, "bob")
	must(t, "GetSubject(bob) after GC", err)
	if !sub.Disabled || !sub.NotBefore.Equal(d.At) {
		t.Errorf("GetSubject(bob) after GC = Disabled %v, NotBefore %v; want true, %v", sub.Disabled, sub.NotBefore, d.At)
	}
	wantAudit(t, s, 100, []store.AuditEvent{withSeq(d.Audit, 1)})

	res, err = s.GarbageCollect(ctx, now)
	must(t, "GarbageCollect(now) again", err)
	if !res.IsEmpty() {
		t.Errorf("GarbageCollect(now) again = %+v, want nothing removed", res)
	}
}

// testConcurrentAppends appends feed entries (directly and through
// Deprovision) and audit events from many goroutines at once: every Seq is
// assigned once, 1..n without gaps, to the entry that was appended.
func testConcurrentAppends(t *testing.T, s store.Store) {
	const n = 20 // half AppendRevocation, half Deprovision
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		feed   []store.Revocation
		events []store.AuditEvent
		errs   []error
	)
	record := func(r store.Revocation, e store.AuditEvent, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, err)
			return
		}
		if r.Kind != "" {
			feed = append(feed, r)
		}
		if e.Action != "" {
			events = append(events, e)
		}
	}
	for i := range n / 2 {
		wg.Go(func() {
			r, err := s.AppendRevocation(ctx, revocation(store.RevokeSession, "alice", fmt.Sprintf("sess-%02d", i), t0()))
			record(r, store.AuditEvent{}, err)
		})
		wg.Go(func() {
			d := deprovisioning(fmt.Sprintf("sub-%02d", i), t0())
			res, err := s.Deprovision(ctx, d)
			record(res.Revocation, store.AuditEvent{}, err)
		})
		wg.Go(func() {
			e, err := s.AppendAudit(ctx, auditEvent("keys.rotate", fmt.Sprintf("kid-%02d", i), t0()))
			record(store.Revocation{}, e, err)
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatalf("concurrent appends did not finish: %v", ctx.Err())
	}
	for _, err := range errs {
		must(t, "concurrent append", err)
	}

	// What the callers were told is what the feed holds.
	slices.SortFunc(feed, func(a, b store.Revocation) int { return cmp.Compare(a.Seq, b.Seq) })
	for i, r := range feed {
		if r.Seq != int64(i+1) {
			t.Fatalf("feed Seqs assigned to concurrent appends: entry %d has Seq %d, want %d (Seqs 1..%d, each once)", i, r.Seq, i+1, n)
		}
	}
	if len(feed) != n {
		t.Fatalf("concurrent appends returned %d feed entries, want %d", len(feed), n)
	}
	wantFeed(t, s, 0, 0, feed, n)

	// The audit counter is separate: Deprovision's events and AppendAudit's
	// share it, 1..n.
	got, err := s.ListAudit(ctx, 100)
	must(t, "ListAudit(100)", err)
	if len(got) != n {
		t.Fatalf("ListAudit(100) after concurrent appends = %d events, want %d", len(got), n)
	}
	for i, e := range got {
		if e.Seq != int64(i+1) {
			t.Errorf("ListAudit(100)[%d].Seq = %d, want %d", i, e.Seq, i+1)
		}
	}
	for _, e := range events {
		if e.Seq < 1 || e.Seq > n {
			t.Errorf("AppendAudit returned Seq %d, want 1..%d", e.Seq, n)
			continue
		}
		diff(t, fmt.Sprintf("ListAudit(100) Seq %d", e.Seq), e, got[e.Seq-1])
	}
}

// testAudit checks AppendAudit's Seq and that ListAudit returns the newest
// events, oldest first.
func testAudit(t *testing.T, s store.Store) {
	ctx := t.Context()
	wantAudit(t, s, 10, nil)

	var all []store.AuditEvent
	for i := range 5 {
		e := auditEvent("deprovision", fmt.Sprintf("sub-%d", i), t0().Add(time.Duration(i)*time.Second))
		in := e
		in.Seq = 42 // ignored: the store assigns it
		got, err := s.AppendAudit(ctx, in)
		must(t, "AppendAudit("+e.Target+")", err)
		e.Seq = int64(i + 1)
		diff(t, "AppendAudit("+e.Target+")", e, got)
		all = append(all, e)
	}
	wantAudit(t, s, 1, all[4:])
	wantAudit(t, s, 3, all[2:])
	wantAudit(t, s, 5, all)
	wantAudit(t, s, 50, all)
}

// testRevocationTimes writes every time of Deprovision, AppendRevocation and
// AppendAudit in a non-UTC zone with nanoseconds, and expects them back, and
// in the results, in UTC truncated to microseconds.
func testRevocationTimes(t *testing.T, s store.Store) {
	ctx := t.Context()
	zone := time.FixedZone("X", 5*3600+1800)
	local := time.Date(2031, 1, 1, 5, 6, 7, 123456789, zone)
	utc := time.Date(2030, 12, 31, 23, 36, 7, 123456000, time.UTC) // local, normalised

	res, err := s.Deprovision(ctx, deprovisioning("alice", local))
	must(t, "Deprovision(alice)", err)
	checkUTCMicro(t, "DeprovisionResult", reflect.ValueOf(res))
	diff(t, "Deprovision(alice)", store.DeprovisionResult{Revocation: feedEntry(deprovisioning("alice", utc), 1)}, res)

	r := revocation(store.RevokeSession, "bob", "sess-1", local)
	got, err := s.AppendRevocation(ctx, r)
	must(t, "AppendRevocation(bob)", err)
	checkUTCMicro(t, "AppendRevocation result", reflect.ValueOf(got))
	wantR := revocation(store.RevokeSession, "bob", "sess-1", utc)
	wantR.Seq = 2
	diff(t, "AppendRevocation(bob)", wantR, got)

	tokenR := store.Revocation{Kind: store.RevokeToken, Subject: "bob", TokenID: "jti-1",
		NotBefore: local, ExpiresAt: local.Add(5 * time.Minute), CreatedAt: local}
	gotToken, err := s.AppendRevocation(ctx, tokenR)
	must(t, "AppendRevocation(token jti-1)", err)
	checkUTCMicro(t, "AppendRevocation(token) result", reflect.ValueOf(gotToken))
	wantToken := store.Revocation{Seq: 3, Kind: store.RevokeToken, Subject: "bob", TokenID: "jti-1",
		NotBefore: utc, ExpiresAt: utc.Add(5 * time.Minute), CreatedAt: utc}
	diff(t, "AppendRevocation(token jti-1)", wantToken, gotToken)

	e, err := s.AppendAudit(ctx, auditEvent("reinstate", "bob", local))
	must(t, "AppendAudit(bob)", err)
	checkUTCMicro(t, "AppendAudit result", reflect.ValueOf(e))
	diff(t, "AppendAudit(bob)", withSeq(auditEvent("reinstate", "bob", utc), 2), e)

	sub, err := s.GetSubject(ctx, "alice")
	must(t, "GetSubject(alice)", err)
	checkUTCMicro(t, "Subject", reflect.ValueOf(sub))
	if !sub.NotBefore.Equal(utc) || !sub.UpdatedAt.Equal(utc) {
		t.Errorf("GetSubject(alice) = NotBefore %v, UpdatedAt %v; want %v", sub.NotBefore, sub.UpdatedAt, utc)
	}
	feed, _, err := s.ListRevocations(ctx, 0, 0)
	must(t, "ListRevocations(0, 0)", err)
	checkUTCMicro(t, "ListRevocations", reflect.ValueOf(feed))
	diff(t, "ListRevocations(0, 0)", []store.Revocation{feedEntry(deprovisioning("alice", utc), 1), wantR, wantToken}, feed)
	events, err := s.ListAudit(ctx, 100)
	must(t, "ListAudit(100)", err)
	checkUTCMicro(t, "ListAudit", reflect.ValueOf(events))
	diff(t, "ListAudit(100)", []store.AuditEvent{
		withSeq(auditEvent("deprovision", "alice", utc), 1),
		withSeq(auditEvent("reinstate", "bob", utc), 2),
	}, events)
}
