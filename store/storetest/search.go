package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/keyward/keyward/store"
)

// searchIDs runs SearchSubjects and returns the IDs of the page and Next.
func searchIDs(t *testing.T, s store.Store, q store.SubjectQuery) ([]string, string) {
	t.Helper()
	page, err := s.SearchSubjects(t.Context(), q)
	must(t, fmt.Sprintf("SearchSubjects(%+v)", q), err)
	ids := []string{}
	for _, x := range page.Subjects {
		ids = append(ids, x.ID)
	}
	return ids, page.Next
}

// testSearchSubjects checks the prefix match on each field, case folding,
// the order by ID, that a subject matching on several fields is listed
// once, and pagination by Next.
func testSearchSubjects(t *testing.T, s store.Store) {
	ctx := t.Context()
	people := []store.Subject{
		{ID: "u-001", UpstreamID: "corp", UpstreamSubject: "00uAlice", Email: "Alice@Example.com", Name: "Alice Liddell"},
		{ID: "u-002", UpstreamID: "corp", UpstreamSubject: "00uBob", Email: "bob@example.com", Name: "Bob Builder"},
		{ID: "u-003", UpstreamID: "partner", UpstreamSubject: "p-carol", Email: "carol@partner.test", Name: "Carol Alvarez"},
		{ID: "alias-9", UpstreamID: "corp", UpstreamSubject: "00uDan", Email: "dan@example.com", Name: "Dan"},
		{ID: "u-004", UpstreamID: "partner", UpstreamSubject: "p-erin", Email: "", Name: ""},
	}
	for _, x := range people {
		x.CreatedAt = t0()
		must(t, "CreateSubject("+x.ID+")", s.CreateSubject(ctx, x))
	}
	tests := []struct {
		name   string
		prefix string
		want   []string
	}{
		{"email, folded", "ALICE@", []string{"u-001"}},
		{"name", "carol a", []string{"u-003"}},
		{"id", "alias", []string{"alias-9"}},
		{"upstream subject", "00u", []string{"alias-9", "u-001", "u-002"}},
		{"upstream id", "partner", []string{"u-003", "u-004"}},
		{"several fields of one subject, listed once", "al", []string{"alias-9", "u-001"}},
		{"no match", "zed", []string{}},
		{"prefix only, not infix", "example", []string{}},
		{"empty: every subject by ID", "", []string{"alias-9", "u-001", "u-002", "u-003", "u-004"}},
		{"LIKE wildcards are literal", "%", []string{}},
		{"underscore is literal", "u_0", []string{}},
	}
	for _, tt := range tests {
		got, next := searchIDs(t, s, store.SubjectQuery{Prefix: tt.prefix, Limit: 10})
		diff(t, "SearchSubjects("+tt.name+")", tt.want, got)
		if next != "" {
			t.Errorf("SearchSubjects(%s).Next = %q, want \"\" (one page)", tt.name, next)
		}
	}

	// The whole record comes back.
	page, err := s.SearchSubjects(ctx, store.SubjectQuery{Prefix: "bob@", Limit: 10})
	must(t, "SearchSubjects(bob@)", err)
	want := people[1]
	want.CreatedAt = t0()
	diff(t, "SearchSubjects(bob@).Subjects", []store.Subject{want}, page.Subjects)

	// Pages of two: with and without a prefix.
	for _, prefix := range []string{"", "u-"} {
		var all []string
		q := store.SubjectQuery{Prefix: prefix, Limit: 2}
		for pages := 0; ; pages++ {
			if pages > 5 {
				t.Fatalf("SearchSubjects(%q) pagination does not end", prefix)
			}
			ids, next := searchIDs(t, s, q)
			if len(ids) > 2 {
				t.Fatalf("SearchSubjects(%+v) returned %d, want at most 2", q, len(ids))
			}
			all = append(all, ids...)
			if next == "" {
				break
			}
			if next != ids[len(ids)-1] {
				t.Errorf("SearchSubjects(%+v).Next = %q, want the last ID %q", q, next, ids[len(ids)-1])
			}
			q.After = next
		}
		wantAll := []string{"u-001", "u-002", "u-003", "u-004"}
		if prefix == "" {
			wantAll = append([]string{"alias-9"}, wantAll...)
		}
		diff(t, fmt.Sprintf("SearchSubjects(%q) over pages", prefix), wantAll, all)
	}
}

