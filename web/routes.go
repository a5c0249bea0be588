package web

import (
	"net/http"
	"slices"
	"strings"

	"github.com/keyward/keyward/broker"
)

// Body limits: forms at the OAuth endpoints are small.
const (
	maxFormBytes = 64 << 10
)

// routes lists every route of the broker.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	var paths []string
	allowed := map[string][]string{} // path → methods
	handle := func(pattern, route string, h http.HandlerFunc) {
		mux.Handle(pattern, s.metrics.instrument(route, s.withClientAddr(route, traceServer(s.cfg.TracerProvider, pattern, s.limit(route, h)))))
		method, path, _ := strings.Cut(pattern, " ")
		if _, ok := allowed[path]; !ok {
			paths = append(paths, path)
		}
		allowed[path] = append(allowed[path], method)
		if method == http.MethodGet {
			allowed[path] = append(allowed[path], http.MethodHead)
		}
	}
	handle("GET /.well-known/openid-configuration", "discovery", s.discovery)
	handle("GET /keys", "keys", s.keys)
	handle("GET /authorize", "authorize", s.authorize)
	handle("POST /authorize", "authorize", s.authorize)
	handle("GET /login/{upstream}", "login", s.chooseUpstream)
	handle("GET /callback", "callback", s.callback)
	handle("POST /token", "token", s.token)
	handle("POST /revoke", "revoke", s.revoke)
	handle("POST /introspect", "introspect", s.introspect)
	handle("GET /userinfo", "userinfo", s.userinfo)
	handle("POST /userinfo", "userinfo", s.userinfo)
	handle("GET /end_session", "end_session", s.endSession)
	handle("POST /end_session", "end_session", s.endSession)
	handle("POST "+endSessionConfirmPath, "end_session_confirm", s.endSessionConfirm)
	handle("GET "+broker.UpstreamLogoutPath, "logout_upstream_done", s.upstreamLogoutDone)
	handle("GET /revocations", "revocations", s.revocations)
	handle("POST /backchannel_logout/{upstream}", "backchannel_logout", s.backchannelLogout)
	handle("POST /ssf/{upstream}/events", "ssf_events", s.ssfEvents)
	handle("GET /{$}", "home", s.home)
	handle("GET /healthz", "healthz", s.healthz)
	handle("GET /readyz", "readyz", s.readyz)
	// Another method on a known path is 405, not the catch-all's 404.
	for _, p := range paths {
		allow := strings.Join(slices.Sorted(slices.Values(allowed[p])), ", ")
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
		})
	}
	if s.cfg.SCIM != nil { // every method; web/scim answers SCIM errors
		mux.Handle("/scim/v2/", s.metrics.instrument("scim", s.scimSecure(s.cfg.SCIM)))
	}
	if s.cfg.Console != nil {
		mux.Handle("/console/", s.metrics.instrument("console", s.cfg.Console))
	}
	mux.Handle("GET /static/", staticHandler())
	mux.HandleFunc("/", s.notFound)

	// Outermost first.
	return chain(mux,
		s.requestID,
		s.accessLog,
		s.recoverPanic,
		limitBody(maxFormBytes),
		securityHeaders,
	)
}

// chain wraps h so that the first middleware runs first.
func chain(h http.Handler, mws ...func(http.Handler) http.Handler) http.Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}
