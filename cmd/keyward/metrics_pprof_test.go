package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// TestMetricsPprof: metrics.pprof adds Go's profiler to the metrics
// listener; without it the listener serves the metrics only.
func TestMetricsPprof(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector())
	get := func(h http.Handler, path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		body, _ := io.ReadAll(rec.Result().Body)
		return rec.Code, string(body)
	}
	on := MetricsConfig{Listen: "127.0.0.1:0", Pprof: true}.handler(reg)
	if code, body := get(on, "/debug/pprof/"); code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("pprof on: GET /debug/pprof/ = %d %.80q, want the profile index", code, body)
	}
	if code, body := get(on, "/metrics"); code != http.StatusOK || !strings.Contains(body, "go_goroutines") {
		t.Errorf("pprof on: GET /metrics = %d %.80q, want the metrics", code, body)
	}
	off := MetricsConfig{Listen: "127.0.0.1:0"}.handler(reg)
	if _, body := get(off, "/debug/pprof/"); strings.Contains(body, "Types of profiles available") {
		t.Error("pprof off: GET /debug/pprof/ served the profiler")
	}
}
