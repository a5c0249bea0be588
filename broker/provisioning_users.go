package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"

	"github.com/keyward/keyward/store"
)

// Reasons written to the audit trail by provisioning.
const (
	reasonSCIMInactive = "SCIM: the identity provider set active to false"
	reasonSCIMCreated  = "SCIM: the identity provider created the user inactive"
	reasonSCIMDeleted  = "SCIM: the identity provider deleted the user"
	reasonSCIMActive   = "SCIM: the identity provider set active to true"
)

// CreateUser provisions a User of upstream from its attributes and returns
// the stored resource. The subject attribute must be set; the subject
// record is created if the person never signed in. A userName taken by
// another User, or a person already linked to another User of the
// upstream, is ErrSCIMUniqueness.
func (p *Provisioning) CreateUser(ctx context.Context, upstream string, attrs map[string]any) (store.SCIMResource, error) {
	e, err := p.endpoint(upstream)
	if err != nil {
		return store.SCIMResource{}, err
	}
	f := userFields(attrs)
	if f.userName == "" {
		return store.SCIMResource{}, invalidValue("userName is required")
	}
	sub := e.upstreamSubject(f)
	if sub == "" {
		return store.SCIMResource{}, invalidValue("%s is required: Keyward links a SCIM user to the person who signs in through upstream %q by it (scim.subjectAttribute)", e.subject, upstream)
	}
	subject := SubjectID(upstream, sub)
	if u, err := p.store.GetSCIMUserBySubject(ctx, upstream, subject); err == nil {
		return store.SCIMResource{}, conflict("The user %s of this upstream has the %s %q already: one user per person", u.ID, e.subject, sub)
	} else if !errors.Is(err, store.ErrNotFound) {
		return store.SCIMResource{}, fmt.Errorf("get scim user by subject: %w", err)
	}
	now := p.now().UTC()
	stored, err := p.store.UpsertSubject(ctx, subject, func() store.Subject {
		return store.Subject{ID: subject, UpstreamID: upstream, UpstreamSubject: sub, Email: f.email, Name: f.displayName,
			CreatedAt: now, UpdatedAt: now}
	}, func(s store.Subject) (store.Subject, error) { return s, nil })
	if err != nil {
		return store.SCIMResource{}, fmt.Errorf("provision subject: %w", err)
	}
	// A new User of a disabled person stays inactive until the client
	// says active true again.
	active := f.active && !stored.Disabled
	r := store.SCIMResource{
		Upstream: upstream, Type: store.SCIMUser, ID: newSCIMID(), ExternalID: f.externalID, Name: f.userName,
		Subject: subject, Active: active, CreatedAt: now, UpdatedAt: now,
	}
	if r.Attributes, err = encodeAttrs(attrs); err != nil {
		return store.SCIMResource{}, err
	}
	if err := p.store.CreateSCIMResource(ctx, r); errors.Is(err, store.ErrConflict) {
		// The userName is taken, or a create for the same person won a race
		// past the check above (the store links a person to one User).
		return store.SCIMResource{}, conflict("Another user of this upstream has the userName %q, or the %s %q", f.userName, e.subject, sub)
	} else if err != nil {
		return store.SCIMResource{}, fmt.Errorf("create scim user: %w", err)
	}
	r.Version = 1
	p.log.InfoContext(ctx, "scim user created", "event", "scim_user_created", "upstream", upstream, "scim_id", r.ID,
		"sub", subject, "active", active, "pre_provisioned", stored.LastLoginAt.IsZero())
	if !f.active {
		if err := p.ensureDeprovisioned(ctx, upstream, subject, reasonSCIMCreated); err != nil {
			return r, err
		}
	}
	return r, nil
}

// User returns the User id of upstream.
func (p *Provisioning) User(ctx context.Context, upstream, id string) (store.SCIMResource, error) {
	return p.get(ctx, upstream, store.SCIMUser, id)
}

// Users lists the Users of upstream, oldest first.
func (p *Provisioning) Users(ctx context.Context, upstream string) ([]store.SCIMResource, error) {
	return p.list(ctx, upstream, store.SCIMUser)
}

