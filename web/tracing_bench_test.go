package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// tokenLike is a stand-in for the token endpoint's handler with the parts
// traceServer touches: it parses the form (the wrapper then reads
// grant_type from r.PostForm) and writes a JSON answer with a status.
var tokenLike = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, `{"token_type":"Bearer"}`)
})

// tokenRequestAllocs is the allocations of one POST /token through h,
// request and recorder included.
func tokenRequestAllocs(h http.Handler) float64 {
	return testing.AllocsPerRun(200, func() { serveToken(h) })
}

func serveToken(h http.Handler) {
	r := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader("grant_type=refresh_token&refresh_token=x"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	h.ServeHTTP(httptest.NewRecorder(), r)
}

// TestTracingOffAddsNoAllocation: with no TracerProvider the token route
// is the handler itself, so a request allocates exactly as without
// tracing; with one, the span costs allocations (which the test only
// reports: it shows the comparison measures something).
func TestTracingOffAddsNoAllocation(t *testing.T) {
	bare := tokenRequestAllocs(tokenLike)
	off := tokenRequestAllocs(traceServer(nil, "POST /token", tokenLike))
	if off != bare {
		t.Errorf("POST /token with tracing off: %v allocations, without the wrapper %v; want the same", off, bare)
	}
	tp := sdktrace.NewTracerProvider() // spans recorded, never exported
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	on := tokenRequestAllocs(traceServer(tp, "POST /token", tokenLike))
	if on <= bare {
		t.Errorf("POST /token with tracing on: %v allocations, without %v; want more (a span), or the comparison measures nothing", on, bare)
	}
	t.Logf("allocations per POST /token: without the wrapper %v, tracing off %v, tracing on %v", bare, off, on)
}

// BenchmarkTokenTracing compares a token request without the tracing
// wrapper, with tracing off (no TracerProvider) and with tracing on (spans
// recorded, never exported). Run with -benchmem: off allocates as without.
func BenchmarkTokenTracing(b *testing.B) {
	tp := sdktrace.NewTracerProvider()
	b.Cleanup(func() { _ = tp.Shutdown(b.Context()) })
	for _, c := range []struct {
		name string
		h    http.Handler
	}{
		{"without", tokenLike},
		{"off", traceServer(nil, "POST /token", tokenLike)},
		{"on", traceServer(tp, "POST /token", tokenLike)},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				serveToken(c.h)
			}
		})
	}
}
