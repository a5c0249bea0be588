package web

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/web/shed"
)

// Overload shedding. Each endpoint class has a fixed number of request
// slots (web/shed); a request that finds them all taken is answered at once
// with 503 and Retry-After instead of waiting in line behind work the
// process cannot finish any faster. The defaults scale with the CPUs
// (GOMAXPROCS) and stay above what the benchmarks run (c=32):
//
//   - token (/token, /revoke, /introspect, /userinfo): 32 per CPU, at least
//     64. A refresh costs about 6 ms of CPU with RS256 and bbolt+fsync
//     (docs/performance.md: ~265 refreshes/s on 2 cores at c=32), so 64 in
//     flight on 2 cores are answered within about 0.25 s; more in flight
//     would only make every one of them later.
//   - browser (/authorize, /login/{upstream}, /callback, /end_session and
//     its confirmation, the upstream-logout return): 32 per CPU, at least
//     64. A callback waits on its upstream (bounded per upstream by
//     federation's maxConcurrentCalls), the other legs write the store.
//   - admin (the admin API listener): 8 per CPU, at least 16. Operators
//     and their scripts; a bulk deprovision holds a slot per call.
//
// Discovery, /keys, /revocations, health and static files are not limited:
// they are cached or cheap reads, and shedding /keys would make gateways
// fail closed.

// Concurrency bounds the requests of each endpoint class in flight at
// once. Zero fields take the defaults above; a negative field turns that
// class's limit off (benchmarks).
type Concurrency struct {
	// Token is the limit of /token, /revoke, /introspect and /userinfo.
	// Default: 32 per CPU, at least 64.
	Token int
	// Browser is the limit of the sign-in and sign-out pages. Default: 32
	// per CPU, at least 64.
	Browser int
	// Admin is the limit of the admin API. Default: 8 per CPU, at least 16.
	Admin int
}

// Defaults returns c with every zero field set to its default.
func (c Concurrency) Defaults() Concurrency {
	def := func(p *int, perCPU, floor int) {
		if *p == 0 {
			*p = shed.PerCPU(perCPU, floor)
		}
	}
	def(&c.Token, 32, 64)
	def(&c.Browser, 32, 64)
	def(&c.Admin, 8, 16)
	return c
}

// overloadRetryAfter is the Retry-After, in seconds, of a shed request: the
// slots turn over in well under a second (see above).
const overloadRetryAfter = 1

// Endpoint classes, the label of the shedding metrics.
const (
	classToken   = "token"
	classBrowser = "browser"
	classAdmin   = "admin"
)

// limiters are the Server's per-class limiters.
type limiters struct {
	token, browser *shed.Limiter
}

func newLimiters(c Concurrency) limiters {
	c = c.Defaults()
	return limiters{token: shed.New(c.Token), browser: shed.New(c.Browser)}
}

// shedJSON limits h with l and answers a refused request as the token
// endpoint answers a temporary failure: RFC 6749 §5.2 JSON.
func shedJSON(l *shed.Limiter, h http.Handler) http.Handler {
	return shedWith(l, h, func(w http.ResponseWriter, _ *http.Request) {
		broker.WriteOverloaded(w, overloadRetryAfter)
	})
}

// shedPage limits h with l and answers a refused request with a page.
func (s *Server) shedPage(l *shed.Limiter, h http.Handler) http.Handler {
	return shedWith(l, h, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", strconv.Itoa(overloadRetryAfter))
		d := overloadedPage()
		d.RequestID = RequestID(r.Context())
		s.pages.renderError(w, d)
	})
}

func shedWith(l *shed.Limiter, h http.Handler, refuse http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !l.TryAcquire() {
			refuse(w, r)
			return
		}
		defer l.Release()
		h.ServeHTTP(w, r)
	})
}

// overloadedPage is the page of a browser request shed under overload.
func overloadedPage() errorPageData {
	return errorPageData{
		Status: http.StatusServiceUnavailable,
		Title:  "Keyward is busy",
		Message: "Keyward is answering as many requests as it can just now, so it did not start on yours. Nothing was stored: " +
			"wait a second, then reload this page.",
	}
}

