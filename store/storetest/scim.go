package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyward/keyward/store"
)

func scimUser(upstream, id, name string, created time.Time) store.SCIMResource {
	return store.SCIMResource{
		Upstream:   upstream,
		Type:       store.SCIMUser,
		ID:         id,
		ExternalID: "ext-" + id,
		Name:       name,
		Subject:    "sub-" + id,
		Active:     true,
		Attributes: []byte(`{"userName":"` + name + `"}`),
		CreatedAt:  created,
		UpdatedAt:  created,
	}
}

func testSCIMResources(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := scimUser("corp", "u1", "Alice@Example.com", t0())
	if err := s.CreateSCIMResource(ctx, u); err != nil {
		t.Fatalf("CreateSCIMResource: %v", err)
	}
	if err := s.CreateSCIMResource(ctx, u); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("CreateSCIMResource(same id) = %v, want ErrConflict", err)
	}
	got, err := s.GetSCIMResource(ctx, "corp", store.SCIMUser, "u1")
	if err != nil {
		t.Fatalf("GetSCIMResource: %v", err)
	}
	want := u
	want.Version = 1
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GetSCIMResource (-want +got):\n%s", diff)
	}
	// The key is (upstream, type, id): the same id elsewhere is another resource.
	for _, k := range []struct {
		upstream string
		typ      store.SCIMType
	}{{"other", store.SCIMUser}, {"corp", store.SCIMGroup}} {
		if _, err := s.GetSCIMResource(ctx, k.upstream, k.typ, "u1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetSCIMResource(%s, %s, u1) = %v, want ErrNotFound", k.upstream, k.typ, err)
		}
	}

	stored, err := s.UpdateSCIMResource(ctx, "corp", store.SCIMUser, "u1", func(r store.SCIMResource) (store.SCIMResource, error) {
		r.Active = false
		r.Name = "alice@example.org"
		r.Members = []string{"x"}
		r.UpdatedAt = t0().Add(time.Minute)
		return r, nil
	})
	if err != nil {
		t.Fatalf("UpdateSCIMResource: %v", err)
	}
	if stored.Version != 2 || stored.Active || stored.Name != "alice@example.org" {
		t.Errorf("UpdateSCIMResource stored %+v, want version 2, inactive, renamed", stored)
	}
	got, err = s.GetSCIMResource(ctx, "corp", store.SCIMUser, "u1")
	if err != nil {
		t.Fatalf("GetSCIMResource: %v", err)
	}
	if diff := cmp.Diff(stored, got); diff != "" {
		t.Errorf("read after update (-stored +got):\n%s", diff)
	}
	_, err = s.UpdateSCIMResource(ctx, "corp", store.SCIMUser, "missing", func(r store.SCIMResource) (store.SCIMResource, error) { return r, nil })
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateSCIMResource(missing) = %v, want ErrNotFound", err)
	}
	errNo := errors.New("no")
	_, err = s.UpdateSCIMResource(ctx, "corp", store.SCIMUser, "u1", func(r store.SCIMResource) (store.SCIMResource, error) { return r, errNo })
	if !errors.Is(err, errNo) {
		t.Errorf("UpdateSCIMResource(updater error) = %v, want the updater's error", err)
	}
	_, err = s.UpdateSCIMResource(ctx, "corp", store.SCIMUser, "u1", func(r store.SCIMResource) (store.SCIMResource, error) {
		r.ID = "u2"
		return r, nil
	})
	if err == nil {
		t.Error("UpdateSCIMResource changing the id succeeded, want an error")
	}

	// List: per (upstream, type), by CreatedAt then ID.
	for _, r := range []store.SCIMResource{
		scimUser("corp", "u0", "bob", t0().Add(time.Hour)),
		scimUser("corp", "u3", "carol", t0().Add(-time.Hour)),
		scimUser("other", "u4", "dave", t0()),
		{Upstream: "corp", Type: store.SCIMGroup, ID: "g1", Name: "Admins", Members: []string{"u1", "u0"}, CreatedAt: t0()},
	} {
		if err := s.CreateSCIMResource(ctx, r); err != nil {
			t.Fatalf("CreateSCIMResource(%s): %v", r.ID, err)
		}
	}
	list, err := s.ListSCIMResources(ctx, "corp", store.SCIMUser)
	if err != nil {
		t.Fatalf("ListSCIMResources: %v", err)
	}
	var ids []string
	for _, r := range list {
		ids = append(ids, r.ID)
	}
	if diff := cmp.Diff([]string{"u3", "u1", "u0"}, ids); diff != "" {
		t.Errorf("ListSCIMResources(corp, User) ids (-want +got):\n%s", diff)
	}
	groups, err := s.ListSCIMResources(ctx, "corp", store.SCIMGroup)
	if err != nil || len(groups) != 1 || !cmp.Equal(groups[0].Members, []string{"u1", "u0"}) {
		t.Errorf("ListSCIMResources(corp, Group) = %+v, %v; want g1 with its members", groups, err)
	}
	none, err := s.ListSCIMResources(ctx, "nobody", store.SCIMUser)
	if err != nil || len(none) != 0 {
		t.Errorf("ListSCIMResources(nobody) = %v, %v; want none", none, err)
	}

	if err := s.DeleteSCIMResource(ctx, "corp", store.SCIMUser, "u1"); err != nil {
		t.Fatalf("DeleteSCIMResource: %v", err)
	}
	if err := s.DeleteSCIMResource(ctx, "corp", store.SCIMUser, "u1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteSCIMResource again = %v, want ErrNotFound", err)
	}
	if _, err := s.GetSCIMResource(ctx, "corp", store.SCIMUser, "u1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetSCIMResource after delete = %v, want ErrNotFound", err)
	}
}

