package web

import (
	"net/http"
	"runtime"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/keys"
	"github.com/keyward/keyward/store"
)

type metrics struct {
	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	inFlight     prometheus.Gauge
	loginLimited *prometheus.CounterVec
	feedHighest  prometheus.Gauge
	feedLag      *prometheus.GaugeVec
	feedRead     *prometheus.GaugeVec
}

// keyStatus is what the key metrics read from the key manager.
type keyStatus interface {
	Keys() []keys.KeyInfo
	NextRotation() time.Time
}

// newMetrics registers the HTTP metrics, the build information, the
// revocation feed's gauges, with b the upstream gauges, and with k the key
// gauges.
func newMetrics(reg prometheus.Registerer, b *broker.Broker, k keyStatus, version string, now func() time.Time) *metrics {
	m := &metrics{
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "keyward_http_requests_in_flight",
			Help: "Broker HTTP requests being answered now.",
		}),
		feedHighest: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "keyward_revocation_feed_highest_seq",
			Help: "The revocation feed's highest sequence number, as of the last read of /revocations by any reader.",
		}),
		feedLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "keyward_revocation_feed_reader_lag",
			Help: "Entries a revocation feed reader still had to read after its last poll (the highest sequence number minus the cursor it was given: more than 0 when a full page left entries behind), by reader client.",
		}, []string{"client_id"}),
		feedRead: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "keyward_revocation_feed_reader_last_read_timestamp_seconds",
			Help: "When a revocation feed reader last read /revocations successfully (Unix time), by reader client.",
		}, []string{"client_id"}),
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
		reg.MustRegister(m.requests, m.duration, m.inFlight, m.loginLimited, m.feedHighest, m.feedLag, m.feedRead)
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "keyward_build_info",
			Help:        "Always 1; the labels say which keyward runs.",
			ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
		}, func() float64 { return 1 }))
		if k != nil {
			reg.MustRegister(keyCollector{k: k, now: now})
		}
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
		m.inFlight.Inc()
		defer m.inFlight.Dec()
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		dur.Observe(time.Since(start).Seconds())
		m.requests.WithLabelValues(route, strconv.Itoa(sw.status)).Inc()
	})
}

var (
	keyAgeDesc = prometheus.NewDesc("keyward_signing_key_age_seconds",
		"Time since the current signing key started to sign.", nil, nil)
	nextRotationDesc = prometheus.NewDesc("keyward_signing_key_next_rotation_timestamp_seconds",
		"When the key set's next scheduled step is due (Unix time): alert when time() passes it by more than a few minutes.", nil, nil)
)

// keyCollector reads the key gauges at every scrape.
type keyCollector struct {
	k   keyStatus
	now func() time.Time
}

func (c keyCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- keyAgeDesc
	ch <- nextRotationDesc
}

func (c keyCollector) Collect(ch chan<- prometheus.Metric) {
	for _, info := range c.k.Keys() {
		if info.State == store.KeyCurrent {
			since := info.ActivatesAt
			if since.IsZero() {
				since = info.CreatedAt
			}
			ch <- prometheus.MustNewConstMetric(keyAgeDesc, prometheus.GaugeValue, c.now().Sub(since).Seconds())
			break
		}
	}
	if next := c.k.NextRotation(); !next.IsZero() {
		ch <- prometheus.MustNewConstMetric(nextRotationDesc, prometheus.GaugeValue, float64(next.UnixNano())/1e9)
	}
}

// feedReadBy records a successful read of the revocation feed by reader,
// answered up to highest with next as its new cursor.
func (m *metrics) feedReadBy(reader string, next, highest int64, at time.Time) {
	m.feedHighest.Set(float64(highest))
	m.feedLag.WithLabelValues(reader).Set(float64(max(highest-next, 0)))
	m.feedRead.WithLabelValues(reader).Set(float64(at.UnixNano()) / 1e9)
}