var (
	inFlightDesc = prometheus.NewDesc("keyward_http_class_requests_in_flight",
		"Requests in flight per endpoint class (token, browser, admin).", []string{"class"}, nil)
	capacityDesc = prometheus.NewDesc("keyward_http_concurrency_limit",
		"The concurrency limit of each endpoint class (limits.concurrency); absent when off.", []string{"class"}, nil)
	shedDesc = prometheus.NewDesc("keyward_http_shed_total",
		"Requests refused at once with 503 + Retry-After because their endpoint class had no free slot.", []string{"class"}, nil)
)

// shedCollector reads the limiters at every scrape.
type shedCollector map[string]*shed.Limiter

func (c shedCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- inFlightDesc
	ch <- capacityDesc
	ch <- shedDesc
}

func (c shedCollector) Collect(ch chan<- prometheus.Metric) {
	for class, l := range c {
		if l == nil {
			continue
		}
		ch <- prometheus.MustNewConstMetric(inFlightDesc, prometheus.GaugeValue, float64(l.InFlight()), class)
		ch <- prometheus.MustNewConstMetric(capacityDesc, prometheus.GaugeValue, float64(l.Capacity()), class)
		ch <- prometheus.MustNewConstMetric(shedDesc, prometheus.CounterValue, float64(l.Refused()), class)
	}
}

// routeClass is the endpoint class of each limited route (routes.go's
// route names); routes not listed are not limited.
var routeClass = map[string]string{
	"token": classToken, "revoke": classToken, "introspect": classToken, "userinfo": classToken,
	"authorize": classBrowser, "login": classBrowser, "callback": classBrowser,
	"end_session": classBrowser, "end_session_confirm": classBrowser, "logout_upstream_done": classBrowser,
}

// withClientAddr gives the token route's requests the client's address
// (broker.WithClientAddr), which the per-client limits at /token go by. It
// wraps the tracing middleware, which reads the form of the request it
// passed on.
func (s *Server) withClientAddr(route string, h http.Handler) http.Handler {
	if route != "token" {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(broker.WithClientAddr(r.Context(), clientIP(r, s.cfg.TrustedProxies))))
	})
}

// limit wraps the handler of route in its class's limiter.
func (s *Server) limit(route string, h http.Handler) http.Handler {
	switch routeClass[route] {
	case classToken:
		return shedJSON(s.limits.token, h)
	case classBrowser:
		return s.shedPage(s.limits.browser, h)
	}
	return h
}

var tokenLimitedDesc = prometheus.NewDesc("keyward_token_requests_limited_total",
	"/token requests refused with 429 by a per-client limit, by limit: client (the client's own rate), client_failures (failed authentications of one client id from one address), address_failures (failed authentications from one address).",
	[]string{"limit"}, nil)

// tokenLimitCollector reads the broker's per-client refusal counters.
type tokenLimitCollector struct{ b *broker.Broker }

func (c tokenLimitCollector) Describe(ch chan<- *prometheus.Desc) { ch <- tokenLimitedDesc }

func (c tokenLimitCollector) Collect(ch chan<- prometheus.Metric) {
	for limit, n := range c.b.TokenLimitRefusals() {
		ch <- prometheus.MustNewConstMetric(tokenLimitedDesc, prometheus.CounterValue, float64(n), limit)
	}
}

// shedAdmin limits the admin API to max requests in flight (0: the
// default; negative: off) and answers the others 503 in its own JSON.
func shedAdmin(max int) func(http.Handler) http.Handler {
	l := shed.New(Concurrency{Admin: max}.Defaults().Admin)
	return func(next http.Handler) http.Handler {
		return shedWith(l, next, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Retry-After", strconv.Itoa(overloadRetryAfter))
			writeAdminError(w, http.StatusServiceUnavailable, "overloaded",
				"the admin API is answering as many requests as it can (limits.concurrency.admin); retry after Retry-After seconds")
		})
	}
}
