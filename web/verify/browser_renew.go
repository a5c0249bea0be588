package verify

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// Renewal. A gateway asks /oauth2/auth in a subrequest (nginx auth_request,
// Caddy forward_auth, Traefik forwardAuth), and what that answer sets is not
// reliably passed to the browser: Caddy drops a 2xx answer's Set-Cookie and
// nginx passes on one header at most, while a session may take several
// cookies. So the check never renews. When a session is due, a page request
// is sent, as for a sign-in, to /oauth2/start, which the gateway proxies to
// the verifier as an ordinary request: start renews the session there, sets
// every cookie on its own answer and redirects back to rd.

// errRenew is the check's answer to a session that /oauth2/start must renew
// first. It matches ErrNoSession: the gateway sends the browser the same way.
var errRenew = fmt.Errorf("%w: renewal due", ErrNoSession)

// sessionAction is what a check does with a session's access token.
type sessionAction int

const (
	sessionPass  sessionAction = iota // the token serves this request
	sessionRenew                      // keep the session; /oauth2/start renews it
	sessionEnd                        // clear the session; /oauth2/start signs in again
)

// decideSession decides for a session whose access token verifies (valid;
// else it has expired) and is due for renewal (due, always when !valid),
// with a refresh token (renewable), on a request for a page (navigation).
// A page is renewed as soon as it is due; anything else (a script's fetch,
// a form POST whose body a redirect would lose) goes on with the token while
// it is valid, and then gets 401 until a page renews the session.
func decideSession(valid, due, renewable, navigation bool) sessionAction {
	switch {
	case valid && !due:
		return sessionPass
	case renewable && navigation:
		return sessionRenew
	case valid:
		return sessionPass
	case renewable:
		return sessionRenew
	default:
		return sessionEnd
	}
}

// isNavigation reports whether a request for method with header h is a
// browser loading a page: a GET with Sec-Fetch-Mode: navigate or, from a
// client that sends no Sec-Fetch-Mode, an Accept naming text/html. A
// gateway's check carries the client's headers.
func isNavigation(method string, h http.Header) bool {
	return method == http.MethodGet && acceptsPage(h)
}

// acceptsPage is isNavigation for any method.
func acceptsPage(h http.Header) bool {
	if m := h.Get("Sec-Fetch-Mode"); m != "" {
		return m == "navigate"
	}
	return strings.Contains(h.Get("Accept"), "text/html")
}

// authenticate returns the claims and access token of r's session, the
// check of a request for method. It never renews (see above): it returns
// errRenew when /oauth2/start must renew the session first and ErrNoSession
// when there is no usable session (clearing a useless cookie on w); with no
// key set ever loaded, an error matching ErrUnavailable.
func (b *Browser) authenticate(ctx context.Context, w http.ResponseWriter, r *http.Request, method string) (*Claims, string, error) {
	s, ok := b.readSession(r)
	if !ok {
		return nil, "", ErrNoSession
	}
	c, due, err := b.accessState(ctx, s.Access)
	switch {
	case errors.Is(err, ErrUnavailable):
		return nil, "", err
	case err != nil:
		b.clearSession(w, r)
		return nil, "", ErrNoSession
	}
	switch decideSession(c != nil, due, s.Refresh != "", isNavigation(method, r.Header)) {
	case sessionPass:
		return c, s.Access, nil
	case sessionRenew:
		return nil, "", errRenew
	default:
		b.clearSession(w, r)
		return nil, "", ErrNoSession
	}
}

// accessState verifies a session's access token: c is its claims, nil when
// it has expired; due reports that it expires within the renewal window
// (always when expired). Any other failure is returned.
func (b *Browser) accessState(ctx context.Context, access string) (c *Claims, due bool, err error) {
	c, err = b.v.Verify(ctx, access)
	var expired *ExpiredError
	switch {
	case err == nil:
		return c, !b.cfg.Now().Add(b.renewWindow(c)).Before(c.ExpiresAt), nil
	case errors.As(err, &expired):
		return nil, true, nil
	default:
		return nil, false, err
	}
}

// renewWindow is how long before its expiry a token is renewed:
// RefreshBefore, but at most half the token's lifetime (exp − iat), so that a
// renewed token is never due at once (which would send every page through
// /oauth2/start again).
func (b *Browser) renewWindow(c *Claims) time.Duration {
	w := b.cfg.RefreshBefore
	if !c.IssuedAt.IsZero() {
		w = min(w, c.ExpiresAt.Sub(c.IssuedAt)/2)
	}
	return w
}

// renew renews r's session, when it is due and holds a refresh token, and
// sets the new cookies on w. It reports whether it did; on a refused
// refresh it clears the session, and the caller signs in again. Parallel
// renewals of one session share one refresh (refreshGroup).
func (b *Browser) renew(ctx context.Context, w http.ResponseWriter, r *http.Request) bool {
	s, ok := b.readSession(r)
	if !ok || s.Refresh == "" {
		return false
	}
	if _, due, err := b.accessState(ctx, s.Access); err != nil || !due {
		return false // a fresh session is signed in again, as before
	}
	tok, err := b.refreshes.do(ctx, s.Refresh, b.cfg.Now(), func(ctx context.Context) (*oauth2.Token, error) {
		oc, err := b.oauthConfig(ctx)
		if err != nil {
			return nil, err
		}
		return oc.TokenSource(b.clientContext(ctx), &oauth2.Token{RefreshToken: s.Refresh, Expiry: time.Unix(1, 0)}).Token()
	})
	if err == nil {
		if _, err = b.v.Verify(ctx, tok.AccessToken); err == nil {
			ns := browserSession{Access: tok.AccessToken, Refresh: tok.RefreshToken, IDToken: s.IDToken}
			if ns.Refresh == "" {
				ns.Refresh = s.Refresh
			}
			if id, _ := tok.Extra("id_token").(string); id != "" {
				ns.IDToken = id
			}
			b.setSession(w, r, ns)
			return true
		}
	}
	b.clearSession(w, r)
	return false
}

// signInRequired answers a check without a usable session, or one that
// /oauth2/start must renew: 401 for nginx, whose error_page sends the
// browser to /oauth2/start; for other gateways a 302 to /oauth2/start when
// the request is for a page, else 401. A browser's own /favicon.ico request
// (it fetches one for every page, the sign-in error pages included) never
// starts a sign-in: 404 (403 for nginx, whose auth_request turns any other
// status into 500).
// It returns the status and reason it answered, for HandlerOptions.OnDecision.
func (b *Browser) signInRequired(w http.ResponseWriter, r *http.Request, family Headers, uri string) (int, string) {
	const noSession = "no browser session"
	if p, _, _ := strings.Cut(uri, "?"); p == "/favicon.ico" {
		if family == HeadersNginx {
			e := writeError(w, errFaviconNoSession)
			return e.Status, e.Description
		}
		w.WriteHeader(http.StatusNotFound)
		return http.StatusNotFound, noSession + ": a favicon request does not start a sign-in"
	}
	if family != HeadersNginx && acceptsPage(r.Header) {
		w.Header().Set("Location", "/oauth2/start?rd="+url.QueryEscape(uri))
		w.WriteHeader(http.StatusFound)
		return http.StatusFound, noSession
	}
	writeError(w, errNoToken)
	return http.StatusUnauthorized, noSession
}