// testSCIMNames: a name is unique per (upstream, type), case-insensitively,
// and is released by a rename or a delete.
func testSCIMNames(t *testing.T, s store.Store) {
	ctx := t.Context()
	if err := s.CreateSCIMResource(ctx, scimUser("corp", "u1", "Alice", t0())); err != nil {
		t.Fatalf("CreateSCIMResource: %v", err)
	}
	if err := s.CreateSCIMResource(ctx, scimUser("corp", "u2", "aLICE", t0())); !errors.Is(err, store.ErrConflict) {
		t.Errorf("CreateSCIMResource(same name, other case) = %v, want ErrConflict", err)
	}
	for _, r := range []store.SCIMResource{
		scimUser("other", "u2", "alice", t0()),
		{Upstream: "corp", Type: store.SCIMGroup, ID: "g1", Name: "alice", CreatedAt: t0()},
	} {
		if err := s.CreateSCIMResource(ctx, r); err != nil {
			t.Errorf("CreateSCIMResource(%s %s alice) = %v, want nil (another upstream or type)", r.Upstream, r.Type, err)
		}
	}
	if err := s.CreateSCIMResource(ctx, scimUser("corp", "u3", "bob", t0())); err != nil {
		t.Fatalf("CreateSCIMResource(bob): %v", err)
	}
	rename := func(name string) func(store.SCIMResource) (store.SCIMResource, error) {
		return func(r store.SCIMResource) (store.SCIMResource, error) {
			r.Name = name
			return r, nil
		}
	}
	if _, err := s.UpdateSCIMResource(ctx, "corp", store.SCIMUser, "u3", rename("ALICE")); !errors.Is(err, store.ErrConflict) {
		t.Errorf("rename onto a taken name = %v, want ErrConflict", err)
	}
	if got, err := s.GetSCIMResource(ctx, "corp", store.SCIMUser, "u3"); err != nil || got.Name != "bob" || got.Version != 1 {
		t.Errorf("after the refused rename: %+v, %v; want bob at version 1", got, err)
	}
	// A change of case only keeps the name.
	if _, err := s.UpdateSCIMResource(ctx, "corp", store.SCIMUser, "u1", rename("ALICE")); err != nil {
		t.Errorf("rename to another case of its own name = %v, want nil", err)
	}
	// Renaming frees the old name; deleting frees the name.
	if _, err := s.UpdateSCIMResource(ctx, "corp", store.SCIMUser, "u3", rename("robert")); err != nil {
		t.Fatalf("rename bob → robert: %v", err)
	}
	if err := s.CreateSCIMResource(ctx, scimUser("corp", "u4", "Bob", t0())); err != nil {
		t.Errorf("create with a name freed by a rename = %v, want nil", err)
	}
	if err := s.DeleteSCIMResource(ctx, "corp", store.SCIMUser, "u1"); err != nil {
		t.Fatalf("DeleteSCIMResource: %v", err)
	}
	if err := s.CreateSCIMResource(ctx, scimUser("corp", "u5", "alice", t0())); err != nil {
		t.Errorf("create with a name freed by a delete = %v, want nil", err)
	}
	if err := s.CreateSCIMResource(ctx, store.SCIMResource{Upstream: "corp", Type: store.SCIMUser, ID: "u6"}); err == nil {
		t.Error("CreateSCIMResource without a name succeeded, want an error")
	}
}

// testSCIMSubjects: a person is linked to one User per upstream; a delete
// frees the link; the link cannot change.
func testSCIMSubjects(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := scimUser("corp", "u1", "alice", t0())
	if err := s.CreateSCIMResource(ctx, a); err != nil {
		t.Fatalf("CreateSCIMResource: %v", err)
	}
	twin := scimUser("corp", "u2", "alice2", t0())
	twin.Subject = a.Subject
	if err := s.CreateSCIMResource(ctx, twin); !errors.Is(err, store.ErrConflict) {
		t.Errorf("CreateSCIMResource(same subject) = %v, want ErrConflict", err)
	}
	elsewhere := twin
	elsewhere.Upstream = "other"
	if err := s.CreateSCIMResource(ctx, elsewhere); err != nil {
		t.Errorf("CreateSCIMResource(same subject, another upstream) = %v, want nil", err)
	}
	for _, id := range []string{"g1", "g2"} { // groups have no subject
		if err := s.CreateSCIMResource(ctx, store.SCIMResource{Upstream: "corp", Type: store.SCIMGroup, ID: id, Name: id, CreatedAt: t0()}); err != nil {
			t.Errorf("CreateSCIMResource(group %s) = %v, want nil", id, err)
		}
	}
	_, err := s.UpdateSCIMResource(ctx, "corp", store.SCIMUser, "u1", func(r store.SCIMResource) (store.SCIMResource, error) {
		r.Subject = "someone-else"
		return r, nil
	})
	if err == nil {
		t.Error("UpdateSCIMResource changing the subject succeeded, want an error")
	}
	if err := s.DeleteSCIMResource(ctx, "corp", store.SCIMUser, "u1"); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSCIMResource(ctx, twin); err != nil {
		t.Errorf("CreateSCIMResource(subject freed by a delete) = %v, want nil", err)
	}
}
