package web

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
)

// UpstreamMetrics times (and, with a tracer provider, traces) the broker's
// HTTP requests to its upstream identity providers (discovery, keys, token,
// userinfo, re-checks).
type UpstreamMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	tracer   trace.Tracer // nil: no spans
}

// NewUpstreamMetrics registers keyward_upstream_requests_total and
// keyward_upstream_request_duration_seconds with reg (nil: none); with tp,
// each request is also a client span (tracing.go).
func NewUpstreamMetrics(reg prometheus.Registerer, tp trace.TracerProvider) *UpstreamMetrics {
	m := &UpstreamMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyward_upstream_requests_total",
			Help: "HTTP requests to upstream identity providers, by upstream and result: the status class (2xx, 3xx, 4xx, 5xx) or error (no answer: connection, TLS, timeout).",
		}, []string{"upstream", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "keyward_upstream_request_duration_seconds",
			Help:    "Time from sending a request to an upstream identity provider to its answer's headers (or the error), by upstream.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"upstream"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration)
	}
	if tp != nil {
		m.tracer = tp.Tracer(tracerName)
	}
	return m
}

// Transport returns next measured as the upstream with id upstream (a nil
// m: next as it is).
func (m *UpstreamMetrics) Transport(upstream string, next http.RoundTripper) http.RoundTripper {
	if m == nil {
		return next
	}
	results := map[string]prometheus.Counter{}
	for _, r := range []string{"2xx", "3xx", "4xx", "5xx", "error"} {
		results[r] = m.requests.WithLabelValues(upstream, r) // exported as 0 from the start
	}
	if m.tracer != nil {
		next = &upstreamTracer{tracer: m.tracer, upstream: upstream, next: next}
	}
	return &upstreamTransport{next: next, results: results, duration: m.duration.WithLabelValues(upstream)}
}

type upstreamTransport struct {
	next     http.RoundTripper
	results  map[string]prometheus.Counter
	duration prometheus.Observer
}

func (t *upstreamTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.next.RoundTrip(r)
	t.duration.Observe(time.Since(start).Seconds())
	result := "error"
	if err == nil {
		result = strconv.Itoa(resp.StatusCode/100) + "xx"
	}
	if c, ok := t.results[result]; ok {
		c.Inc()
	} else {
		t.results["error"].Inc() // a 1xx final answer cannot happen; never a new series
	}
	return resp, err
}