// testSearchFollowsUpdates checks that the search sees every way a subject
// is written: an update moves it from its old values to its new ones, an
// upsert creates it, Deprovision of an unknown subject creates it.
func testSearchFollowsUpdates(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, "CreateSubject(alice)", s.CreateSubject(ctx, subject("alice")))
	must(t, "UpdateSubject(alice)", s.UpdateSubject(ctx, "alice", func(x store.Subject) (store.Subject, error) {
		x.Email = "alice.new@example.org"
		return x, nil
	}))
	got, _ := searchIDs(t, s, store.SubjectQuery{Prefix: "alice@", Limit: 10})
	diff(t, "SearchSubjects(old email)", []string{}, got)
	got, _ = searchIDs(t, s, store.SubjectQuery{Prefix: "alice.new@", Limit: 10})
	diff(t, "SearchSubjects(new email)", []string{"alice"}, got)

	_, err := s.UpsertSubject(ctx, "bob", func() store.Subject { return subject("bob") }, neverCalled[store.Subject](t, "UpsertSubject(bob)"))
	must(t, "UpsertSubject(bob)", err)
	got, _ = searchIDs(t, s, store.SubjectQuery{Prefix: "Name of B", Limit: 10})
	diff(t, "SearchSubjects(upserted)", []string{"bob"}, got)

	_, err = s.Deprovision(ctx, deprovisioning("carol", t0()))
	must(t, "Deprovision(carol)", err)
	got, _ = searchIDs(t, s, store.SubjectQuery{Prefix: "car", Limit: 10})
	diff(t, "SearchSubjects(created by Deprovision)", []string{"carol"}, got)

	// Deprovisioning alice keeps her findable by her fields.
	_, err = s.Deprovision(ctx, deprovisioning("alice", t0()))
	must(t, "Deprovision(alice)", err)
	got, _ = searchIDs(t, s, store.SubjectQuery{Prefix: "ALICE.NEW", Limit: 10})
	diff(t, "SearchSubjects(deprovisioned)", []string{"alice"}, got)
}