// UpdateUser replaces the attributes of the User id with change(its
// current attributes), atomically (PUT passes a change that ignores them,
// PATCH one that applies its operations), then acts on active: false
// deprovisions the person unless they are disabled already, a change from
// false to true reinstates them. The subject attribute may not change: it
// is the link to the person (mutability).
func (p *Provisioning) UpdateUser(ctx context.Context, upstream, id string, change func(map[string]any) (map[string]any, error)) (store.SCIMResource, error) {
	e, err := p.endpoint(upstream)
	if err != nil {
		return store.SCIMResource{}, err
	}
	var wasActive bool
	r, err := p.store.UpdateSCIMResource(ctx, upstream, store.SCIMUser, id, func(old store.SCIMResource) (store.SCIMResource, error) {
		wasActive = old.Active
		attrs, err := SCIMAttributes(old)
		if err != nil {
			return old, err
		}
		attrs, err = change(attrs)
		if err != nil {
			return old, err
		}
		f := userFields(attrs)
		if f.userName == "" {
			return old, invalidValue("userName is required")
		}
		sub := e.upstreamSubject(f)
		if SubjectID(upstream, sub) != old.Subject {
			return old, &SCIMInvalidError{ScimType: "mutability", Detail: fmt.Sprintf(
				"%s links this user to the person who signs in and cannot change; delete the user and create it again", e.subject)}
		}
		if old.Attributes, err = encodeAttrs(attrs); err != nil {
			return old, err
		}
		old.Name, old.ExternalID, old.Active, old.UpdatedAt = f.userName, f.externalID, f.active, p.now().UTC()
		return old, nil
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.SCIMResource{}, fmt.Errorf("user %q: %w", id, ErrSCIMNotFound)
	case errors.Is(err, store.ErrConflict):
		return store.SCIMResource{}, conflict("Another user of this upstream has that userName")
	case err != nil:
		return store.SCIMResource{}, fmt.Errorf("update scim user: %w", err)
	}
	p.log.InfoContext(ctx, "scim user updated", "event", "scim_user_updated", "upstream", upstream, "scim_id", id,
		"sub", r.Subject, "active", r.Active)
	switch {
	case !r.Active:
		err = p.ensureDeprovisioned(ctx, upstream, r.Subject, reasonSCIMInactive)
	case !wasActive:
		var reinstated bool
		if reinstated, err = p.reinstate(ctx, upstream, r.Subject); err == nil && !reinstated {
			// The person stays disabled: the User answers the truth.
			r, err = p.store.UpdateSCIMResource(ctx, upstream, store.SCIMUser, id, func(old store.SCIMResource) (store.SCIMResource, error) {
				old.Active = false
				return old, nil
			})
		}
	}
	return r, err
}

// ActionSCIMReinstateIgnored is the audit action of an active true that
// left the person disabled because someone else disabled them.
const ActionSCIMReinstateIgnored = "scim.reinstate_ignored"

// reinstate undoes the upstream's SCIM deactivation of subject: only a
// person this upstream's SCIM client disabled (DisabledBy scim:<upstream>)
// is reinstated. A person an operator, Shared Signals or another source
// disabled stays disabled; that is audited and reinstated is false.
func (p *Provisioning) reinstate(ctx context.Context, upstream, subject string) (reinstated bool, err error) {
	actor := scimActor(upstream)
	s, done, err := p.admin.ReinstateIfDisabledBy(ctx, subject, reasonSCIMActive, actor)
	if err != nil {
		return false, err
	}
	if done || !s.Disabled {
		return true, nil
	}
	p.log.InfoContext(ctx, "SCIM active true ignored: someone else disabled the person", "event", "scim_reinstate_ignored",
		"upstream", upstream, "sub", subject, "disabled_by", s.DisabledBy)
	return false, p.admin.RecordAdminAction(ctx, actor, ActionSCIMReinstateIgnored, subject,
		fmt.Sprintf("SCIM active true ignored: the person was disabled by %s, who alone can reinstate them (or an operator)", s.DisabledBy))
}

// DeleteUser deprovisions the person of the User id (unless they are
// disabled already), then removes the User and its group memberships.
// The subject stays, disabled: the admin API can still reinstate it, and a
// new User for the same person starts inactive.
func (p *Provisioning) DeleteUser(ctx context.Context, upstream, id string) error {
	r, err := p.User(ctx, upstream, id)
	if err != nil {
		return err
	}
	if err := p.ensureDeprovisioned(ctx, upstream, r.Subject, reasonSCIMDeleted); err != nil {
		return err
	}
	if err := p.removeMember(ctx, upstream, id); err != nil {
		return err
	}
	if err := p.store.DeleteSCIMResource(ctx, upstream, store.SCIMUser, id); errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("user %q: %w", id, ErrSCIMNotFound)
	} else if err != nil {
		return fmt.Errorf("delete scim user: %w", err)
	}
	p.log.InfoContext(ctx, "scim user deleted", "event", "scim_user_deleted", "upstream", upstream, "scim_id", id, "sub", r.Subject)
	return nil
}

// ensureDeprovisioned deprovisions subject through the admin API's
// operation unless it is disabled already, so that a repeated delivery
// neither writes a second feed entry nor moves the not-before.
func (p *Provisioning) ensureDeprovisioned(ctx context.Context, upstream, subject, reason string) error {
	s, err := p.store.GetSubject(ctx, subject)
	if err != nil {
		return fmt.Errorf("get subject: %w", err)
	}
	if s.Disabled {
		return nil
	}
	if _, err := p.admin.Deprovision(ctx, subject, reason, scimActor(upstream)); err != nil {
		return err
	}
	return nil
}

func (p *Provisioning) get(ctx context.Context, upstream string, typ store.SCIMType, id string) (store.SCIMResource, error) {
	if _, err := p.endpoint(upstream); err != nil {
		return store.SCIMResource{}, err
	}
	r, err := p.store.GetSCIMResource(ctx, upstream, typ, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.SCIMResource{}, fmt.Errorf("%s %q: %w", typ, id, ErrSCIMNotFound)
	}
	if err != nil {
		return store.SCIMResource{}, fmt.Errorf("get scim %s: %w", typ, err)
	}
	return r, nil
}

func (p *Provisioning) list(ctx context.Context, upstream string, typ store.SCIMType) ([]store.SCIMResource, error) {
	if _, err := p.endpoint(upstream); err != nil {
		return nil, err
	}
	l, err := p.store.ListSCIMResources(ctx, upstream, typ)
	if err != nil {
		return nil, fmt.Errorf("list scim %ss: %w", typ, err)
	}
	return l, nil
}

// encodeAttrs stores the attributes the client owns: not id, meta or
// schemas, which Keyward sets, and never a password (Okta sends one).
func encodeAttrs(attrs map[string]any) ([]byte, error) {
	m := maps.Clone(attrs)
	for k := range m {
		switch {
		case equalFoldAny(k, "id", "meta", "schemas", "password"):
			delete(m, k)
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, invalidValue("the attributes are not JSON: %s", err.Error())
	}
	return b, nil
}

func equalFoldAny(s string, names ...string) bool {
	for _, n := range names {
		if len(s) == len(n) && strings.EqualFold(s, n) {
			return true
		}
	}
	return false
}
