package main

import (
	"context"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/keyward/keyward/web/verify"
)

// The verifier's own metrics and spans, beside instrumentVerify's request
// counts: web/verify keeps no Prometheus or OpenTelemetry, it counts and
// reports (Verifier.CacheStats, KeyFetchErrors, HandlerOptions.OnDecision)
// and keyward verify exports.

// registerVerifierMetrics exports v's key-fetch failures and its
// verified-token cache lookups (the hit ratio is hits / (hits + misses)).
func registerVerifierMetrics(reg prometheus.Registerer, v *verify.Verifier) {
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "keyward_verify_jwks_fetch_errors_total",
			Help: "Failed fetches of the issuer's signing keys (discovery or JWKS: no answer, an error status, not a key set). Tokens signed by a key not yet loaded are refused (503) while they fail.",
		}, func() float64 { return float64(v.KeyFetchErrors()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "keyward_verify_token_cache_hits_total",
			Help: "Tokens found in the verified-token cache (no signature check).",
		}, func() float64 { h, _ := v.CacheStats(); return float64(h) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "keyward_verify_token_cache_misses_total",
			Help: "Tokens not in the verified-token cache, verified in full (0 with cache.maxEntries: -1).",
		}, func() float64 { _, m := v.CacheStats(); return float64(m) }),
	)
}

// isCheck reports whether r asks for a forward-auth check: /oauth2/auth,
// or under the Envoy ext_authz prefix (without its trailing slash).
func isCheck(r *http.Request, envoyPrefix string) bool {
	return r.URL.Path == "/oauth2/auth" || (envoyPrefix != "" && strings.HasPrefix(r.RequestURI, envoyPrefix))
}

// verifySpanName names the server span of a check.
const verifySpanName = "verify.check"

// traceVerify wraps next with a server span per check (continuing a W3C
// traceparent the gateway sent), which spanDecision completes; other
// requests pass through. A nil tp returns next as it is.
func traceVerify(next http.Handler, envoyPrefix string, tp trace.TracerProvider) http.Handler {
	if tp == nil {
		return next
	}
	tracer := tp.Tracer("github.com/keyward/keyward/web/verify")
	envoyPrefix = strings.TrimSuffix(envoyPrefix, "/")
	prop := propagation.TraceContext{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isCheck(r, envoyPrefix) {
			next.ServeHTTP(w, r)
			return
		}
		ctx := prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := tracer.Start(ctx, verifySpanName, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", r.Method)))
		defer span.End()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// spanDecision records d on the check's span (from traceVerify): the rule,
// the outcome, the status and the refusal's fixed reason; never the token,
// the query or the identity.
func spanDecision(ctx context.Context, d verify.Decision) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(
		attribute.Int("keyward.verify.rule", d.Rule),
		attribute.String("keyward.verify.outcome", d.Outcome()),
		attribute.Int("http.response.status_code", d.Status),
	)
	if d.Reason != "" {
		span.SetAttributes(attribute.String("keyward.verify.reason", d.Reason))
	}
	if d.Status >= 500 {
		span.SetStatus(codes.Error, d.Reason)
	}
}

// onDecisions returns a hook calling each of fns that is not nil; nil when
// there is none.
func onDecisions(fns ...func(context.Context, verify.Decision)) func(context.Context, verify.Decision) {
	var set []func(context.Context, verify.Decision)
	for _, f := range fns {
		if f != nil {
			set = append(set, f)
		}
	}
	switch len(set) {
	case 0:
		return nil
	case 1:
		return set[0]
	}
	return func(ctx context.Context, d verify.Decision) {
		for _, f := range set {
			f(ctx, d)
		}
	}
}
