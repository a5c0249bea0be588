package web

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyward/keyward/broker"
)

type metrics struct {
	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	loginLimited *prometheus.CounterVec
}

// newMetrics registers the HTTP metrics and, with b, the upstream gauge.
func newMetrics(reg prometheus.Registerer, b *broker.Broker) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyward_http_requests_total",
			Help: "HTTP requests answered by the broker, by route and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "keyward_http_request_duration_seconds",
			Help:    "Time to answer broker HTTP requests, by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
		loginLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyward_login_attempts_refused_total",
			Help: "Login attempts refused by the rate limit (429), by the limit that refused: client (one address) or global.",
		}, []string{"limit"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.loginLimited)
		for _, limit := range []string{broker.LimitClient, broker.LimitGlobal} {
			m.loginLimited.WithLabelValues(limit) // exported as 0 until the first refusal
		}
		if b != nil {
			reg.MustRegister(upstreamCollector{b: b, desc: upstreamUpDesc}, recheckCollector{b: b})
		}
	}
	return m
}

var upstreamUpDesc = prometheus.NewDesc("keyward_upstream_up",
	"1 while the upstream can take sign-ins, 0 while its discovery fails and is being retried.",
	[]string{"upstream"}, nil)

// upstreamCollector reads keyward_upstream_up at every scrape.
type upstreamCollector struct {
	b    *broker.Broker
	desc *prometheus.Desc
}

func (c upstreamCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c upstreamCollector) Collect(ch chan<- prometheus.Metric) {
	for _, u := range c.b.UpstreamStatus() {
		up := 0.0
		if u.Err == nil {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, up, u.ID)
	}
}

var (
	recheckTotalDesc = prometheus.NewDesc("keyward_upstream_recheck_total",
		"Upstream re-checks of signed-in people, by upstream and result: passed, refused (invalid_grant, the session ended), unavailable, client_rejected (invalid_client/unauthorized_client), max_age (a session ended because the upstream had not vouched within recheckMaxAge).",
		[]string{"upstream", "result"}, nil)
	clientRejectedDesc = prometheus.NewDesc("keyward_upstream_client_rejected",
		"1 while the upstream's last answer to a re-check refused Keyward's client credentials (invalid_client, unauthorized_client): fix the upstream's clientSecret before recheckMaxAge ends everyone's sessions.",
		[]string{"upstream"}, nil)
)

// recheckCollector reads the re-check counters at every scrape; only
// re-checked upstreams are listed.
type recheckCollector struct{ b *broker.Broker }

func (c recheckCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- recheckTotalDesc
	ch <- clientRejectedDesc
}

func (c recheckCollector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.b.RecheckStatus() {
		for result, n := range st.Results {
			ch <- prometheus.MustNewConstMetric(recheckTotalDesc, prometheus.CounterValue, float64(n), st.Upstream, result)
		}
		rejected := 0.0
		if st.ClientRejected {
			rejected = 1
		}
		ch <- prometheus.MustNewConstMetric(clientRejectedDesc, prometheus.GaugeValue, rejected, st.Upstream)
	}
}

func (m *metrics) instrument(route string, h http.Handler) http.Handler {
	dur := m.duration.WithLabelValues(route)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		dur.Observe(time.Since(start).Seconds())
		m.requests.WithLabelValues(route, strconv.Itoa(sw.status)).Inc()
	})
}
