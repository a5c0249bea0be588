package web

import (
	"net/http"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// OpenTelemetry spans of the broker's HTTP surface: a server span per
// request (named by its route pattern, continuing a W3C traceparent the
// client sent), and a client span per request to an upstream. fosite starts
// its own spans from the tracer of the span in the request's context, so
// they nest under the server span. Attributes never hold a token, code,
// secret or query string: method, route, status, the grant type at /token,
// an upstream's id and its host and path.

// tracerName is the instrumentation scope of Keyward's spans.
const tracerName = "github.com/keyward/keyward"

// traceContext reads and writes W3C trace context (traceparent, tracestate).
var traceContext = propagation.TraceContext{}

// traceServer wraps h, the handler of pattern ("POST /token"), with a
// server span from tp; a nil tp returns h as it is.
func traceServer(tp trace.TracerProvider, pattern string, h http.Handler) http.Handler {
	if tp == nil {
		return h
	}
	tracer := tp.Tracer(tracerName)
	method, route, _ := strings.Cut(pattern, " ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := traceContext.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := tracer.Start(ctx, pattern, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
			attribute.String("http.request.method", method),
			attribute.String("http.route", route),
		))
		defer span.End()
		sw := &statusWriter{ResponseWriter: w}
		r = r.WithContext(ctx)
		h.ServeHTTP(sw, r)
		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		span.SetAttributes(attribute.Int("http.response.status_code", status))
		if route == "/token" && r.PostForm != nil {
			// Read only once the handler has parsed the form; the grant
			// type is a fixed name, never a credential.
			span.SetAttributes(attribute.String("oauth.grant_type", grantLabel(r.PostForm.Get("grant_type"))))
		}
		if status >= 500 {
			span.SetStatus(codes.Error, strconv.Itoa(status))
		}
	})
}

// upstreamTracer starts client spans for requests to one upstream.
type upstreamTracer struct {
	tracer   trace.Tracer
	upstream string
	next     http.RoundTripper
}

func (t *upstreamTracer) RoundTrip(r *http.Request) (*http.Response, error) {
	ctx, span := t.tracer.Start(r.Context(), r.Method, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		attribute.String("http.request.method", r.Method),
		attribute.String("server.address", r.URL.Hostname()),
		attribute.String("url.path", r.URL.Path),
		attribute.String("keyward.upstream", t.upstream),
	))
	defer span.End()
	r = r.Clone(ctx) // a RoundTripper must not change the caller's request
	traceContext.Inject(ctx, propagation.HeaderCarrier(r.Header))
	resp, err := t.next.RoundTrip(r)
	if err != nil {
		span.SetStatus(codes.Error, "no answer")
		return resp, err
	}
	span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
	if resp.StatusCode >= 500 {
		span.SetStatus(codes.Error, strconv.Itoa(resp.StatusCode))
	}
	return resp, err
}
