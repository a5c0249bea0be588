// Package fakesrv is the plumbing the fake servers test/fakeidp and
// test/fakegithub share: starting one on a loopback listener whose URL is
// known before the server is built, and counting requests per endpoint.
// Like them it does not import testing, since `keyward demo` runs fakeidp.
package fakesrv

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
)

// TB is the part of testing.TB that Start uses.
type TB interface {
	Cleanup(func())
	Helper()
	Fatalf(format string, args ...any)
}

// Start starts an httptest server at 127.0.0.1 serving the Handler of the
// server that newAt builds for the listener's URL ("http://127.0.0.1:port"),
// and closes it when the test ends. When newAt fails, Start closes the
// listener, fails tb with "name: error" and returns the zero S.
func Start[S interface{ Handler() http.Handler }](tb TB, name string, newAt func(url string) (S, error)) S {
	tb.Helper()
	ts := httptest.NewUnstartedServer(nil)
	s, err := newAt("http://" + ts.Listener.Addr().String())
	if err != nil {
		_ = ts.Listener.Close()
		tb.Fatalf("%s: %v", name, err)
		var zero S
		return zero
	}
	ts.Config.Handler = s.Handler()
	ts.Start()
	tb.Cleanup(ts.Close)
	return s
}

// Counters counts requests per endpoint name. The names are fixed by
// NewCounters and only the counts change, so it is safe for concurrent use.
type Counters struct {
	m map[string]*atomic.Int64
}

// NewCounters returns counters, at zero, for these endpoint names.
func NewCounters(names ...string) *Counters {
	c := &Counters{m: make(map[string]*atomic.Int64, len(names))}
	for _, n := range names {
		c.m[n] = new(atomic.Int64)
	}
	return c
}

// Count returns h wrapped so that every request is counted under name
// before h runs. It panics when name was not given to NewCounters.
func (c *Counters) Count(name string, h http.HandlerFunc) http.HandlerFunc {
	counter, ok := c.m[name]
	if !ok {
		panic(fmt.Sprintf("fakesrv: Count(%q): not a counter name", name))
	}
	return func(w http.ResponseWriter, r *http.Request) {
		counter.Add(1)
		h(w, r)
	}
}

// Get returns the count for name, and whether name is a counter name.
func (c *Counters) Get(name string) (int64, bool) {
	counter, ok := c.m[name]
	if !ok {
		return 0, false
	}
	return counter.Load(), true
}
