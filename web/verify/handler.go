package verify

import (
	"context"
	"errors"
	"net/http"
	"strings"
)

// Headers names the header family a gateway describes the original request
// with. The handler reads only its own family: a gateway that passes client
// headers through (Traefik, Caddy) must not let a client choose the request
// it is judged as by sending another family's headers.
type Headers string

const (
	// HeadersNginx (the zero value): X-Original-URI and X-Original-Method,
	// host from X-Forwarded-Host, else Host. nginx's proxy_set_header
	// overwrites all three.
	HeadersNginx Headers = "nginx"
	// HeadersForwarded: X-Forwarded-Uri, X-Forwarded-Method and
	// X-Forwarded-Host (Traefik forwardAuth, Caddy forward_auth, Kong).
	HeadersForwarded Headers = "forwarded"
	// HeadersEnvoy: only the EnvoyPrefix route is served; the original
	// request is the check request itself (path after the prefix, method,
	// Host). /oauth2/auth answers 404.
	HeadersEnvoy Headers = "envoy"
)

// HandlerOptions configures NewHandler.
type HandlerOptions struct {
	// Headers is the family that describes the original request at
	// /oauth2/auth. Default: HeadersNginx.
	Headers Headers
	// Browser, when set, serves browser mode (/oauth2/start, the callback
	// and /oauth2/sign_out) and lets rules with browser: true accept its
	// session cookie.
	Browser *Browser
	// PassAccessToken adds X-Auth-Request-Access-Token with the bearer token
	// to 200 answers.
	PassAccessToken bool
	// EnvoyPrefix, when set, serves Envoy ext_authz (HTTP service) checks:
	// a request to EnvoyPrefix+"/orders/1" is the check of "/orders/1" with
	// the request's own method, Host and Authorization. It must match the
	// path_prefix configured in Envoy, e.g. "/ext_authz".
	EnvoyPrefix string
	// OnDecision, when set, is called once per check with its outcome (the
	// handler itself never logs; keyward verify logs it at level debug).
	OnDecision func(context.Context, Decision)
}

// Decision describes one check for HandlerOptions.OnDecision. It never
// holds the token nor the query of the request.
type Decision struct {
	Method, Host string
	// Path is the original request's URI without its query.
	Path string
	// Rule is the index of the matching rule in Rules, -1 when none did.
	Rule int
	// Status is the answer: 200, 302 (to sign in), 401, 403, 404 or 503.
	Status int
	// Reason is the refusal's fixed description ("" when allowed).
	Reason string
}

// Outcome is "allow", "sign_in", "unauthenticated", "deny" or "unavailable".
func (d Decision) Outcome() string {
	switch {
	case d.Status == http.StatusOK:
		return "allow"
	case d.Status == http.StatusFound:
		return "sign_in"
	case d.Status == http.StatusUnauthorized:
		return "unauthenticated"
	case d.Status == http.StatusServiceUnavailable:
		return "unavailable"
	}
	return "deny"
}

// NewHandler returns the forward-auth endpoint. It serves:
//
//   - /oauth2/auth (any method): checks the original request, described by
//     the opts.Headers family only: X-Original-URI and X-Original-Method
//     (nginx auth_request) or X-Forwarded-Uri, X-Forwarded-Method
//     (Traefik forwardAuth, Caddy forward_auth). Host is X-Forwarded-Host,
//     else Host; the method falls back to the request's own. nginx must pass
//     the URI (proxy_set_header X-Original-URI $request_uri) and the host
//     (X-Forwarded-Host $host): without a URI the check is refused with 403
//     invalid_request naming the missing header (cause ErrNoRequestURI).
//   - with opts.Browser: /oauth2/start, its callback path and
//     /oauth2/sign_out (see Browser).
//   - opts.EnvoyPrefix + path: Envoy ext_authz, see HandlerOptions.
//   - /healthz: 200 "ok".
//
// Answers: 200 with an empty body and X-Auth-Request-User (the Verifier's
// user claim, default sub), -Preferred-Username (preferred_username, for
// display), -Email (only when email_verified is true), -Groups
// (comma-joined, names escaped as escapeGroup says) and -Subject (sub); 200
// without identity headers for an anonymous rule; 403 when the token lacks
// the user claim; 401 with WWW-Authenticate
// (just realm="keyward" when there is no bearer token); 403 with
// error="insufficient_scope" when the rules deny or nothing matches, and
// with error="invalid_request" for a path Rules.Match refuses as ambiguous; 503 when
// no key set has ever loaded. The handler never logs; opts.OnDecision
// hears each check.
func NewHandler(v *Verifier, rules Rules, opts HandlerOptions) http.Handler {
	return &authHandler{v: v, rules: rules, opts: opts, envoyPrefix: strings.TrimSuffix(opts.EnvoyPrefix, "/"),
		methodRules: rules.restrictMethods()}
}

