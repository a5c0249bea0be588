package console

import (
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The revocation feed's per-reader gauges that web/metrics.go sets at every
// successful poll. They are the one record of the readers' polls: the
// console reads them back from the registry (Options.Metrics) instead of
// keeping a second one. Being process memory, they describe this replica
// only, and only since it started.
const (
	metricReaderLag      = "keyward_revocation_feed_reader_lag"
	metricReaderLastRead = "keyward_revocation_feed_reader_last_read_timestamp_seconds"
	labelClient          = "client_id"
)

// feedReader is a revocation-feed reader as this replica saw it.
type feedReader struct {
	ID, Name string
	Polled   bool      // false: no successful poll on this replica since it started
	LastPoll time.Time // when Polled
	Age      string    // time since LastPoll, rounded to the second
	Lag      int64     // entries left unread after that poll
}

// feedReaders lists the configured feed readers (Admin.Clients) with
// their last poll and lag from g, by id; a reader g has no gauge for is
// listed as not polled. A reader id not configured (any more) is left out.
func feedReaders(g prometheus.Gatherer, clients []feedClient, now time.Time) ([]feedReader, error) {
	polls := map[string]*feedReader{}
	var out []feedReader
	for _, c := range clients {
		out = append(out, feedReader{ID: c.ID, Name: c.Name})
	}
	for i := range out {
		polls[out[i].ID] = &out[i]
	}
	if g == nil {
		return out, nil
	}
	families, err := g.Gather()
	if err != nil {
		return nil, err
	}
	for _, f := range families {
		if f.GetName() != metricReaderLag && f.GetName() != metricReaderLastRead {
			continue
		}
		for _, m := range f.GetMetric() {
			var id string
			for _, l := range m.GetLabel() {
				if l.GetName() == labelClient {
					id = l.GetValue()
				}
			}
			r, ok := polls[id]
			if !ok {
				continue
			}
			v := m.GetGauge().GetValue()
			if f.GetName() == metricReaderLag {
				r.Lag = int64(v)
				continue
			}
			r.Polled = true
			r.LastPoll = time.Unix(0, int64(v*1e9)).UTC()
			r.Age = now.Sub(r.LastPoll).Round(time.Second).String()
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// feedClient is a configured client that may read the feed.
type feedClient struct{ ID, Name string }
