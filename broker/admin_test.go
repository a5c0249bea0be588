package broker

import (
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/store"
)

func newTestAdmin(t *testing.T) (*admin, *fixture, *notified) {
	t.Helper()
	f := newFixture(t)
	n := &notified{}
	a := &admin{
		store: f.st,
		clients: f.clients(t,
			Client{ID: "app", Name: "The App", Secret: "app-secret", RedirectURIs: []string{"https://app.example.com/cb"}},
			Client{ID: "reader", Secret: "reader-secret"},
			Client{ID: "spa", Public: true, RedirectURIs: []string{"https://spa.example.com/cb"}},
		),
		readers: []string{"reader"},
		notify:  n,
		feedTTL: 15 * time.Minute,
		log:     slog.New(slog.DiscardHandler),
		now:     func() time.Time { return f.now },
	}
	return a, f, n
}

func TestAdminDeprovision(t *testing.T) {
	a, f, n := newTestAdmin(t)
	ctx := t.Context()
	sub := f.subject(t, "corp", "alice", "alice@example.com")
	other := f.subject(t, "corp", "bob", "bob@example.com")
	s1 := f.session(t, sub, "corp", "app", "spa")
	kept := f.session(t, other, "corp", "app")

	res, err := a.Deprovision(ctx, sub, "left the company", "admin-api")
	if err != nil {
		t.Fatalf("Deprovision: %v", err)
	}
	if res.Sessions != 1 || res.Revocation.Kind != store.RevokeSubject || res.Revocation.Subject != sub {
		t.Errorf("Deprovision() = %+v, want one session and a subject feed entry", res)
	}
	if want := f.now.Add(15*time.Minute + feedLeeway); !res.Revocation.ExpiresAt.Equal(want) {
		t.Errorf("feed entry expires %v, want %v (longest token TTL + leeway)", res.Revocation.ExpiresAt, want)
	}
	if want := []string{sub + " " + s1.ID + " app,spa"}; !slices.Equal(n.calls, want) {
		t.Errorf("notified %q, want %q", n.calls, want)
	}
	s, err := a.Subject(ctx, sub)
	if err != nil || !s.Disabled || !s.NotBefore.Equal(f.now) {
		t.Errorf("Subject() = %+v, %v; want disabled, not-before now", s, err)
	}
	if _, err := f.st.GetSession(ctx, s1.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deprovisioned subject's session: %v, want ErrNotFound", err)
	}
	if _, err := f.st.GetSession(ctx, kept.ID); err != nil {
		t.Errorf("another subject's session: %v, want kept", err)
	}
	events, err := a.AuditEvents(ctx, 10)
	if err != nil || len(events) != 1 || events[0].Action != ActionDeprovision || events[0].Reason != "left the company" || events[0].Actor != "admin-api" {
		t.Errorf("AuditEvents() = %+v, %v; want the deprovision event", events, err)
	}

	if _, err := a.Deprovision(ctx, "nobody", "r", "admin-api"); !errors.Is(err, ErrUnknownSubject) {
		t.Errorf("Deprovision(unknown) = %v, want ErrUnknownSubject", err)
	}
}

func TestAdminDeprovisionByEmail(t *testing.T) {
	a, f, _ := newTestAdmin(t)
	ctx := t.Context()
	s1 := f.subject(t, "corp", "alice", "Alice@Example.com")
	s2 := f.subject(t, "github", "alice-gh", "alice@example.com")
	f.subject(t, "corp", "bob", "bob@example.com")

	got, err := a.DeprovisionByEmail(ctx, " alice@EXAMPLE.com ", "offboarding", "admin-api")
	if err != nil {
		t.Fatalf("DeprovisionByEmail: %v", err)
	}
	var subs []string
	for _, d := range got {
		subs = append(subs, d.Subject)
	}
	slices.Sort(subs)
	want := []string{s1, s2}
	slices.Sort(want)
	if !slices.Equal(subs, want) {
		t.Errorf("deprovisioned %v, want %v", subs, want)
	}
	if _, err := a.DeprovisionByEmail(ctx, "carol@example.com", "r", "admin-api"); !errors.Is(err, ErrUnknownSubject) {
		t.Errorf("DeprovisionByEmail(no match) = %v, want ErrUnknownSubject", err)
	}
	if found, err := a.FindSubjectsByEmail(ctx, "  "); err != nil || found != nil {
		t.Errorf("FindSubjectsByEmail(blank) = %v, %v; want nothing", found, err)
	}
}

func TestAdminReinstate(t *testing.T) {
	a, f, _ := newTestAdmin(t)
	ctx := t.Context()
	sub := f.subject(t, "corp", "alice", "alice@example.com")
	if _, err := a.Deprovision(ctx, sub, "r", "admin-api"); err != nil {
		t.Fatal(err)
	}
	gone, err := a.Subject(ctx, sub)
	if err != nil || gone.DisabledBy != "admin-api" || gone.DisabledReason != "r" || !gone.DisabledAt.Equal(f.now) {
		t.Errorf("Subject() after Deprovision = %+v, %v; want why, when and by whom", gone, err)
	}
	s, err := a.Reinstate(ctx, sub, "came back", "admin-api")
	if err != nil || s.Disabled || !s.NotBefore.Equal(f.now) {
		t.Errorf("Reinstate() = %+v, %v; want enabled with not-before kept", s, err)
	}
	if s.DisabledBy != "" || s.DisabledReason != "" || !s.DisabledAt.IsZero() {
		t.Errorf("Reinstate() = %+v, want the disabled why cleared", s)
	}
	events, _ := a.AuditEvents(ctx, 10)
	if len(events) != 2 || events[1].Action != ActionReinstate || events[1].Target != sub {
		t.Errorf("AuditEvents() = %+v, want deprovision then reinstate", events)
	}
	if _, err := a.Reinstate(ctx, "nobody", "r", "admin-api"); !errors.Is(err, ErrUnknownSubject) {
		t.Errorf("Reinstate(unknown) = %v, want ErrUnknownSubject", err)
	}
}

