package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyward/keyward/store"
)

const testSCIMToken = "scim-token-0123456789-0123456789-abcdef"

func newTestProvisioning(t *testing.T, f *fixture, b *Broker, edit func(*SCIMConfig)) *Provisioning {
	t.Helper()
	c := SCIMConfig{Upstream: "corp", Token: testSCIMToken}
	if edit != nil {
		edit(&c)
	}
	p, err := b.NewProvisioning(ProvisioningConfig{Store: f.st, Endpoints: []SCIMConfig{c}, Logger: slog.New(slog.DiscardHandler), Now: f.clock})
	if err != nil {
		t.Fatalf("NewProvisioning: %v", err)
	}
	return p
}

func TestSCIMConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		c    SCIMConfig
		want []string // "path: start of the message"
	}{
		{"valid", SCIMConfig{Upstream: "corp", TokenFile: "/etc/keyward/scim.token"}, nil},
		{"inline env", SCIMConfig{Upstream: "corp", Token: "${SCIM_TOKEN}"}, nil},
		{"nothing", SCIMConfig{}, []string{"upstream: set it", "tokenFile: set it"}},
		{"both tokens", SCIMConfig{Upstream: "corp", TokenFile: "/x", Token: testSCIMToken}, []string{"token: set either"}},
		{"short token", SCIMConfig{Upstream: "corp", Token: "short"}, []string{"token: the token must be at least 32"}},
		{"bad attribute", SCIMConfig{Upstream: "corp", TokenFile: "/x", SubjectAttribute: "email"}, []string{`subjectAttribute: "email" is not supported`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			if err := tt.c.Validate(); err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if len(got) != len(tt.want) {
				t.Fatalf("Validate() = %q, want %q", got, tt.want)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("Validate()[%d] = %q, want it to start with %q", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestNewProvisioningRefuses(t *testing.T) {
	f := newFixture(t)
	b := newTestBroker(t, f, nil)
	for name, cs := range map[string][]SCIMConfig{
		"unknown upstream": {{Upstream: "nope", Token: testSCIMToken}},
		"twice":            {{Upstream: "corp", Token: testSCIMToken}, {Upstream: "corp", Token: testSCIMToken + "x"}},
		"short token":      {{Upstream: "corp", Token: "short"}},
		"no token":         {{Upstream: "corp"}},
	} {
		if _, err := b.NewProvisioning(ProvisioningConfig{Store: f.st, Endpoints: cs}); err == nil {
			t.Errorf("%s: NewProvisioning = nil error, want one", name)
		}
	}
}

func TestProvisioningAuthenticate(t *testing.T) {
	f := newFixture(t)
	p := newTestProvisioning(t, f, newTestBroker(t, f, nil), nil)
	tests := []struct {
		upstream, token string
		want            bool
	}{
		{"corp", testSCIMToken, true},
		{"corp", testSCIMToken + "x", false},
		{"corp", testSCIMToken[:len(testSCIMToken)-1], false},
		{"corp", "", false},
		{"other", testSCIMToken, false},
	}
	for _, tt := range tests {
		if got, err := p.Authenticate(t.Context(), tt.upstream, tt.token); got != tt.want || err != nil {
			t.Errorf("Authenticate(%q, %q) = %t, %v; want %t", tt.upstream, tt.token, got, err, tt.want)
		}
	}
}

// TestProvisioningSubjectAttribute: userName as the subject attribute links
// the user to SubjectID(upstream, userName).
func TestProvisioningSubjectAttribute(t *testing.T) {
	f := newFixture(t)
	p := newTestProvisioning(t, f, newTestBroker(t, f, nil), func(c *SCIMConfig) { c.SubjectAttribute = SCIMSubjectUserName })
	u, err := p.CreateUser(t.Context(), "corp", map[string]any{"userName": "bob@example.com", "externalId": "00u1"})
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if want := SubjectID("corp", "bob@example.com"); u.Subject != want {
		t.Errorf("linked subject = %s, want SubjectID(corp, userName) %s", u.Subject, want)
	}
	s, err := f.st.GetSubject(t.Context(), u.Subject)
	if err != nil || s.UpstreamID != "corp" || s.UpstreamSubject != "bob@example.com" || s.Disabled {
		t.Errorf("pre-provisioned subject = %+v, %v", s, err)
	}
}

// TestProvisioningUserLifecycle walks one user through the operations and
// checks what each did to the subject, the feed and the audit trail.
func TestProvisioningUserLifecycle(t *testing.T) {
	f := newFixture(t)
	b := newTestBroker(t, f, nil)
	p := newTestProvisioning(t, f, b, nil)
	ctx := t.Context()
	u, err := p.CreateUser(ctx, "corp", map[string]any{"userName": "bob", "externalId": "00u1", "password": "secret",
		"emails": []any{map[string]any{"value": "b@home.example"}, map[string]any{"value": "bob@example.com", "primary": true}}})
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if strings.Contains(string(u.Attributes), "secret") {
		t.Errorf("the password was stored: %s", u.Attributes)
	}
	if s, _ := f.st.GetSubject(ctx, u.Subject); s.Email != "bob@example.com" {
		t.Errorf("subject email = %q, want the primary address", s.Email)
	}
	set := func(active bool) func(map[string]any) (map[string]any, error) {
		return func(m map[string]any) (map[string]any, error) {
			m["active"] = active
			return m, nil
		}
	}
	feed := func() int {
		e, _, _ := f.st.ListRevocations(ctx, 0, 0)
		return len(e)
	}
	if _, err := p.UpdateUser(ctx, "corp", u.ID, set(false)); err != nil {
		t.Fatalf("UpdateUser(active false): %v", err)
	}
	if s, _ := f.st.GetSubject(ctx, u.Subject); !s.Disabled || feed() != 1 {
		t.Fatalf("after active false: disabled %t, feed %d; want disabled, one entry", s.Disabled, feed())
	}
	if _, err := p.UpdateUser(ctx, "corp", u.ID, set(false)); err != nil || feed() != 1 {
		t.Errorf("repeated active false: %v, feed %d; want nil, still one entry", err, feed())
	}
	if _, err := p.UpdateUser(ctx, "corp", u.ID, set(true)); err != nil {
		t.Fatalf("UpdateUser(active true): %v", err)
	}
	if s, _ := f.st.GetSubject(ctx, u.Subject); s.Disabled {
		t.Error("active true did not reinstate")
	}
	// The subject attribute is the link and cannot change.
	_, err = p.UpdateUser(ctx, "corp", u.ID, func(m map[string]any) (map[string]any, error) {
		m["externalId"] = "00u2"
		return m, nil
	})
	var inv *SCIMInvalidError
	if !errors.As(err, &inv) || inv.ScimType != "mutability" {
		t.Errorf("changing externalId = %v, want a mutability error", err)
	}
	if err := p.DeleteUser(ctx, "corp", u.ID); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	if _, err := p.User(ctx, "corp", u.ID); !errors.Is(err, ErrSCIMNotFound) {
		t.Errorf("User after delete = %v, want ErrSCIMNotFound", err)
	}
	if s, _ := f.st.GetSubject(ctx, u.Subject); !s.Disabled || feed() != 2 {
		t.Errorf("after delete: disabled %t, feed %d; want disabled, two entries", s.Disabled, feed())
	}
	audit, _ := f.st.ListAudit(ctx, 10)
	var got []string
	for _, e := range audit {
		got = append(got, e.Actor+" "+e.Action)
	}
	want := []string{"scim:corp deprovision", "scim:corp reinstate", "scim:corp deprovision"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("audit (-want +got):\n%s", diff)
	}
	// Created again: a new User, linked to the same person, inactive.
	u2, err := p.CreateUser(ctx, "corp", map[string]any{"userName": "bob", "externalId": "00u1", "active": true})
	if err != nil || u2.ID == u.ID || u2.Subject != u.Subject || u2.Active {
		t.Errorf("CreateUser again = %+v, %v; want a new id for the same subject, inactive", u2, err)
	}
}

func TestProvisioningGroupsReachSessions(t *testing.T) {
	f := newFixture(t)
	b := newTestBroker(t, f, nil)
	p := newTestProvisioning(t, f, b, func(c *SCIMConfig) { c.Groups = true })
	ctx := t.Context()
	u, err := p.CreateUser(ctx, "corp", map[string]any{"userName": "bob", "externalId": "00u1"})
	if err != nil {
		t.Fatal(err)
	}
	sess := store.Session{ID: "s1", Subject: u.Subject, UpstreamID: "corp", Identity: store.Identity{Groups: []string{"from-id-token"}},
		CreatedAt: f.now, ExpiresAt: f.now.Add(time.Hour)}
	if err := f.st.CreateSession(ctx, sess); err != nil {
		t.Fatal(err)
	}
	groups := func() []string {
		s, err := f.st.GetSession(ctx, "s1")
		if err != nil {
			t.Fatal(err)
		}
		return s.Identity.Groups
	}
	g, err := p.CreateGroup(ctx, "corp", map[string]any{"displayName": "eng", "members": []any{map[string]any{"value": u.ID}}})
	if err != nil {
		t.Fatalf("CreateGroup: %v", err)
	}
	if diff := cmp.Diff([]string{"eng"}, groups()); diff != "" {
		t.Errorf("groups after CreateGroup (-want +got):\n%s", diff)
	}
	rename := func(m map[string]any) (map[string]any, error) {
		m["displayName"] = "engineering"
		return m, nil
	}
	if _, err := p.UpdateGroup(ctx, "corp", g.ID, rename); err != nil {
		t.Fatalf("UpdateGroup: %v", err)
	}
	if diff := cmp.Diff([]string{"engineering"}, groups()); diff != "" {
		t.Errorf("groups after the rename (-want +got):\n%s", diff)
	}
	if err := p.DeleteGroup(ctx, "corp", g.ID); err != nil {
		t.Fatalf("DeleteGroup: %v", err)
	}
	if got := groups(); len(got) != 0 {
		t.Errorf("groups after DeleteGroup = %v, want none", got)
	}
	if _, err := p.CreateGroup(ctx, "corp", map[string]any{"displayName": "x", "members": []any{map[string]any{"value": "nobody"}}}); err == nil {
		t.Error("CreateGroup with an unknown member succeeded")
	}
}

// TestProvisioningConcurrentCreatesLinkOnce: creates for the same person
// racing each other leave one User linked to them.
func TestProvisioningConcurrentCreatesLinkOnce(t *testing.T) {
	f := newFixture(t)
	p := newTestProvisioning(t, f, newTestBroker(t, f, nil), nil)
	const n = 8
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := p.CreateUser(t.Context(), "corp", map[string]any{"userName": fmt.Sprintf("bob%d", i), "externalId": "00u1"})
			errs <- err
		}()
	}
	ok := 0
	for range n {
		err := <-errs
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, ErrSCIMUniqueness):
			t.Errorf("CreateUser = %v, want nil or ErrSCIMUniqueness", err)
		}
	}
	users, _ := p.Users(t.Context(), "corp")
	if ok != 1 || len(users) != 1 {
		t.Errorf("%d creates succeeded, %d users stored; want one of each", ok, len(users))
	}
}

// TestProvisioningRotateToken: a rotation replaces the configured token;
// the token it replaces keeps working until the next rotation.
func TestProvisioningRotateToken(t *testing.T) {
	f := newFixture(t)
	p := newTestProvisioning(t, f, newTestBroker(t, f, nil), nil)
	ctx := t.Context()
	accepts := func(token string) bool {
		t.Helper()
		ok, err := p.Authenticate(ctx, "corp", token)
		if err != nil {
			t.Fatalf("Authenticate: %v", err)
		}
		return ok
	}
	first, err := p.RotateToken(ctx, "corp", "admin-api", "yearly")
	if err != nil {
		t.Fatalf("RotateToken: %v", err)
	}
	if len(first) < minSCIMToken || first == testSCIMToken {
		t.Fatalf("RotateToken = %q, want a new token of at least %d characters", first, minSCIMToken)
	}
	if !accepts(first) || !accepts(testSCIMToken) || accepts(first+"x") {
		t.Errorf("after one rotation: new %t, configured %t, wrong %t; want true, true, false", accepts(first), accepts(testSCIMToken), accepts(first+"x"))
	}
	second, err := p.RotateToken(ctx, "corp", "admin-api", "")
	if err != nil {
		t.Fatalf("RotateToken again: %v", err)
	}
	if !accepts(second) || !accepts(first) || accepts(testSCIMToken) {
		t.Errorf("after two rotations: newest %t, previous %t, configured %t; want true, true, false", accepts(second), accepts(first), accepts(testSCIMToken))
	}
	if _, err := p.RotateToken(ctx, "other", "admin-api", ""); !errors.Is(err, ErrSCIMNotFound) {
		t.Errorf("RotateToken(other) = %v, want ErrSCIMNotFound", err)
	}
	audit, _ := f.st.ListAudit(ctx, 1)
	if len(audit) != 1 || audit[0].Action != ActionRotateSCIMToken || audit[0].Target != "corp" {
		t.Errorf("audit = %+v, want the rotation", audit)
	}
	if users, _ := p.Users(ctx, "corp"); len(users) != 0 {
		t.Errorf("users = %v: the token record must not be listed as a user", users)
	}
}
