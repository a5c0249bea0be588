package main

// OpenTelemetry traces, off by default: on when the standard environment
// names an OTLP endpoint (OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), exported with OTLP/HTTP
// (protobuf), or OTLP/gRPC when OTEL_EXPORTER_OTLP_PROTOCOL (or
// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL) is grpc. The exporter, the sampler (OTEL_TRACES_SAMPLER) and the
// resource (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES) read the rest of
// the OTEL_* variables themselves. Spans: web's server and upstream client
// spans (web/tracing.go), fosite's under them, and the store calls here.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/keyward/keyward/store"
)

// flushTracing stops the tracer provider buildTracing made: it sends the
// spans still buffered, waiting at most 5 s past ctx's end, and logs what
// could not be sent. serve and verify defer it.
func flushTracing(ctx context.Context, log *slog.Logger, stop func(context.Context) error) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := stop(sctx); err != nil {
		log.WarnContext(sctx, "tracing: spans lost at shutdown", "err", err)
	}
}

// buildTracing returns the tracer provider the environment asks for, and
// the function that flushes and stops it; nil and a no-op when tracing is
// off.
func buildTracing(ctx context.Context, log *slog.Logger) (trace.TracerProvider, func(context.Context) error, error) {
	off := func(context.Context) error { return nil }
	endpoint := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	if endpoint == "" {
		endpoint = os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
	}
	if endpoint == "" || strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true") {
		return nil, off, nil
	}
	protocol := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if protocol == "" {
		protocol = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	var (
		exp  sdktrace.SpanExporter
		err  error
		name string
	)
	switch protocol {
	case "", "http/protobuf": // the specification's default
		name = "OTLP/HTTP"
		exp, err = otlptracehttp.New(ctx)
	case "grpc":
		name = "OTLP/gRPC"
		exp, err = otlptracegrpc.New(ctx)
	default:
		return nil, off, fmt.Errorf("tracing: OTEL_EXPORTER_OTLP_PROTOCOL %q is not supported; use http/protobuf (the default) or grpc", protocol)
	}
	if err != nil {
		return nil, off, fmt.Errorf("tracing: %s exporter: %w (check the OTEL_EXPORTER_OTLP_* variables)", name, err)
	}
	// Keyward's defaults first: OTEL_SERVICE_NAME and
	// OTEL_RESOURCE_ATTRIBUTES override them.
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", "keyward"), attribute.String("service.version", version)),
		resource.WithFromEnv())
	if err != nil {
		return nil, off, fmt.Errorf("tracing: resource: %w (check OTEL_RESOURCE_ATTRIBUTES)", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	log.InfoContext(ctx, "tracing: exporting spans with "+name, "endpoint", endpoint) // headers (credentials) never
	return tp, tp.Shutdown, nil
}

// tracedStore adds a span to the store calls of sign-ins, token requests,
// key rotation and the revocation feed; other calls (admin, garbage
// collection) pass through. A span names the operation only: no record
// field, signature or id.
type tracedStore struct {
	store.Store
	tracer trace.Tracer
}

// traceStore returns st with spans from tp.
func traceStore(st store.Store, tp trace.TracerProvider) store.Store {
	return tracedStore{Store: st, tracer: tp.Tracer("github.com/keyward/keyward/store")}
}

func (s tracedStore) start(ctx context.Context, op string) (context.Context, trace.Span) {
	return s.tracer.Start(ctx, "store."+op, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("db.operation.name", op)))
}

// end ends span, marking err unless it is store.ErrNotFound (an answer,
// not a failure), and returns err.
func end(span trace.Span, err error) error {
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		span.SetStatus(codes.Error, "store error")
	}
	span.End()
	return err
}

func (s tracedStore) CreateLoginAttempt(ctx context.Context, a store.LoginAttempt) error {
	ctx, span := s.start(ctx, "CreateLoginAttempt")
	return end(span, s.Store.CreateLoginAttempt(ctx, a))
}

func (s tracedStore) GetLoginAttemptByState(ctx context.Context, state string) (store.LoginAttempt, error) {
	ctx, span := s.start(ctx, "GetLoginAttemptByState")
	a, err := s.Store.GetLoginAttemptByState(ctx, state)
	return a, end(span, err)
}

