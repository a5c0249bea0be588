package verify

import (
	"errors"
	"net/http"
	"strings"
)

// HandlerOptions configures NewHandler.
type HandlerOptions struct {
	// PassAccessToken adds X-Auth-Request-Access-Token with the bearer token
	// to 200 answers.
	PassAccessToken bool
	// EnvoyPrefix, when set, serves Envoy ext_authz (HTTP service) checks:
	// a request to EnvoyPrefix+"/orders/1" is the check of "/orders/1" with
	// the request's own method, Host and Authorization. It must match the
	// path_prefix configured in Envoy, e.g. "/ext_authz".
	EnvoyPrefix string
}

// NewHandler returns the forward-auth endpoint. It serves:
//
//   - /oauth2/auth (any method): checks the original request, described by
//     X-Original-URI and X-Original-Method (nginx auth_request) or
//     X-Forwarded-Uri, X-Forwarded-Method and X-Forwarded-Host (Traefik
//     forwardAuth, Caddy forward_auth). Host is X-Forwarded-Host, else Host;
//     the method falls back to the request's own. nginx must pass the URI
//     (proxy_set_header X-Original-URI $request_uri) and the host
//     (X-Forwarded-Host $host): without a URI no rule matches.
//   - opts.EnvoyPrefix + path: Envoy ext_authz, see HandlerOptions.
//   - /healthz: 200 "ok".
//
// Answers: 200 with an empty body and X-Auth-Request-User (preferred_username,
// else email, else sub), -Email, -Groups (comma-joined) and -Subject; 200
// without identity headers for an anonymous rule; 401 with WWW-Authenticate
// (just realm="keyward" when there is no bearer token); 403 with
// error="insufficient_scope" when the rules deny or nothing matches; 503 when
// no key set has ever loaded. The handler never logs.
func NewHandler(v *Verifier, rules Rules, opts HandlerOptions) http.Handler {
	return &authHandler{v: v, rules: rules, opts: opts, envoyPrefix: strings.TrimSuffix(opts.EnvoyPrefix, "/")}
}

type authHandler struct {
	v           *Verifier
	rules       Rules
	opts        HandlerOptions
	envoyPrefix string
}

var errNoRule = insufficientScope("no rule allows this request")

func (h *authHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch p := r.URL.Path; {
	case p == "/oauth2/auth":
		h.check(w, r, forwardedHost(r), headerOr(r.Header, "", "X-Original-Uri", "X-Forwarded-Uri"),
			headerOr(r.Header, r.Method, "X-Original-Method", "X-Forwarded-Method"))
	case h.envoyPrefix != "" && strings.HasPrefix(r.RequestURI, h.envoyPrefix):
		uri := r.RequestURI[len(h.envoyPrefix):]
		if uri == "" || uri[0] == '?' {
			uri = "/" + uri
		}
		h.check(w, r, forwardedHost(r), uri, r.Method)
	case p == "/healthz":
		w.Header()["Content-Type"] = textPlain
		_, _ = w.Write(okBody)
	default:
		http.NotFound(w, r)
	}
}

var (
	textPlain = []string{"text/plain; charset=utf-8"}
	okBody    = []byte("ok\n")
)

func (h *authHandler) check(w http.ResponseWriter, r *http.Request, host, uri, method string) {
	rule, found := h.rules.Match(host, uri, method)
	if !found {
		writeError(w, errNoRule)
		return
	}
	if rule.Allow == AllowAnonymous {
		w.WriteHeader(http.StatusOK)
		return
	}
	token, present := bearerToken(r.Header)
	if !present {
		writeError(w, errNoToken)
		return
	}
	c, err := h.v.Verify(r.Context(), token)
	if err == nil {
		err = rule.Authorize(c)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	hdr := w.Header()
	hdr["X-Auth-Request-User"] = c.hdr.user
	hdr["X-Auth-Request-Subject"] = c.hdr.subject
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

// writeError answers with err's status and an RFC 6750 §3 challenge. The
// description is fixed text from this package, so it needs no escaping.
func writeError(w http.ResponseWriter, err error) {
	var e *Error
	if !errors.As(err, &e) {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	switch {
	case e == errNoToken:
		w.Header()["Www-Authenticate"] = []string{`Bearer realm="keyward"`}
	case e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden:
		w.Header()["Www-Authenticate"] = []string{`Bearer realm="keyward", error="` + e.Code +
			`", error_description="` + e.Description + `"`}
	}
	w.WriteHeader(e.Status)
}
