package broker

import (
	"context"
	"fmt"
	"slices"

	"github.com/ory/fosite"

	"github.com/keyward/keyward/store"
)

// groupPush gives a refresh the groups SCIM says the person has
// (*Provisioning, when an upstream has group push; the token endpoint's
// field is nil otherwise).
type groupPush interface {
	refreshGroups(ctx context.Context, ar fosite.AccessRequester, sess *Session) error
}

// refreshGroups replaces the groups claim of a refresh's tokens with the
// person's SCIM groups, when the session's upstream has group push and the
// person is provisioned: a membership change reaches the next refresh of
// every refresh family, even after the Keyward session has ended. The
// claim follows the same rules as at sign-in: in the ID token when the
// groups scope was granted, in the access token when tokens.claims also
// names groups.
func (p *Provisioning) refreshGroups(ctx context.Context, ar fosite.AccessRequester, sess *Session) error {
	e, ok := p.endpoints[sess.UpstreamID]
	if !ok || !e.groups || !ar.GetGrantedScopes().Has("groups") {
		return nil
	}
	groups, found, err := p.groupsOfSubject(ctx, sess.UpstreamID, sess.Subject)
	if err != nil || !found {
		return err
	}
	if sess.DefaultSession != nil && sess.DefaultSession.Claims != nil {
		if sess.DefaultSession.Claims.Extra == nil {
			sess.DefaultSession.Claims.Extra = map[string]any{}
		}
		sess.DefaultSession.Claims.Extra["groups"] = slices.Clone(groups)
	}
	if sess.AccessClaims != nil && slices.Contains(p.accessClaims, "groups") {
		if sess.AccessClaims.Extra == nil {
			sess.AccessClaims.Extra = map[string]any{}
		}
		sess.AccessClaims.Extra["groups"] = slices.Clone(groups)
	}
	return nil
}

// groupsOfSubject returns the displayNames of the Groups of upstream whose
// members include the User linked to subject, sorted; found is false when
// no User is linked to it. It reads every User and Group of the upstream.
func (p *Provisioning) groupsOfSubject(ctx context.Context, upstream, subject string) (groups []string, found bool, err error) {
	users, err := p.store.ListSCIMResources(ctx, upstream, store.SCIMUser)
	if err != nil {
		return nil, false, fmt.Errorf("list scim users: %w", err)
	}
	i := slices.IndexFunc(users, func(u store.SCIMResource) bool { return u.Subject == subject })
	if i < 0 {
		return nil, false, nil
	}
	all, err := p.store.ListSCIMResources(ctx, upstream, store.SCIMGroup)
	if err != nil {
		return nil, false, fmt.Errorf("list scim groups: %w", err)
	}
	groups = []string{}
	for _, g := range all {
		if slices.Contains(g.Members, users[i].ID) {
			groups = append(groups, g.Name)
		}
	}
	slices.Sort(groups)
	return groups, true, nil
}
