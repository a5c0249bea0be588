package harness

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ScrapeStoreCounters reads the store counters from Prometheus's text
// exposition, as keyward serve's /metrics serves it, and reports a binary
// without them as not Found.
func TestScrapeStoreCounters(t *testing.T) {
	reg := prometheus.NewRegistry()
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()

	sc, err := ScrapeStoreCounters(t.Context(), http.DefaultClient, srv.URL)
	if err != nil || sc.Found {
		t.Fatalf("ScrapeStoreCounters without store metrics = %+v, %v; want not found, nil", sc, err)
	}
	labels := prometheus.Labels{"backend": "bolt"}
	for name, v := range map[string]float64{
		"keyward_store_write_transactions_total": 1234567,
		"keyward_store_commits_total":            89,
		"keyward_store_synced_commits_total":     88,
	} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: "h", ConstLabels: labels}, func() float64 { return v }))
	}
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "keyward_store_write_transactions_other", Help: "h", ConstLabels: labels}))
	sc, err = ScrapeStoreCounters(t.Context(), http.DefaultClient, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if want := (StoreCounters{Found: true, WriteTxs: 1234567, Commits: 89, SyncedCommits: 88}); sc != want {
		t.Errorf("ScrapeStoreCounters = %+v, want %+v", sc, want)
	}
}
