package scim

import (
	"net/http"

	"github.com/elimity-com/scim"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/store"
)

// userHandler is the library's ResourceHandler for one upstream's Users.
type userHandler struct{ resources }

// groupHandler is the library's ResourceHandler for one upstream's Groups.
type groupHandler struct{ resources }

// Create provisions a User.
func (h *userHandler) Create(r *http.Request, attrs scim.ResourceAttributes) (scim.Resource, error) {
	u, err := h.prov.CreateUser(r.Context(), h.upstream, attrs)
	if err != nil {
		return scim.Resource{}, h.scimError(r.Context(), err)
	}
	return h.answer(r, u)
}

// Get returns a User.
func (h *userHandler) Get(r *http.Request, id string) (scim.Resource, error) {
	u, err := h.prov.User(r.Context(), h.upstream, id)
	if err != nil {
		return scim.Resource{}, h.scimError(r.Context(), err)
	}
	return h.answer(r, u)
}

// GetAll lists the Users that pass the filter, a page at a time.
func (h *userHandler) GetAll(r *http.Request, params scim.ListRequestParams) (scim.Page, error) {
	all, err := h.prov.Users(r.Context(), h.upstream)
	if err != nil {
		return scim.Page{}, h.scimError(r.Context(), err)
	}
	return h.page(r, all, params, broker.SCIMAttributes)
}

// Replace is PUT: the attributes replace the User's.
func (h *userHandler) Replace(r *http.Request, id string, attrs scim.ResourceAttributes) (scim.Resource, error) {
	u, err := h.prov.UpdateUser(r.Context(), h.upstream, id, func(map[string]any) (map[string]any, error) { return attrs, nil })
	if err != nil {
		return scim.Resource{}, h.scimError(r.Context(), err)
	}
	return h.answer(r, u)
}

// Delete deprovisions the person and removes the User.
func (h *userHandler) Delete(r *http.Request, id string) error {
	if err := h.prov.DeleteUser(r.Context(), h.upstream, id); err != nil {
		return h.scimError(r.Context(), err)
	}
	return nil
}

// Patch applies the operations to the User.
func (h *userHandler) Patch(r *http.Request, id string, ops []scim.PatchOperation) (scim.Resource, error) {
	u, err := h.prov.UpdateUser(r.Context(), h.upstream, id, func(attrs map[string]any) (map[string]any, error) {
		return attrs, applyPatch(attrs, ops)
	})
	if err != nil {
		return scim.Resource{}, h.scimError(r.Context(), err)
	}
	return h.answer(r, u)
}

func (h *userHandler) answer(r *http.Request, u store.SCIMResource) (scim.Resource, error) {
	attrs, err := broker.SCIMAttributes(u)
	if err != nil {
		return scim.Resource{}, h.scimError(r.Context(), err)
	}
	return resource(u, attrs), nil
}

// Create provisions a Group.
func (h *groupHandler) Create(r *http.Request, attrs scim.ResourceAttributes) (scim.Resource, error) {
	g, err := h.prov.CreateGroup(r.Context(), h.upstream, attrs)
	if err != nil {
		return scim.Resource{}, h.scimError(r.Context(), err)
	}
	return h.answer(r, g)
}

// Get returns a Group.
func (h *groupHandler) Get(r *http.Request, id string) (scim.Resource, error) {
	g, err := h.prov.Group(r.Context(), h.upstream, id)
	if err != nil {
		return scim.Resource{}, h.scimError(r.Context(), err)
	}
	return h.answer(r, g)
}

// GetAll lists the Groups that pass the filter, a page at a time.
func (h *groupHandler) GetAll(r *http.Request, params scim.ListRequestParams) (scim.Page, error) {
	all, err := h.prov.Groups(r.Context(), h.upstream)
	if err != nil {
		return scim.Page{}, h.scimError(r.Context(), err)
	}
	return h.page(r, all, params, broker.GroupAttributes)
}

// Replace is PUT: the attributes replace the Group's.
func (h *groupHandler) Replace(r *http.Request, id string, attrs scim.ResourceAttributes) (scim.Resource, error) {
	g, err := h.prov.UpdateGroup(r.Context(), h.upstream, id, func(map[string]any) (map[string]any, error) { return attrs, nil })
	if err != nil {
		return scim.Resource{}, h.scimError(r.Context(), err)
	}
	return h.answer(r, g)
}

// Delete removes the Group.
func (h *groupHandler) Delete(r *http.Request, id string) error {
	if err := h.prov.DeleteGroup(r.Context(), h.upstream, id); err != nil {
		return h.scimError(r.Context(), err)
	}
	return nil
}

// Patch applies the operations to the Group (membership changes, renames).
func (h *groupHandler) Patch(r *http.Request, id string, ops []scim.PatchOperation) (scim.Resource, error) {
	g, err := h.prov.UpdateGroup(r.Context(), h.upstream, id, func(attrs map[string]any) (map[string]any, error) {
		return attrs, applyPatch(attrs, ops)
	})
	if err != nil {
		return scim.Resource{}, h.scimError(r.Context(), err)
	}
	return h.answer(r, g)
}

func (h *groupHandler) answer(r *http.Request, g store.SCIMResource) (scim.Resource, error) {
	attrs, err := broker.GroupAttributes(g)
	if err != nil {
		return scim.Resource{}, h.scimError(r.Context(), err)
	}
	return resource(g, attrs), nil
}

// page filters all (with the request's validated filter, over each
// resource as it is answered) and cuts the page startIndex, count.
func (rs resources) page(r *http.Request, all []store.SCIMResource, params scim.ListRequestParams,
	attrsOf func(store.SCIMResource) (map[string]any, error)) (scim.Page, error) {
	page := scim.Page{Resources: []scim.Resource{}}
	for _, x := range all {
		attrs, err := attrsOf(x)
		if err != nil {
			return scim.Page{}, rs.scimError(r.Context(), err)
		}
		res := resource(x, attrs)
		if params.FilterValidator != nil {
			view := make(map[string]any, len(attrs)+2)
			for k, v := range attrs {
				view[k] = v
			}
			view["id"] = x.ID
			if x.ExternalID != "" {
				view["externalId"] = x.ExternalID
			}
			if params.FilterValidator.PassesFilter(view) != nil {
				continue
			}
		}
		page.TotalResults++
		if page.TotalResults >= params.StartIndex && len(page.Resources) < params.Count {
			page.Resources = append(page.Resources, res)
		}
	}
	return page, nil
}
