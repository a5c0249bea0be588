package web

import (
	"errors"
	"net/http"

	"github.com/keyward/keyward/broker"
)

// backchannelLogout serves POST /backchannel_logout/{upstream}: an
// upstream's OIDC back-channel logout (form field logout_token). It needs
// no cookie and no CSRF token: the signed logout token is the
// authentication. 200 when the upstream subject's sessions are ended (also
// when it had none); 400 with a JSON error for a bad token. OIDC
// Back-Channel Logout 1.0 §2.8
func (s *Server) backchannelLogout(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	w.Header().Set("Cache-Control", "no-store")
	if err := r.ParseForm(); err != nil {
		writeFeedError(w, broker.ErrLogoutBodyNotForm)
		return
	}
	token := r.PostForm.Get("logout_token")
	if token == "" || len(r.PostForm["logout_token"]) != 1 {
		writeFeedError(w, broker.ErrLogoutTokenCount)
		return
	}
	if _, err := s.b.BackchannelLogout(ctx, r.PathValue("upstream"), token); err != nil {
		var be *broker.Error
		if errors.As(err, &be) && be.HTTPStatus() >= 500 {
			s.log.ErrorContext(ctx, "back-channel logout failed", "err", err)
		}
		writeFeedError(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}
