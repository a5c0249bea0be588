package main

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
)

// grpcReceiver is an OTLP/gRPC trace receiver that keeps every span it is
// sent.
type grpcReceiver struct {
	coltracepb.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []*tracepb.Span
}

func (g *grpcReceiver) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			g.spans = append(g.spans, ss.GetSpans()...)
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// TestTracingOverGRPC runs keyward verify with OTEL_EXPORTER_OTLP_PROTOCOL
// =grpc and the endpoint of an in-process OTLP/gRPC receiver: the check's
// span arrives over gRPC.
func TestTracingOverGRPC(t *testing.T) {
	recv := &grpcReceiver{}
	gln := listenLoopback(t)
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, recv)
	go func() { _ = srv.Serve(gln) }()
	defer srv.Stop()
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+gln.Addr().String()) // http: without TLS

	jwksURL, signToken := testJWKS(t)
	cfg := mustParseVerify(t, `
issuer: https://sso.example.com
audience: [orders-api]
jwksURL: `+jwksURL+`
rules:
  - {path: /orders/, scopes: {anyOf: [orders:read]}}
`)
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	ln := listenLoopback(t)
	var logs lockedBuffer
	stop := startVerifier(t, cfg, slog.New(slog.NewJSONHandler(&logs, nil)), ln, nil)
	now := time.Now()
	token := signToken(jwt.MapClaims{"iss": "https://sso.example.com", "aud": "orders-api", "sub": "s1",
		"exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(), "scope": "orders:read"})
	status := 0
	for deadline := time.Now().Add(5 * time.Second); status != http.StatusOK && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+ln.Addr().String()+"/oauth2/auth", nil)
		req.Header.Set("X-Original-URI", "/orders/1")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		status = resp.StatusCode
	}
	if status != http.StatusOK {
		t.Fatalf("check = %d, want 200", status)
	}
	stop() // flushes the spans
	if !strings.Contains(logs.String(), `"msg":"tracing: exporting spans with OTLP/gRPC"`) {
		t.Errorf("logs = %s, want the OTLP/gRPC start line", logs.String())
	}
	recv.mu.Lock()
	defer recv.mu.Unlock()
	for _, s := range recv.spans {
		if s.GetName() == verifySpanName && attrs(s.GetAttributes())["keyward.verify.outcome"] == "allow" {
			return
		}
	}
	t.Errorf("the gRPC receiver got %d spans, none an allowed %s", len(recv.spans), verifySpanName)
}

// TestTracingProtocolRefused: a protocol Keyward cannot export with is a
// start-up error that names the variable and the accepted values.
func TestTracingProtocolRefused(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
	_, _, err := buildTracing(t.Context(), slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "OTEL_EXPORTER_OTLP_PROTOCOL") || !strings.Contains(err.Error(), "grpc") {
		t.Errorf("buildTracing with http/json = %v, want an error naming OTEL_EXPORTER_OTLP_PROTOCOL and the accepted values", err)
	}
}
