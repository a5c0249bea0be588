package web

import (
	"context"
	"errors"
	"net/http"

	"github.com/keyward/keyward/broker"
)

// AdminSCIM is what the admin API needs for SCIM provisioning
// (*broker.Provisioning).
type AdminSCIM interface {
	RotateToken(ctx context.Context, upstream, actor, reason string) (string, error)
}

var _ AdminSCIM = (*broker.Provisioning)(nil)

// AdminSCIMToken is the answer of POST /admin/v1/scim/{upstream}/token.
type AdminSCIMToken struct {
	Upstream string `json:"upstream"`
	// Token is the new provisioning token, shown once.
	Token string `json:"token"`
}

// rotateSCIMToken handles POST /admin/v1/scim/{upstream}/token: a new
// provisioning token for the upstream (the one it replaces stays valid
// until the next rotation).
func (a *admin) rotateSCIMToken(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r, false)
	if !ok {
		return
	}
	upstream := r.PathValue("upstream")
	if a.scim == nil {
		writeAdminError(w, http.StatusNotFound, "not_found", "SCIM provisioning is off (keyward.yaml has no scim section)")
		return
	}
	token, err := a.scim.RotateToken(r.Context(), upstream, AdminActor, body.Reason)
	if errors.Is(err, broker.ErrSCIMNotFound) {
		writeAdminError(w, http.StatusNotFound, "not_found", "upstream "+upstream+" has no SCIM provisioning")
		return
	}
	if err != nil && token == "" {
		a.fail(w, r, err, "")
		return
	}
	// A failed audit write after the rotation still answers the token:
	// the rotation happened, and the old token is the previous one now.
	writeAdminJSON(w, http.StatusOK, AdminSCIMToken{Upstream: upstream, Token: token})
}