func (s tracedStore) UpdateLoginAttempt(ctx context.Context, id string, updater func(store.LoginAttempt) (store.LoginAttempt, error)) error {
	ctx, span := s.start(ctx, "UpdateLoginAttempt")
	return end(span, s.Store.UpdateLoginAttempt(ctx, id, updater))
}

func (s tracedStore) DeleteLoginAttempt(ctx context.Context, id string) error {
	ctx, span := s.start(ctx, "DeleteLoginAttempt")
	return end(span, s.Store.DeleteLoginAttempt(ctx, id))
}

func (s tracedStore) CreateSession(ctx context.Context, sess store.Session) error {
	ctx, span := s.start(ctx, "CreateSession")
	return end(span, s.Store.CreateSession(ctx, sess))
}

func (s tracedStore) GetSession(ctx context.Context, id string) (store.Session, error) {
	ctx, span := s.start(ctx, "GetSession")
	sess, err := s.Store.GetSession(ctx, id)
	return sess, end(span, err)
}

func (s tracedStore) UpdateSession(ctx context.Context, id string, updater func(store.Session) (store.Session, error)) error {
	ctx, span := s.start(ctx, "UpdateSession")
	return end(span, s.Store.UpdateSession(ctx, id, updater))
}

func (s tracedStore) UpsertSubject(ctx context.Context, id string, create func() store.Subject, updater func(store.Subject) (store.Subject, error)) (store.Subject, error) {
	ctx, span := s.start(ctx, "UpsertSubject")
	sub, err := s.Store.UpsertSubject(ctx, id, create, updater)
	return sub, end(span, err)
}

func (s tracedStore) CreateGrant(ctx context.Context, g store.Grant) error {
	ctx, span := s.start(ctx, "CreateGrant")
	return end(span, s.Store.CreateGrant(ctx, g))
}

func (s tracedStore) GetGrant(ctx context.Context, kind store.GrantKind, signature string) (store.Grant, error) {
	ctx, span := s.start(ctx, "GetGrant")
	g, err := s.Store.GetGrant(ctx, kind, signature)
	return g, end(span, err)
}

func (s tracedStore) UpdateGrant(ctx context.Context, kind store.GrantKind, signature string, updater func(store.Grant) (store.Grant, error)) error {
	ctx, span := s.start(ctx, "UpdateGrant")
	return end(span, s.Store.UpdateGrant(ctx, kind, signature, updater))
}

func (s tracedStore) DeleteGrant(ctx context.Context, kind store.GrantKind, signature string) error {
	ctx, span := s.start(ctx, "DeleteGrant")
	return end(span, s.Store.DeleteGrant(ctx, kind, signature))
}

func (s tracedStore) DeleteGrantsByRequest(ctx context.Context, requestID string, kinds ...store.GrantKind) (int, error) {
	ctx, span := s.start(ctx, "DeleteGrantsByRequest")
	n, err := s.Store.DeleteGrantsByRequest(ctx, requestID, kinds...)
	return n, end(span, err)
}

func (s tracedStore) UpdateGrantsByRequest(ctx context.Context, requestID string, kinds []store.GrantKind, updater func(store.Grant) (store.Grant, error)) (int, error) {
	ctx, span := s.start(ctx, "UpdateGrantsByRequest")
	n, err := s.Store.UpdateGrantsByRequest(ctx, requestID, kinds, updater)
	return n, end(span, err)
}

func (s tracedStore) EndSession(ctx context.Context, sessionID string, feed store.Revocation) (store.GrantDeletion, error) {
	ctx, span := s.start(ctx, "EndSession")
	d, err := s.Store.EndSession(ctx, sessionID, feed)
	return d, end(span, err)
}

func (s tracedStore) UpdateKeySet(ctx context.Context, updater func(store.KeySet) (store.KeySet, error)) error {
	ctx, span := s.start(ctx, "UpdateKeySet")
	return end(span, s.Store.UpdateKeySet(ctx, updater))
}

func (s tracedStore) ListRevocations(ctx context.Context, after int64, limit int) ([]store.Revocation, int64, error) {
	ctx, span := s.start(ctx, "ListRevocations")
	rs, highest, err := s.Store.ListRevocations(ctx, after, limit)
	return rs, highest, end(span, err)
}

func (s tracedStore) Apply(ctx context.Context, b store.Batch) (store.BatchResult, error) {
	ctx, span := s.start(ctx, "Apply")
	r, err := s.Store.Apply(ctx, b)
	return r, end(span, err)
}
