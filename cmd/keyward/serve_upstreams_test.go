package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/federation"
)

// unreachableIssuer is a loopback URL nobody listens on: discovery there
// fails at once (connection refused).
func unreachableIssuer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return "http://" + addr
}

func TestBuildUpstreamsSurvivesUnreachableDiscovery(t *testing.T) {
	cfg := &Config{
		Issuer:    "https://sso.example.com",
		Upstreams: []federation.Config{{ID: "corp", Name: "Corp", Issuer: unreachableIssuer(t), ClientID: "keyward"}},
	}
	sec := Secrets{UpstreamClientSecrets: map[string]string{"corp": "upstream-secret"}}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ups, err := buildUpstreams(ctx, cfg, sec, slog.New(slog.DiscardHandler), http.DefaultTransport, nil)
	if err != nil {
		t.Fatalf("buildUpstreams(unreachable discovery) = %v, want the upstream, not yet ready", err)
	}
	if len(ups) != 1 || ups[0].ID() != "corp" || ups[0].Name() != "Corp" {
		t.Fatalf("buildUpstreams() = %v, want one upstream corp", ups)
	}
	lazy, ok := ups[0].(*federation.LazyUpstream)
	if !ok {
		t.Fatalf("upstream is %T, want *federation.LazyUpstream", ups[0])
	}
	if err := lazy.Ready(); !errors.Is(err, federation.ErrUpstreamUnavailable) {
		t.Errorf("Ready() = %v, want ErrUpstreamUnavailable", err)
	}
	// Shutdown (ctx cancelled) stops the background retries.
	cancel()
	select {
	case <-lazy.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the retry loop did not stop after ctx was cancelled")
	}
}

func TestBuildUpstreamsConfigErrorStillFails(t *testing.T) {
	cfg := &Config{
		Issuer:    "https://sso.example.com",
		Upstreams: []federation.Config{{ID: "corp", Issuer: unreachableIssuer(t), ClientID: "keyward"}},
	}
	sec := Secrets{UpstreamClientSecrets: map[string]string{}} // no client secret
	_, err := buildUpstreams(t.Context(), cfg, sec, slog.New(slog.DiscardHandler), http.DefaultTransport, nil)
	if err == nil || !strings.Contains(err.Error(), "upstreams[0] (corp)") || !strings.Contains(err.Error(), "clientSecretFile") {
		t.Errorf("buildUpstreams(no client secret) = %v, want an error naming upstreams[0] (corp) and clientSecretFile", err)
	}
}
