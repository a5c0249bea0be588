package web

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/keyward/keyward/broker"
)

// loginCookieTTL bounds the browser binding of login attempts.
const loginCookieTTL = 30 * time.Minute

func (s *Server) discovery(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	_, _ = w.Write(s.b.Discovery())
}

// home is the landing page at the issuer's root: the issuer, where its
// discovery document and keys are, and the version; nothing secret.
func (s *Server) home(w http.ResponseWriter, r *http.Request) {
	iss := s.b.Issuer()
	version := s.cfg.Version
	if version == "" {
		version = "unknown"
	}
	s.pages.renderHome(w, homeData{Issuer: iss, DiscoveryURL: iss + "/.well-known/openid-configuration", JWKSURL: iss + "/keys", Version: version})
}

func (s *Server) keys(w http.ResponseWriter, r *http.Request) {
	body, maxAge := s.cfg.Keys.JWKS()
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age="+strconv.Itoa(int(maxAge.Seconds())))
	w.Header().Set("Access-Control-Allow-Origin", "*")
	_, _ = w.Write(body)
}

func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	out, err := s.b.Authorize(ctx, broker.AuthorizeInput{
		Request:   r,
		SessionID: s.cookies.get(r, s.cookies.session),
		Binding:   s.cookies.get(r, s.cookies.login),
		ClientIP:  clientIP(r, s.cfg.TrustedProxies),
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.follow(w, r, out)
}

// follow carries out a broker outcome: cookies first, then the response.
func (s *Server) follow(w http.ResponseWriter, r *http.Request, out broker.Outcome) {
	ctx := r.Context()
	w.Header().Set("Cache-Control", "no-store")
	if out.ClearSession {
		s.cookies.clear(w, s.cookies.session)
	}
	if out.Session != nil {
		s.cookies.set(w, s.cookies.session, out.Session.ID, out.Session.ExpiresAt)
	}
	if out.Binding != "" {
		s.cookies.set(w, s.cookies.login, out.Binding, s.cfg.Now().Add(loginCookieTTL))
	}
	switch {
	case out.Client != nil:
		s.b.WriteClientAnswer(ctx, w, out.Client)
	case out.Chooser != nil:
		d := chooserData{ClientName: out.Chooser.ClientName}
		status := http.StatusServiceUnavailable // until one upstream is available
		for _, u := range out.Chooser.Upstreams {
			cu := chooserUpstream{ID: u.ID, Name: u.Name, Unavailable: u.Unavailable}
			if u.Unavailable {
				cu.Reason = upstreamUnavailableReason(u.Name)
			} else {
				cu.URL = "/login/" + url.PathEscape(u.ID) + "?attempt=" + url.QueryEscape(out.Chooser.AttemptID)
				status = http.StatusOK
			}
			d.Upstreams = append(d.Upstreams, cu)
		}
		if status != http.StatusOK { // nothing to choose: an error, with a reference for support
			d.RequestID = RequestID(ctx)
		}
		s.pages.renderChooser(w, status, d)
	case out.RedirectURL != "":
		http.Redirect(w, r, out.RedirectURL, http.StatusSeeOther)
	default:
		s.writeError(w, r, errors.New("broker returned an empty outcome"))
	}
}

func (s *Server) chooseUpstream(w http.ResponseWriter, r *http.Request) {
	to, err := s.b.ChooseUpstream(r.Context(), broker.ChooseInput{
		AttemptID:  r.URL.Query().Get("attempt"),
		UpstreamID: r.PathValue("upstream"),
		Binding:    s.cookies.get(r, s.cookies.login),
		ClientIP:   clientIP(r, s.cfg.TrustedProxies),
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, to, http.StatusSeeOther)
}

func (s *Server) callback(w http.ResponseWriter, r *http.Request) {
	out, err := s.b.Callback(r.Context(), broker.CallbackInput{
		Query:   r.URL.Query(),
		Binding: s.cookies.get(r, s.cookies.login),
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.follow(w, r, out)
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	s.b.Token(r.Context(), w, r)
}

func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	s.b.Revoke(r.Context(), w, r)
}

func (s *Server) introspect(w http.ResponseWriter, r *http.Request) {
	s.b.Introspect(r.Context(), w, r)
}

func (s *Server) userinfo(w http.ResponseWriter, r *http.Request) {
	s.b.UserInfo(r.Context(), w, r)
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

// readyz answers load balancers: 503 "not ready" when Config.Ready fails
// or when no upstream can take sign-ins, else 200 "ready". The upstreams
// that cannot take sign-ins (discovery still failing) are listed by id
// either way, one line "unavailable upstreams: a, b".
//
// One unavailable upstream among several does not fail it: every replica
// shares the same upstreams, so a failing probe would pull all of them
// from the load balancer and stop sign-ins through the upstreams that
// work, and single sign-on, refresh and token exchange with them.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	ups := s.b.UpstreamStatus()
	var down []string
	for _, u := range ups {
		if u.Err != nil {
			down = append(down, u.ID)
		}
	}
	var detail string
	if len(down) > 0 {
		detail = "unavailable upstreams: " + strings.Join(down, ", ") + "\n"
	}
	notReady := func() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("not ready\n" + detail))
	}
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(r.Context()); err != nil {
			s.log.WarnContext(r.Context(), "not ready", "err", err)
			notReady()
			return
		}
	}
	if len(ups) > 0 && len(down) == len(ups) {
		// federation logs each failed discovery; a probe adds nothing.
		s.log.DebugContext(r.Context(), "not ready: no upstream is available", "upstreams", down)
		notReady()
		return
	}
	_, _ = w.Write([]byte("ready\n" + detail))
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	s.pages.renderError(w, errorPageData{Status: http.StatusNotFound, Title: "Page not found", Message: "There is nothing at this address.", RequestID: RequestID(r.Context())})
}

// writeError turns an error from a browser flow into a page: a
// broker.Refusal gets its page (refusals.go); anything else is a server
// error whose details are only logged, under the request id.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	ctx := r.Context()
	w.Header().Set("Cache-Control", "no-store")
	var re *broker.Refusal
	if !errors.As(err, &re) {
		s.log.ErrorContext(ctx, "request failed", "err", err)
		d := serverErrorPage()
		d.RequestID = RequestID(ctx)
		s.pages.renderError(w, d)
		return
	}
	d := refusalPage(re)
	d.RequestID = RequestID(ctx)
	if re.Kind == broker.RefusedAccessRemoved {
		d.Contact, d.ContactURL = s.cfg.Pages.AccessRemovedContact, s.cfg.Pages.AccessRemovedContactURL
	}
	if le := re.Limited; le != nil {
		// The broker logs refusals, at most once a minute per client.
		s.metrics.loginLimited.WithLabelValues(le.Scope).Inc()
		w.Header().Set("Retry-After", strconv.Itoa(int(le.RetryAfter/time.Second)))
	} else {
		s.log.InfoContext(ctx, "sign-in page error", "title", d.Title, "refusal", re.Kind, "err", err)
	}
	s.pages.renderError(w, d)
}