type authHandler struct {
	v           *Verifier
	rules       Rules
	opts        HandlerOptions
	envoyPrefix string
	methodRules bool // some rule has methods: a method override is refused
}

var (
	errNoRule      = insufficientScope("no rule allows this request")
	errNoUserClaim = insufficientScope("token lacks the configured user claim")
	// The gateway did not say which request it asks about: a configuration
	// error of the gateway, not a refusal by the rules.
	errNoOriginalURI  = missingURI("the gateway sent no X-Original-URI header; nginx needs proxy_set_header X-Original-URI $request_uri")
	errNoForwardedURI = missingURI("the gateway sent no X-Forwarded-Uri header")
	// errFaviconNoSession refuses /favicon.ico without a session rather
	// than start a sign-in for it (see Browser.signInRequired).
	errFaviconNoSession = insufficientScope("no session: a favicon request does not start a sign-in")
)

func (h *authHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch p := r.URL.Path; {
	case p == "/oauth2/auth" && h.opts.Headers != HeadersEnvoy:
		if h.opts.Headers == HeadersForwarded {
			h.check(w, r, forwardedHost(r), headerOr(r.Header, "", "X-Forwarded-Uri"),
				headerOr(r.Header, r.Method, "X-Forwarded-Method"))
			return
		}
		h.check(w, r, forwardedHost(r), headerOr(r.Header, "", "X-Original-Uri"),
			headerOr(r.Header, r.Method, "X-Original-Method"))
	case h.envoyPrefix != "" && strings.HasPrefix(r.RequestURI, h.envoyPrefix):
		uri := r.RequestURI[len(h.envoyPrefix):]
		if uri == "" || uri[0] == '?' {
			uri = "/" + uri
		}
		h.check(w, r, envoyHost(r, h.opts.Headers), uri, r.Method)
	case h.opts.Browser != nil && h.opts.Browser.serves(p):
		h.opts.Browser.ServeHTTP(w, r)
	case p == "/healthz":
		w.Header()["Content-Type"] = textPlain
		_, _ = w.Write(okBody)
	default:
		http.NotFound(w, r)
	}
}

var (
	retryAfterOverloaded = []string{"1"}
	textPlain            = []string{"text/plain; charset=utf-8"}
	okBody               = []byte("ok\n")
)

func (h *authHandler) check(w http.ResponseWriter, r *http.Request, host, uri, method string) {
	var d *Decision
	if h.opts.OnDecision != nil {
		path, _, _ := strings.Cut(uri, "?")
		d = &Decision{Method: method, Host: host, Path: path, Rule: -1}
		defer func() { h.opts.OnDecision(r.Context(), *d) }()
	}
	var rule *Rule
	err := h.missingURI(uri)
	if err == nil {
		rule, err = h.rules.Match(host, uri, method)
	}
	if err == nil && h.methodRules && methodOverridden(r.Header, uri) {
		err = errMethodOverride
	}
	if d != nil && rule != nil {
		d.Rule = h.ruleIndex(rule)
	}
	if err != nil {
		d.refused(writeError(w, err))
		return
	}
	if rule.Allow == AllowAnonymous {
		w.WriteHeader(http.StatusOK)
		d.allowed()
		return
	}
	token, present := bearerToken(r.Header)
	var c *Claims
	switch {
	case present:
		// Raw is read only by a rule's claims requirement.
		c, err = h.v.verifyCached(r.Context(), token, len(rule.Claims) > 0)
	case rule.Browser && h.opts.Browser != nil:
		c, token, err = h.opts.Browser.authenticate(r.Context(), w, r, method)
		if errors.Is(err, ErrNoSession) {
			status, reason := h.opts.Browser.signInRequired(w, r, h.opts.Headers, uri)
			if d != nil {
				d.Status, d.Reason = status, reason
			}
			return
		}
	default:
		d.refused(writeError(w, errNoToken))
		return
	}
	if err == nil {
		err = rule.Authorize(c)
	}
	if err != nil {
		d.refused(writeError(w, err))
		return
	}
	if c.hdr.user == nil {
		d.refused(writeError(w, errNoUserClaim))
		return
	}
	hdr := w.Header()
	hdr["X-Auth-Request-User"] = c.hdr.user
	hdr["X-Auth-Request-Subject"] = c.hdr.subject
	if c.hdr.preferredUsername != nil {
		hdr["X-Auth-Request-Preferred-Username"] = c.hdr.preferredUsername
	}
	if c.hdr.email != nil {
		hdr["X-Auth-Request-Email"] = c.hdr.email
	}
	if c.hdr.groups != nil {
		hdr["X-Auth-Request-Groups"] = c.hdr.groups
	}
	if h.opts.PassAccessToken {
		hdr["X-Auth-Request-Access-Token"] = []string{token}
	}
	w.WriteHeader(http.StatusOK)
	d.allowed()
}

