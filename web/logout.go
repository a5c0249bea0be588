package web

import (
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/keyward/keyward/broker"
)

// Upstream logout: the browser's round trip through the upstream's logout.
const (
	// logoutCookieTTL bounds the round trip; some upstreams ask "Sign out?"
	// first.
	logoutCookieTTL = 15 * time.Minute
	// maxLogoutCookie keeps the sealed cookie under browsers' 4 KiB limit.
	maxLogoutCookie = 3500
)

// endSessionConfirmPath is where the sign-out confirmation form posts.
const endSessionConfirmPath = "/end_session/confirm"

// csrfEndSession is the purpose of the confirmation form's CSRF token.
const csrfEndSession = "end_session"

// endSession serves GET and POST /end_session (OIDC RP-Initiated Logout
// 1.0): it ends the Keyward session of the browser's session cookie,
// clears the cookie and sends the browser to the client's post-logout
// redirect URI, or shows the "Signed out" page. When the broker wants the
// person to confirm first (no id_token_hint naming this session), it shows
// the confirmation form, which posts to endSessionConfirm. A bad request
// is an error page, never a redirect, and leaves the session alone. With
// upstream logout, the browser first goes to the upstream's logout,
// carrying where to go next in a sealed cookie, and returns to
// upstreamLogoutDone.
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
	sid := s.cookies.get(r, s.cookies.session)
	out, err := s.b.EndSession(r.Context(), broker.EndSessionInput{
		IDTokenHint:           q.Get("id_token_hint"),
		ClientID:              q.Get("client_id"),
		PostLogoutRedirectURI: q.Get("post_logout_redirect_uri"),
		State:                 q.Get("state"),
		SessionID:             sid,
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if c := out.Confirm; c != nil {
		s.renderLogoutConfirmation(w, sid, c)
		return
	}
	s.finishEndSession(w, r, out)
}

// renderLogoutConfirmation asks the person whether to sign out of
// Keyward: a form posting the validated request back, with a CSRF token
// bound to the session cookie.
func (s *Server) renderLogoutConfirmation(w http.ResponseWriter, sid string, c *broker.LogoutConfirmation) {
	msg := "An application asked to sign you out of Keyward."
	if c.ClientName != "" {
		msg = c.ClientName + " asked to sign you out of Keyward."
	}
	fields := []formField{{"csrf", s.cookies.csrfToken(csrfEndSession, sid)}}
	for _, f := range []formField{{"client_id", c.ClientID}, {"post_logout_redirect_uri", c.PostLogoutRedirectURI}, {"state", c.State}} {
		if f.Value != "" {
			fields = append(fields, f)
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	s.pages.renderConfirm(w, confirmPageData{
		Title:   "Sign out of Keyward?",
		Message: msg + " You will have to sign in again in every application that uses your Keyward session.",
		Action:  endSessionConfirmPath,
		Fields:  fields,
		Button:  "Sign out",
		Note:    "If you did not ask to sign out, close this page: you stay signed in.",
	})
}

// endSessionConfirm serves POST /end_session/confirm, the confirmation
// form: with the CSRF token of the browser's own session cookie it ends
// that session as endSession would; without it (a form posted from
// another site or browser, or the session has changed) it is a 403 page
// and ends nothing.
func (s *Server) endSessionConfirm(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	sid := s.cookies.get(r, s.cookies.session)
	if err := r.ParseForm(); err != nil || !s.cookies.checkCSRF(csrfEndSession, sid, r.PostForm.Get("csrf")) {
		s.log.InfoContext(ctx, "end session confirmation refused: no valid CSRF token for this browser's session", "event", "end_session")
		s.pages.renderError(w, errorPageData{
			Status: http.StatusForbidden,
			Title:  "Sign-out not confirmed",
			Message: "This sign-out form did not come from Keyward's page in this browser, or your session has changed since. " +
				"You have not been signed out. Return to the application and sign out again.",
			RequestID: RequestID(ctx),
		})
		return
	}
	q := r.PostForm
	out, err := s.b.EndSession(ctx, broker.EndSessionInput{
		ClientID:              q.Get("client_id"),
		PostLogoutRedirectURI: q.Get("post_logout_redirect_uri"),
		State:                 q.Get("state"),
		SessionID:             sid,
		Confirmed:             true,
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.finishEndSession(w, r, out)
}

// finishEndSession answers a logout that ended (or found nothing to
// end): the session cookie goes, then the upstream's logout, the client's
// redirect or the "Signed out" page.
func (s *Server) finishEndSession(w http.ResponseWriter, r *http.Request, out broker.EndSessionOutcome) {
	w.Header().Set("Cache-Control", "no-store")
	s.cookies.clear(w, s.cookies.session)
	if up := out.Upstream; up != nil {
		if s.sendUpstreamLogout(w, r, up) {
			return
		}
	}
	if out.RedirectURL != "" {
		http.Redirect(w, r, out.RedirectURL, http.StatusSeeOther)
		return
	}
	s.renderSignedOut(w)
}

func (s *Server) renderSignedOut(w http.ResponseWriter) {
	s.pages.renderMessage(w, http.StatusOK, "Signed out", "You have been signed out of Keyward. You can close this window.")
}

// logoutState is what the logout cookie carries through the upstream.
type logoutState struct {
	Upstream string `json:"u"`
	State    string `json:"s,omitempty"` // sent to the upstream; "" = none
	Next     string `json:"n,omitempty"` // validated by the broker; "" = the Signed out page
	Expires  int64  `json:"e"`           // Unix seconds
}

// logoutCookie is the name of the cookie that carries a logoutState.
func (s *Server) logoutCookie() string {
	if s.cookies.secure {
		return "__Host-keyward-logout"
	}
	return "keyward-logout"
}

// sendUpstreamLogout seals up into the logout cookie and redirects to the
// upstream's logout. It reports false, having written nothing, when the
// state does not fit in a cookie (a client state of kilobytes): the person
// is then signed out of Keyward only.
func (s *Server) sendUpstreamLogout(w http.ResponseWriter, r *http.Request, up *broker.UpstreamLogout) bool {
	expires := s.cfg.Now().Add(logoutCookieTTL)
	raw, err := json.Marshal(logoutState{Upstream: up.UpstreamID, State: up.State, Next: up.Next, Expires: expires.Unix()})
	if err != nil {
		return false
	}
	value := base64.RawURLEncoding.EncodeToString(raw)
	if len(value) > maxLogoutCookie {
		s.log.WarnContext(r.Context(), "upstream logout skipped: the post-logout redirect is too long for a cookie",
			"event", "end_session", "upstream", up.UpstreamID, "bytes", len(value))
		return false
	}
	s.cookies.set(w, s.logoutCookie(), value, expires)
	http.Redirect(w, r, up.URL, http.StatusSeeOther)
	return true
}

// upstreamLogoutDone serves GET /logout/upstream-done, where the upstream
// returns the browser after signing the person out. It goes only where the
// sealed logout cookie says, a destination the broker validated before the
// browser left; a missing, forged or expired cookie, or a returned state
// that differs from the one sent, is an error page and no redirect. A state
// that does not come back at all is accepted: not every upstream returns
// it (Cognito's logout_uri never does), and the cookie alone decides the
// destination.
func (s *Server) upstreamLogoutDone(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	w.Header().Set("Cache-Control", "no-store")
	name := s.logoutCookie()
	st, err := s.openLogoutState(r, name)
	s.cookies.clear(w, name) // one use
	if err == nil && st.State != "" {
		if got := r.URL.Query().Get("state"); got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(st.State)) != 1 {
			err = errors.New("the returned state is not the one sent")
		}
	}
	if err != nil {
		s.log.InfoContext(ctx, "upstream logout return refused", "event", "end_session", "err", err)
		s.pages.renderError(w, errorPageData{
			Status: http.StatusBadRequest,
			Title:  "Sign-out could not be finished",
			Message: "Keyward cannot tell where to send you after signing out at your identity provider: this link is invalid or has expired. " +
				"If you were signing out, your Keyward session has already ended; return to the application.",
			RequestID: RequestID(ctx),
		})
		return
	}
	s.log.InfoContext(ctx, "upstream logout done", "event", "end_session", "upstream", st.Upstream, "redirect", st.Next != "")
	if st.Next != "" {
		http.Redirect(w, r, st.Next, http.StatusSeeOther)
		return
	}
	s.renderSignedOut(w)
}

// openLogoutState reads the logout cookie; an error says why it is unusable
// (never its content).
func (s *Server) openLogoutState(r *http.Request, name string) (logoutState, error) {
	if _, err := r.Cookie(name); err != nil {
		return logoutState{}, errors.New("no logout cookie (another browser, or it expired)")
	}
	value := s.cookies.get(r, name)
	if value == "" {
		return logoutState{}, errors.New("the logout cookie's seal is broken")
	}
	raw, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil {
		return logoutState{}, fmt.Errorf("decode logout cookie: %w", err)
	}
	var st logoutState
	if err := json.Unmarshal(raw, &st); err != nil {
		return logoutState{}, fmt.Errorf("decode logout cookie: %w", err)
	}
	if !s.cfg.Now().Before(time.Unix(st.Expires, 0)) {
		return logoutState{}, errors.New("the logout cookie has expired")
	}
	return st, nil
}
