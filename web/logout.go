package web

import (
	"net/http"

	"github.com/keyward/keyward/broker"
)

// endSession serves GET and POST /end_session (OIDC RP-Initiated Logout
// 1.0): it ends the Keyward session, clears the session cookie and sends
// the browser to the client's post-logout redirect URI, or shows the
// "Signed out" page. A bad request is an error page, never a redirect, and
// leaves the session alone.
func (s *Server) endSession(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if r.Method == http.MethodPost {
		if err := r.ParseForm(); err != nil {
			s.pages.renderError(w, errorPageData{Status: http.StatusBadRequest, Title: "Invalid sign-out request",
				Message: "The sign-out request could not be read.", RequestID: RequestID(r.Context())})
			return
		}
		q = r.PostForm
	}
	out, err := s.b.EndSession(r.Context(), broker.EndSessionInput{
		IDTokenHint:           q.Get("id_token_hint"),
		ClientID:              q.Get("client_id"),
		PostLogoutRedirectURI: q.Get("post_logout_redirect_uri"),
		State:                 q.Get("state"),
		SessionID:             s.cookies.get(r, s.cookies.session),
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	s.cookies.clear(w, s.cookies.session)
	if out.RedirectURL != "" {
		http.Redirect(w, r, out.RedirectURL, http.StatusSeeOther)
		return
	}
	s.pages.renderMessage(w, http.StatusOK, "Signed out", "You have been signed out of Keyward. You can close this window.")
}
