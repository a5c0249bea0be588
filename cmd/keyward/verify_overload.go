package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyward/keyward/web/verify"
)

// registerOverloadMetrics exports the verifier's load shedding
// (maxConcurrentVerifications), read from v at each scrape.
func registerOverloadMetrics(reg prometheus.Registerer, v *verify.Verifier) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "keyward_verify_verifications_in_flight",
			Help: "Signature verifications in flight (tokens not found in the cache).",
		}, func() float64 {
			n, _ := v.Overload()
			return float64(n)
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "keyward_verify_shed_total",
			Help: "Checks answered 503 + Retry-After at once because maxConcurrentVerifications verifications were in flight (cache hits are never shed).",
		}, func() float64 {
			_, n := v.Overload()
			return float64(n)
		}),
	)
}