// testQueryAudit checks each filter, their combination, newest-first order
// and pagination by Next.
func testQueryAudit(t *testing.T, s store.Store) {
	ctx := t.Context()
	type ev struct{ actor, action, target string }
	evs := []ev{
		{"admin-api", "deprovision", "alice"},     // 1
		{"console:carol", "session.end", "bob"},   // 2
		{"admin-api", "reinstate", "alice"},       // 3
		{"console:carol", "deprovision", "bob"},   // 4
		{"scim", "deprovision", "alice"},          // 5
		{"console:carol", "keys.rotate", "kid-1"}, // 6
	}
	for i, e := range evs {
		_, err := s.AppendAudit(ctx, store.AuditEvent{
			At: t0().Add(time.Duration(i) * time.Minute), Actor: e.actor, Action: e.action, Target: e.target, Reason: "r",
		})
		must(t, "AppendAudit", err)
	}
	seqs := func(q store.AuditQuery) ([]int64, int64) {
		t.Helper()
		page, err := s.QueryAudit(ctx, q)
		must(t, fmt.Sprintf("QueryAudit(%+v)", q), err)
		out := []int64{}
		for _, e := range page.Events {
			out = append(out, e.Seq)
		}
		return out, page.Next
	}
	tests := []struct {
		name string
		q    store.AuditQuery
		want []int64
	}{
		{"all, newest first", store.AuditQuery{}, []int64{6, 5, 4, 3, 2, 1}},
		{"by person", store.AuditQuery{Target: "alice"}, []int64{5, 3, 1}},
		{"by action", store.AuditQuery{Action: "deprovision"}, []int64{5, 4, 1}},
		{"by actor", store.AuditQuery{Actor: "console:carol"}, []int64{6, 4, 2}},
		{"person and action", store.AuditQuery{Target: "bob", Action: "deprovision"}, []int64{4}},
		{"since, inclusive", store.AuditQuery{Since: t0().Add(4 * time.Minute)}, []int64{6, 5}},
		{"until, exclusive", store.AuditQuery{Until: t0().Add(2 * time.Minute)}, []int64{2, 1}},
		{"window and person", store.AuditQuery{Target: "alice", Since: t0().Add(time.Minute), Until: t0().Add(5 * time.Minute)}, []int64{5, 3}},
		{"before", store.AuditQuery{Before: 4}, []int64{3, 2, 1}},
		{"before, by person", store.AuditQuery{Before: 5, Target: "alice"}, []int64{3, 1}},
		{"unknown person", store.AuditQuery{Target: "zed"}, []int64{}},
		{"a target prefix is not the target", store.AuditQuery{Target: "ali"}, []int64{}},
	}
	for _, tt := range tests {
		got, next := seqs(tt.q)
		diff(t, "QueryAudit("+tt.name+")", tt.want, got)
		if next != 0 {
			t.Errorf("QueryAudit(%s).Next = %d, want 0 (one page)", tt.name, next)
		}
	}

	// Pages of two, by person and overall.
	for _, q := range []store.AuditQuery{{Limit: 2}, {Target: "alice", Limit: 2}, {Action: "deprovision", Limit: 2}} {
		want, _ := seqs(store.AuditQuery{Target: q.Target, Action: q.Action})
		var all []int64
		for pages := 0; ; pages++ {
			if pages > 5 {
				t.Fatalf("QueryAudit(%+v) pagination does not end", q)
			}
			got, next := seqs(q)
			all = append(all, got...)
			if next == 0 {
				break
			}
			if next != got[len(got)-1] {
				t.Errorf("QueryAudit(%+v).Next = %d, want the last Seq %d", q, next, got[len(got)-1])
			}
			q.Before = next
		}
		diff(t, fmt.Sprintf("QueryAudit(%+v) over pages", q), want, all)
	}

	// Whole records come back, times in UTC.
	page, err := s.QueryAudit(ctx, store.AuditQuery{Target: "kid-1"})
	must(t, "QueryAudit(kid-1)", err)
	diff(t, "QueryAudit(kid-1)", []store.AuditEvent{{Seq: 6, At: t0().Add(5 * time.Minute), Actor: "console:carol",
		Action: "keys.rotate", Target: "kid-1", Reason: "r"}}, page.Events)

	// Person: the events whose target is the person and those about their
	// sessions (Subject), through the index, with the other filters.
	for i, e := range []store.AuditEvent{
		{Actor: "console:carol", Action: "session.revoke", Target: "sess-a1", Subject: "alice"}, // 7
		{Actor: "admin-api", Action: "session.revoke", Target: "sess-b1", Subject: "bob"},       // 8
		{Actor: "sign-in", Action: "session.revoke", Target: "sess-a2", Subject: "alice"},       // 9
	} {
		e.At, e.Reason = t0().Add(time.Duration(6+i)*time.Minute), "r"
		_, err := s.AppendAudit(ctx, e)
		must(t, "AppendAudit(session.revoke)", err)
	}
	for _, tt := range []struct {
		name string
		q    store.AuditQuery
		want []int64
	}{
		{"person: target or subject", store.AuditQuery{Person: "alice"}, []int64{9, 7, 5, 3, 1}},
		{"person bob", store.AuditQuery{Person: "bob"}, []int64{8, 4, 2}},
		{"person and action", store.AuditQuery{Person: "alice", Action: "session.revoke"}, []int64{9, 7}},
		{"person and actor", store.AuditQuery{Person: "alice", Actor: "console:carol"}, []int64{7}},
		{"person, before", store.AuditQuery{Person: "alice", Before: 7}, []int64{5, 3, 1}},
		{"target is not subject", store.AuditQuery{Target: "alice"}, []int64{5, 3, 1}},
		{"a session's target", store.AuditQuery{Target: "sess-a1"}, []int64{7}},
		{"unknown person", store.AuditQuery{Person: "zed"}, []int64{}},
	} {
		got, next := seqs(tt.q)
		diff(t, "QueryAudit("+tt.name+")", tt.want, got)
		if next != 0 {
			t.Errorf("QueryAudit(%s).Next = %d, want 0 (one page)", tt.name, next)
		}
	}
	q := store.AuditQuery{Person: "alice", Limit: 2}
	var all []int64
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatalf("QueryAudit(%+v) pagination does not end", q)
		}
		got, next := seqs(q)
		all = append(all, got...)
		if next == 0 {
			break
		}
		q.Before = next
	}
	diff(t, "QueryAudit(person alice, pages of 2)", []int64{9, 7, 5, 3, 1}, all)
	page, err = s.QueryAudit(ctx, store.AuditQuery{Target: "sess-b1"})
	must(t, "QueryAudit(sess-b1)", err)
	diff(t, "QueryAudit(sess-b1)", []store.AuditEvent{{Seq: 8, At: t0().Add(7 * time.Minute), Actor: "admin-api",
		Action: "session.revoke", Target: "sess-b1", Reason: "r", Subject: "bob"}}, page.Events)
	list, err := s.ListAudit(ctx, 1)
	must(t, "ListAudit(1)", err)
	diff(t, "ListAudit(1)", []store.AuditEvent{{Seq: 9, At: t0().Add(8 * time.Minute), Actor: "sign-in",
		Action: "session.revoke", Target: "sess-a2", Reason: "r", Subject: "alice"}}, list)
}

