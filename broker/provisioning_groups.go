package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/keyward/keyward/store"
)

// groupFields reads a Group's displayName and member ids (members[].value,
// sorted, without duplicates).
func groupFields(attrs map[string]any) (name string, members []string) {
	name, _ = attr(attrs, "displayName").(string)
	list, _ := attr(attrs, "members").([]any)
	for _, m := range list {
		mm, _ := m.(map[string]any)
		if v, _ := attr(mm, "value").(string); v != "" {
			members = append(members, v)
		}
	}
	slices.Sort(members)
	return name, slices.Compact(members)
}

// CreateGroup provisions a Group of upstream. Its members must be Users of
// the upstream. With group push (SCIMConfig.Groups) its members' sessions
// get the group.
func (p *Provisioning) CreateGroup(ctx context.Context, upstream string, attrs map[string]any) (store.SCIMResource, error) {
	if _, err := p.endpoint(upstream); err != nil {
		return store.SCIMResource{}, err
	}
	name, members := groupFields(attrs)
	if name == "" {
		return store.SCIMResource{}, invalidValue("displayName is required")
	}
	if err := p.checkMembers(ctx, upstream, members); err != nil {
		return store.SCIMResource{}, err
	}
	now := p.now().UTC()
	r := store.SCIMResource{Upstream: upstream, Type: store.SCIMGroup, ID: newSCIMID(), Name: name, Members: members,
		CreatedAt: now, UpdatedAt: now}
	r.ExternalID, _ = attr(attrs, "externalId").(string)
	var err error
	if r.Attributes, err = encodeAttrs(withoutMembers(attrs)); err != nil {
		return store.SCIMResource{}, err
	}
	if err := p.store.CreateSCIMResource(ctx, r); errors.Is(err, store.ErrConflict) {
		return store.SCIMResource{}, conflict("Another group of this upstream has the displayName %q", name)
	} else if err != nil {
		return store.SCIMResource{}, fmt.Errorf("create scim group: %w", err)
	}
	r.Version = 1
	p.log.InfoContext(ctx, "scim group created", "event", "scim_group_created", "upstream", upstream, "scim_id", r.ID, "members", len(members))
	return r, p.syncGroups(ctx, upstream, members)
}

// Group returns the Group id of upstream.
func (p *Provisioning) Group(ctx context.Context, upstream, id string) (store.SCIMResource, error) {
	return p.get(ctx, upstream, store.SCIMGroup, id)
}

// Groups lists the Groups of upstream, oldest first.
func (p *Provisioning) Groups(ctx context.Context, upstream string) ([]store.SCIMResource, error) {
	return p.list(ctx, upstream, store.SCIMGroup)
}

// GroupAttributes are a Group's attributes with its members.
func GroupAttributes(r store.SCIMResource) (map[string]any, error) {
	m, err := SCIMAttributes(r)
	if err != nil {
		return nil, err
	}
	members := make([]any, 0, len(r.Members))
	for _, id := range r.Members {
		members = append(members, map[string]any{"value": id})
	}
	m["members"] = members
	return m, nil
}

// UpdateGroup replaces the attributes of the Group id with change(its
// current attributes, members included), atomically. With group push, the
// people who joined or left it, and every member when it was renamed, get
// their groups anew.
func (p *Provisioning) UpdateGroup(ctx context.Context, upstream, id string, change func(map[string]any) (map[string]any, error)) (store.SCIMResource, error) {
	if _, err := p.endpoint(upstream); err != nil {
		return store.SCIMResource{}, err
	}
	known, err := p.userIDs(ctx, upstream)
	if err != nil {
		return store.SCIMResource{}, err
	}
	var touched []string
	r, err := p.store.UpdateSCIMResource(ctx, upstream, store.SCIMGroup, id, func(old store.SCIMResource) (store.SCIMResource, error) {
		attrs, err := GroupAttributes(old)
		if err != nil {
			return old, err
		}
		if attrs, err = change(attrs); err != nil {
			return old, err
		}
		name, members := groupFields(attrs)
		if name == "" {
			return old, invalidValue("displayName is required")
		}
		for _, m := range members {
			if !known[m] {
				return old, invalidValue("member %q is not a user of this upstream", m)
			}
		}
		touched = changedMembers(old, name, members)
		if old.Attributes, err = encodeAttrs(withoutMembers(attrs)); err != nil {
			return old, err
		}
		old.ExternalID, _ = attr(attrs, "externalId").(string)
		old.Name, old.Members, old.UpdatedAt = name, members, p.now().UTC()
		return old, nil
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.SCIMResource{}, fmt.Errorf("group %q: %w", id, ErrSCIMNotFound)
	case errors.Is(err, store.ErrConflict):
		return store.SCIMResource{}, conflict("Another group of this upstream has that displayName")
	case err != nil:
		return store.SCIMResource{}, fmt.Errorf("update scim group: %w", err)
	}
	p.log.InfoContext(ctx, "scim group updated", "event", "scim_group_updated", "upstream", upstream, "scim_id", id, "members", len(r.Members))
	return r, p.syncGroups(ctx, upstream, touched)
}

// DeleteGroup removes the Group id; with group push its members lose it.
func (p *Provisioning) DeleteGroup(ctx context.Context, upstream, id string) error {
	r, err := p.Group(ctx, upstream, id)
	if err != nil {
		return err
	}
	if err := p.store.DeleteSCIMResource(ctx, upstream, store.SCIMGroup, id); errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("group %q: %w", id, ErrSCIMNotFound)
	} else if err != nil {
		return fmt.Errorf("delete scim group: %w", err)
	}
	p.log.InfoContext(ctx, "scim group deleted", "event", "scim_group_deleted", "upstream", upstream, "scim_id", id)
	return p.syncGroups(ctx, upstream, r.Members)
}

