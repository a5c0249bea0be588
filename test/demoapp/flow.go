package demoapp

import (
	"errors"
	"net/http"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// login starts the authorization-code flow with PKCE S256, state and nonce.
func (a *App) login(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	disc, err := a.discover(ctx)
	if err != nil {
		a.log.WarnContext(ctx, "discovery failed", "issuer", a.cfg.Issuer, "err", err)
		a.renderError(w, errorView{
			Status:   http.StatusBadGateway,
			Title:    "Keyward is not reachable",
			Message:  "The app could not read Keyward's discovery document at " + a.cfg.Issuer + ". Is the broker running?",
			Detail:   err.Error(),
			RetryURL: "/login",
		})
		return
	}
	p := pendingLogin{state: randomToken(), nonce: randomToken(), verifier: oauth2.GenerateVerifier()}
	setCookie(w, loginCookieName, p.encode(), loginCookieMaxAge)
	u := disc.oauth2.AuthCodeURL(p.state, oauth2.S256ChallengeOption(p.verifier), oidc.Nonce(p.nonce))
	http.Redirect(w, r, u, http.StatusFound)
}

// callback finishes the flow: state, code exchange with the PKCE verifier,
// ID token signature, issuer, audience, expiry and nonce.
func (a *App) callback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := r.URL.Query()
	var p pendingLogin
	var havePending bool
	if c, err := r.Cookie(loginCookieName); err == nil {
		p, havePending = decodePendingLogin(c.Value)
	}
	clearCookie(w, loginCookieName) // one attempt per cookie

	if code := q.Get("error"); code != "" {
		status := http.StatusBadGateway
		msg := "Keyward did not sign you in."
		if code == "access_denied" {
			status = http.StatusForbidden
			msg = "Access was denied. You may have cancelled, or your account is not allowed to use this app."
		}
		a.log.InfoContext(ctx, "sign-in failed", "event", "login_failed", "error_code", code)
		a.renderError(w, errorView{
			Status: status, Title: "Sign-in failed", Message: msg,
			ErrorCode: code, ErrorDescription: q.Get("error_description"), RetryURL: "/login",
		})
		return
	}
	if !havePending {
		a.renderError(w, errorView{
			Status: http.StatusBadRequest, Title: "Sign-in expired",
			Message:  "This sign-in was not started here, or it took longer than 10 minutes. Please start again.",
			RetryURL: "/login",
		})
		return
	}
	if !sameSecret(q.Get("state"), p.state) {
		a.log.InfoContext(ctx, "sign-in failed: state mismatch", "event", "login_failed")
		a.renderError(w, errorView{
			Status: http.StatusBadRequest, Title: "Sign-in could not be verified",
			Message:  "The state parameter returned by Keyward does not match the one this browser sent. Please start again.",
			RetryURL: "/login",
		})
		return
	}
	code := q.Get("code")
	if code == "" {
		a.renderError(w, errorView{
			Status: http.StatusBadRequest, Title: "Sign-in failed",
			Message: "Keyward's answer carries no authorization code.", RetryURL: "/login",
		})
		return
	}
	disc, err := a.discover(ctx)
	if err != nil {
		a.renderError(w, errorView{
			Status: http.StatusBadGateway, Title: "Keyward is not reachable",
			Message: "Discovery failed.", Detail: err.Error(), RetryURL: "/login",
		})
		return
	}

	tok, err := disc.oauth2.Exchange(a.clientContext(ctx), code, oauth2.VerifierOption(p.verifier))
	if err != nil {
		a.log.WarnContext(ctx, "code exchange failed", "event", "login_failed", "err", err)
		a.renderError(w, tokenErrorView("The authorization code could not be exchanged for tokens.", err))
		return
	}
	rawID, _ := tok.Extra("id_token").(string)
	if rawID == "" {
		a.renderError(w, errorView{
			Status: http.StatusBadGateway, Title: "Sign-in failed",
			Message: "The token response carries no ID token. Was the openid scope granted?", RetryURL: "/login",
		})
		return
	}
	idt, err := disc.verifier.Verify(ctx, rawID)
	if err != nil {
		a.log.WarnContext(ctx, "id token rejected", "event", "login_failed", "err", err)
		a.renderError(w, errorView{
			Status: http.StatusBadGateway, Title: "ID token rejected",
			Message: "The ID token did not verify.", Detail: err.Error(), RetryURL: "/login",
		})
		return
	}
	if !sameSecret(idt.Nonce, p.nonce) { // OIDC Core §3.1.3.7 step 11
		a.log.WarnContext(ctx, "id token nonce mismatch", "event", "login_failed", "sub", idt.Subject)
		a.renderError(w, errorView{
			Status: http.StatusBadGateway, Title: "ID token rejected",
			Message: "The ID token's nonce does not match this sign-in.", RetryURL: "/login",
		})
		return
	}

	if old, ok := a.sessionFromRequest(r); ok {
		a.sessions.delete(old.id)
	}
	now := a.now()
	sess := session{
		id:       randomToken(),
		csrf:     randomToken(),
		token:    tok,
		idToken:  rawID,
		subject:  idt.Subject,
		nonce:    p.nonce,
		signedIn: now,
		expires:  now.Add(sessionLifetime),
	}
	a.sessions.put(sess, now)
	setCookie(w, sessionCookieName, sess.id, sessionLifetime)
	a.log.InfoContext(ctx, "signed in", "event", "login_succeeded", "sub", idt.Subject)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// refresh runs the refresh grant and replaces the session's tokens.
func (a *App) refresh(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	a.refreshMu.Lock()
	defer a.refreshMu.Unlock()

	sess, ok := a.sessionFromRequest(r)
	if !ok {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	if !checkCSRF(r, sess) {
		a.renderError(w, csrfErrorView())
		return
	}
	if sess.token.RefreshToken == "" {
		a.renderError(w, errorView{
			Status: http.StatusBadRequest, Title: "No refresh token",
			Message: "Keyward issued no refresh token for this sign-in. Request the offline_access scope to get one.",
			BackURL: "/",
		})
		return
	}
	disc, err := a.discover(ctx)
	if err != nil {
		a.renderError(w, errorView{
			Status: http.StatusBadGateway, Title: "Keyward is not reachable",
			Message: "Discovery failed.", Detail: err.Error(), BackURL: "/",
		})
		return
	}

	// A token with only a refresh token is invalid, so the source refreshes at once.
	tok, err := disc.oauth2.TokenSource(a.clientContext(ctx), &oauth2.Token{RefreshToken: sess.token.RefreshToken}).Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.ErrorCode == "invalid_grant" {
			// The grant is gone (expired, revoked, or the person was deprovisioned).
			a.sessions.delete(sess.id)
			clearCookie(w, sessionCookieName)
			a.log.InfoContext(ctx, "refresh rejected; session ended", "sub", sess.subject)
			v := tokenErrorView("Keyward rejected the refresh token, so this session has ended. Sign in again.", err)
			v.Status = http.StatusForbidden
			v.Title = "Session ended"
			v.RetryURL, v.RetryLabel = "/login", "Sign in again"
			a.renderError(w, v)
			return
		}
		a.log.WarnContext(ctx, "refresh failed", "sub", sess.subject, "err", err)
		v := tokenErrorView("The tokens could not be refreshed.", err)
		v.RetryURL, v.BackURL = "", "/"
		a.renderError(w, v)
		return
	}

	if rawID, _ := tok.Extra("id_token").(string); rawID != "" {
		idt, err := disc.verifier.Verify(ctx, rawID)
		switch {
		case err != nil:
			a.renderError(w, errorView{
				Status: http.StatusBadGateway, Title: "ID token rejected",
				Message: "The refreshed ID token did not verify.", Detail: err.Error(), BackURL: "/",
			})
			return
		case idt.Subject != sess.subject || (idt.Nonce != "" && !sameSecret(idt.Nonce, sess.nonce)): // OIDC Core §12.2
			a.renderError(w, errorView{
				Status: http.StatusBadGateway, Title: "ID token rejected",
				Message: "The refreshed ID token names another subject or sign-in.", BackURL: "/",
			})
			return
		}
		sess.idToken = rawID
	}
	sess.token = tok
	sess.refreshed = a.now()
	sess.refreshes++
	a.sessions.update(sess)
	a.log.InfoContext(ctx, "tokens refreshed", "event", "token_issued", "sub", sess.subject)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// logout ends the local session only; the Keyward session stays, so the next
// sign-in may not ask for credentials again (that is single sign-on).
func (a *App) logout(w http.ResponseWriter, r *http.Request) {
	sess, ok := a.sessionFromRequest(r)
	if ok {
		if !checkCSRF(r, sess) {
			a.renderError(w, csrfErrorView())
			return
		}
		a.sessions.delete(sess.id)
		a.log.InfoContext(r.Context(), "signed out", "sub", sess.subject)
	}
	clearCookie(w, sessionCookieName)
	http.Redirect(w, r, "/?signed_out=1", http.StatusSeeOther)
}

func csrfErrorView() errorView {
	return errorView{
		Status: http.StatusForbidden, Title: "Request refused",
		Message: "The form's CSRF token does not match this session. Reload the page and try again.",
		BackURL: "/",
	}
}

// tokenErrorView describes a failed token request, with the OAuth error code
// and description when the token endpoint sent them (RFC 6749 §5.2).
func tokenErrorView(msg string, err error) errorView {
	v := errorView{Status: http.StatusBadGateway, Title: "Token request failed", Message: msg, RetryURL: "/login"}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.ErrorCode != "" {
		v.ErrorCode, v.ErrorDescription = re.ErrorCode, re.ErrorDescription
	} else {
		v.Detail = err.Error()
	}
	return v
}