// testListGrantsBySubject checks the kinds filter, the order and that other
// subjects' grants stay out.
func testListGrantsBySubject(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, g := range []store.Grant{
		grant(store.GrantRefreshToken, "sig-2", "req-1", "alice", "sess-1"),
		grant(store.GrantRefreshToken, "sig-1", "req-1", "alice", "sess-1"),
		grant(store.GrantOIDC, "sig-3", "req-1", "alice", "sess-1"),
		grant(store.GrantRefreshToken, "sig-4", "req-2", "bob", ""),
	} {
		must(t, "CreateGrant("+g.Signature+")", s.CreateGrant(ctx, g))
	}
	sigs := func(kinds ...store.GrantKind) []string {
		t.Helper()
		list, err := s.ListGrantsBySubject(ctx, "alice", kinds...)
		must(t, "ListGrantsBySubject(alice)", err)
		out := []string{}
		for _, g := range list {
			out = append(out, string(g.Kind)+"/"+g.Signature)
		}
		return out
	}
	diff(t, "ListGrantsBySubject(alice, refresh)", []string{"refresh_token/sig-1", "refresh_token/sig-2"}, sigs(store.GrantRefreshToken))
	diff(t, "ListGrantsBySubject(alice)", []string{"oidc/sig-3", "refresh_token/sig-1", "refresh_token/sig-2"}, sigs())
	diff(t, "ListGrantsBySubject(alice, refresh twice)", []string{"refresh_token/sig-1", "refresh_token/sig-2"}, sigs(store.GrantRefreshToken, store.GrantRefreshToken))
	list, err := s.ListGrantsBySubject(ctx, "alice", store.GrantRefreshToken)
	must(t, "ListGrantsBySubject(alice)", err)
	diff(t, "ListGrantsBySubject(alice) records", grant(store.GrantRefreshToken, "sig-1", "req-1", "alice", "sess-1"), list[0])
	if list, err := s.ListGrantsBySubject(ctx, ""); err != nil || len(list) != 0 {
		t.Errorf("ListGrantsBySubject(\"\") = %v, %v; want nothing", list, err)
	}
}