// changedMembers are the members whose groups change: those who joined or
// left, or all of them when the group was renamed.
func changedMembers(old store.SCIMResource, name string, members []string) []string {
	if name != old.Name {
		all := append(slices.Clone(old.Members), members...)
		slices.Sort(all)
		return slices.Compact(all)
	}
	var out []string
	for _, m := range old.Members {
		if !slices.Contains(members, m) {
			out = append(out, m)
		}
	}
	for _, m := range members {
		if !slices.Contains(old.Members, m) {
			out = append(out, m)
		}
	}
	return out
}

func withoutMembers(attrs map[string]any) map[string]any {
	m := map[string]any{}
	for k, v := range attrs {
		if !strings.EqualFold(k, "members") {
			m[k] = v
		}
	}
	return m
}

func (p *Provisioning) userIDs(ctx context.Context, upstream string) (map[string]bool, error) {
	users, err := p.store.ListSCIMResources(ctx, upstream, store.SCIMUser)
	if err != nil {
		return nil, fmt.Errorf("list scim users: %w", err)
	}
	known := map[string]bool{}
	for _, u := range users {
		known[u.ID] = true
	}
	return known, nil
}

func (p *Provisioning) checkMembers(ctx context.Context, upstream string, members []string) error {
	known, err := p.userIDs(ctx, upstream)
	if err != nil {
		return err
	}
	for _, m := range members {
		if !known[m] {
			return invalidValue("member %q is not a user of this upstream", m)
		}
	}
	return nil
}

// removeMember takes the User id out of every Group of upstream.
func (p *Provisioning) removeMember(ctx context.Context, upstream, id string) error {
	groups, err := p.store.ListSCIMResources(ctx, upstream, store.SCIMGroup)
	if err != nil {
		return fmt.Errorf("list scim groups: %w", err)
	}
	for _, g := range groups {
		if !slices.Contains(g.Members, id) {
			continue
		}
		_, err := p.store.UpdateSCIMResource(ctx, upstream, store.SCIMGroup, g.ID, func(r store.SCIMResource) (store.SCIMResource, error) {
			r.Members = slices.DeleteFunc(slices.Clone(r.Members), func(m string) bool { return m == id })
			r.UpdatedAt = p.now().UTC()
			return r, nil
		})
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("remove member from scim group %s: %w", g.ID, err)
		}
	}
	return nil
}

// syncGroups gives the sessions from upstream of each User in userIDs the
// groups the User is a member of, when upstream has group push. Tokens
// issued from those sessions afterwards (single sign-on, new
// authorizations) carry them.
func (p *Provisioning) syncGroups(ctx context.Context, upstream string, userIDs []string) error {
	e, err := p.endpoint(upstream)
	if err != nil || !e.groups || len(userIDs) == 0 {
		return err
	}
	groups, err := p.store.ListSCIMResources(ctx, upstream, store.SCIMGroup)
	if err != nil {
		return fmt.Errorf("list scim groups: %w", err)
	}
	for _, id := range userIDs {
		u, err := p.store.GetSCIMResource(ctx, upstream, store.SCIMUser, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("get scim user: %w", err)
		}
		names := []string{}
		for _, g := range groups {
			if slices.Contains(g.Members, id) {
				names = append(names, g.Name)
			}
		}
		slices.Sort(names)
		sessions, err := p.store.ListSessions(ctx, u.Subject)
		if err != nil {
			return fmt.Errorf("list sessions: %w", err)
		}
		for _, s := range sessions {
			if s.UpstreamID != upstream {
				continue
			}
			err := p.store.UpdateSession(ctx, s.ID, func(s store.Session) (store.Session, error) {
				s.Identity.Groups = slices.Clone(names)
				return s, nil
			})
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("update session groups: %w", err)
			}
		}
		p.log.InfoContext(ctx, "groups of a person changed by SCIM", "event", "scim_groups_changed", "upstream", upstream,
			"sub", u.Subject, "groups", len(names), "sessions", len(sessions))
	}
	return nil
}