func TestAdminRevokeSession(t *testing.T) {
	a, f, n := newTestAdmin(t)
	ctx := t.Context()
	sub := f.subject(t, "corp", "alice", "alice@example.com")
	s := f.session(t, sub, "corp", "spa", "app")
	other := f.session(t, sub, "corp", "app")

	rev, err := a.RevokeSession(ctx, s.ID, "signed out", ActorEndSession)
	if err != nil {
		t.Fatalf("RevokeSession: %v", err)
	}
	if rev.Session.ID != s.ID || rev.Grants != 2 || !slices.Equal(rev.Clients, []string{"app", "spa"}) {
		t.Errorf("RevokeSession() = %+v, want the session, 2 grants, clients app and spa", rev)
	}
	if rev.Revocation.Kind != store.RevokeSession || rev.Revocation.SessionID != s.ID || !rev.Revocation.NotBefore.Equal(f.now) {
		t.Errorf("feed entry %+v, want a session entry, not-before now", rev.Revocation)
	}
	if want := []string{sub + " " + s.ID + " app,spa"}; !slices.Equal(n.calls, want) {
		t.Errorf("notified %q, want %q", n.calls, want)
	}
	sessions, err := a.Sessions(ctx, sub)
	if err != nil || len(sessions) != 1 || sessions[0].ID != other.ID {
		t.Errorf("Sessions() = %+v, %v; want only the other session", sessions, err)
	}
	events, _ := a.AuditEvents(ctx, 10)
	if len(events) != 1 || events[0].Action != ActionRevokeSession || events[0].Actor != ActorEndSession || events[0].Target != s.ID {
		t.Errorf("AuditEvents() = %+v, want one session.revoke", events)
	}
	if _, err := a.RevokeSession(ctx, s.ID, "again", "admin-api"); !errors.Is(err, ErrUnknownSession) {
		t.Errorf("RevokeSession(ended) = %v, want ErrUnknownSession", err)
	}
}

func TestAdminRevocationFeed(t *testing.T) {
	a, f, _ := newTestAdmin(t)
	ctx := t.Context()
	sub := f.subject(t, "corp", "alice", "alice@example.com")
	s := f.session(t, sub, "corp")
	if _, err := a.RevokeSession(ctx, s.ID, "r", "admin-api"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Deprovision(ctx, sub, "r", "admin-api"); err != nil {
		t.Fatal(err)
	}

	page, err := a.Revocations(ctx, 0, "reader", "reader-secret")
	if err != nil {
		t.Fatalf("Revocations: %v", err)
	}
	if len(page.Entries) != 2 || page.Entries[0].Kind != store.RevokeSession || page.Entries[1].Kind != store.RevokeSubject || page.Next != page.Highest || page.Highest != page.Entries[1].Seq {
		t.Errorf("Revocations(0) = %+v, want the session then the subject entry, Next = Highest", page)
	}
	page2, err := a.Revocations(ctx, page.Next, "reader", "reader-secret")
	if err != nil || len(page2.Entries) != 0 || page2.Next != page.Next {
		t.Errorf("Revocations(Next) = %+v, %v; want an empty page at the same cursor", page2, err)
	}

	for _, tt := range []struct{ name, id, secret string }{
		{"wrong secret", "reader", "nope"},
		{"not a reader", "app", "app-secret"},
		{"public client", "spa", ""},
		{"unknown client", "ghost", "x"},
	} {
		if _, err := a.Revocations(ctx, 0, tt.id, tt.secret); !errors.Is(err, ErrFeedUnauthorized) {
			t.Errorf("%s: Revocations() = %v, want ErrFeedUnauthorized", tt.name, err)
		}
	}
	var be *Error
	if _, err := a.Revocations(ctx, -1, "reader", "reader-secret"); !errors.As(err, &be) || be.Code != "invalid_request" {
		t.Errorf("Revocations(-1) = %v, want invalid_request", err)
	}
}

func TestAdminListings(t *testing.T) {
	a, f, _ := newTestAdmin(t)
	ctx := t.Context()
	f.subject(t, "corp", "alice", "alice@example.com")
	f.subject(t, "corp", "bob", "bob@example.com")
	subs, err := a.Subjects(ctx)
	if err != nil || len(subs) != 2 {
		t.Errorf("Subjects() = %d, %v; want 2", len(subs), err)
	}
	if err := a.RecordAdminAction(ctx, "admin-api", ActionRotateKeys, "kid-1", "scheduled"); err != nil {
		t.Fatal(err)
	}
	events, err := a.AuditEvents(ctx, 10)
	if err != nil || len(events) != 1 || events[0].Action != ActionRotateKeys || events[0].Target != "kid-1" {
		t.Errorf("AuditEvents() = %+v, %v; want the key rotation", events, err)
	}
	var ids []string
	for _, c := range a.Clients() {
		ids = append(ids, c.ID+":"+map[bool]string{true: "reader", false: "-"}[c.RevocationReader])
		if c.ID == "app" && (c.Name != "The App" || c.Public || len(c.RedirectURIs) != 1) {
			t.Errorf("Clients() app = %+v", c)
		}
	}
	if got := strings.Join(ids, " "); got != "app:- reader:reader spa:-" {
		t.Errorf("Clients() = %s, want app, reader (a feed reader), spa, by id", got)
	}
}
