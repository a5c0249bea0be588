package federation

import (
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/keyward/keyward/web/shed"
)

// DefaultMaxConcurrentCalls is Config.MaxConcurrentCalls' default: calls
// to one upstream in flight at once (code exchanges with their userinfo
// and Graph calls, re-check refreshes). Each can wait up to the client's
// 10 s timeout on a hanging upstream, so the limit is what bounds the
// token and browser slots (web's concurrency limits, 64 or more) one
// hanging upstream can hold: 16 leaves the rest to everyone else, while a
// healthy upstream answering in 100 ms still takes 160 calls/s.
const DefaultMaxConcurrentCalls = 16

// ErrUpstreamBusy is the cause of a call refused at once because
// MaxConcurrentCalls calls to the upstream were already in flight (an
// upstream that is slow or hanging). Code exchanges wrap it in
// ErrTokenEndpoint, refreshes in ErrRefreshUnavailable.
var ErrUpstreamBusy = errors.New("too many calls to the upstream in flight")

// limitedClient returns a copy of c whose requests take a slot of l,
// refused at once with ErrUpstreamBusy when none is free. The slot is held
// until the response body is closed (or the request failed).
func limitedClient(c *http.Client, l *shed.Limiter) *http.Client {
	if l == nil {
		return c
	}
	lc := *c
	base := c.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	lc.Transport = limitedTransport{base: base, l: l}
	return &lc
}

type limitedTransport struct {
	base http.RoundTripper
	l    *shed.Limiter
}

func (t limitedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if !t.l.TryAcquire() {
		if r.Body != nil {
			_ = r.Body.Close()
		}
		return nil, fmt.Errorf("%s %s: %w", r.Method, r.URL.Redacted(), ErrUpstreamBusy)
	}
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		t.l.Release()
		return nil, err
	}
	resp.Body = &releasingBody{ReadCloser: resp.Body, release: t.l.Release}
	return resp, nil
}

// releasingBody releases the slot once, at the first Close.
type releasingBody struct {
	io.ReadCloser
	release func()
	done    bool
}

func (b *releasingBody) Close() error {
	err := b.ReadCloser.Close()
	if !b.done {
		b.done = true
		b.release()
	}
	return err
}

// maxConcurrentCalls is MaxConcurrentCalls with its default (≤ 0 after
// it: no limit).
func (c Config) maxConcurrentCalls() int {
	if c.MaxConcurrentCalls == 0 {
		return DefaultMaxConcurrentCalls
	}
	return c.MaxConcurrentCalls
}