// missingURI refuses a check whose gateway sent no URI header: without it
// no rule could match, and "no rule allows this request" would hide the
// gateway's misconfiguration.
func (h *authHandler) missingURI(uri string) error {
	if uri != "" {
		return nil
	}
	if h.opts.Headers == HeadersForwarded {
		return errNoForwardedURI
	}
	return errNoOriginalURI
}

// ruleIndex is the index of r in h.rules, or -1.
func (h *authHandler) ruleIndex(r *Rule) int {
	for i := range h.rules {
		if &h.rules[i] == r {
			return i
		}
	}
	return -1
}

func (d *Decision) allowed() {
	if d != nil {
		d.Status = http.StatusOK
	}
}

// refused records the answer writeError gave.
func (d *Decision) refused(e *Error) {
	if d == nil {
		return
	}
	d.Status, d.Reason = http.StatusInternalServerError, "internal error"
	if e != nil {
		d.Status, d.Reason = e.Status, e.Description
	}
}

// headerOr returns the first non-empty value of the named (canonical)
// headers, else fallback.
func headerOr(h http.Header, fallback string, names ...string) string {
	for _, name := range names {
		if v := h[name]; len(v) > 0 && v[0] != "" {
			return v[0]
		}
	}
	return fallback
}

// envoyHost is the Host of an Envoy check; with the Envoy family,
// X-Forwarded-Host (a client could send it) is ignored.
func envoyHost(r *http.Request, family Headers) string {
	if family == HeadersEnvoy {
		return r.Host
	}
	return forwardedHost(r)
}

// forwardedHost is the first X-Forwarded-Host entry, else Host.
func forwardedHost(r *http.Request) string {
	if v := r.Header["X-Forwarded-Host"]; len(v) > 0 && v[0] != "" {
		h, _, _ := strings.Cut(v[0], ",")
		return strings.TrimSpace(h)
	}
	return r.Host
}

// bearerToken extracts an RFC 6750 §2.1 token. present is false when there
// is no Authorization header or its scheme is not Bearer; an empty token
// after "Bearer" is returned as present so it fails as malformed.
func bearerToken(h http.Header) (token string, present bool) {
	v := h["Authorization"]
	if len(v) == 0 {
		return "", false
	}
	const scheme = "Bearer "
	if len(v[0]) < len(scheme) || !strings.EqualFold(v[0][:len(scheme)], scheme) {
		return "", false
	}
	return strings.TrimSpace(v[0][len(scheme):]), true
}

// writeError answers with err's status and an RFC 6750 §3 challenge, and
// returns the *Error it answered (nil for a 500). The description is fixed
// text from this package, so it needs no escaping.
func writeError(w http.ResponseWriter, err error) *Error {
	var e *Error
	if !errors.As(err, &e) {
		w.WriteHeader(http.StatusInternalServerError)
		return nil
	}
	switch {
	case e == errNoToken:
		w.Header()["Www-Authenticate"] = []string{`Bearer realm="keyward"`}
	case e == errOverloaded:
		w.Header()["Retry-After"] = retryAfterOverloaded
	case e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden:
		w.Header()["Www-Authenticate"] = []string{`Bearer realm="keyward", error="` + e.Code +
			`", error_description="` + e.Description + `"`}
	}
	w.WriteHeader(e.Status)
	return e
}
