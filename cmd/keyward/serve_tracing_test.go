package main

import (
	"compress/gzip"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is an OTLP/HTTP trace receiver (protobuf) that keeps every
// span it is sent.
type otlpReceiver struct {
	mu       sync.Mutex
	spans    []*tracepb.Span
	resource []*commonpb.KeyValue
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "want POST /v1/traces application/x-protobuf", http.StatusBadRequest)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(raw, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	o.mu.Lock()
	for _, rs := range req.GetResourceSpans() {
		o.resource = append(o.resource, rs.GetResource().GetAttributes()...)
		for _, ss := range rs.GetScopeSpans() {
			o.spans = append(o.spans, ss.GetSpans()...)
		}
	}
	o.mu.Unlock()
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// attrs returns a span's attributes as strings.
func attrs(kvs []*commonpb.KeyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		v := kv.GetValue()
		switch {
		case v.GetStringValue() != "":
			m[kv.GetKey()] = v.GetStringValue()
		default:
			m[kv.GetKey()] = v.String()
		}
	}
	return m
}

// TestServeTracesSignInAndRefresh runs serve with OTEL_EXPORTER_OTLP_ENDPOINT
// naming an in-process OTLP receiver, signs a person in and refreshes with a
// W3C traceparent, stops serve (which flushes the spans), and checks the
// span tree: the callback with its upstream token request as a child, the
// token requests by grant type with fosite's spans and store calls under
// them, the refresh continuing the caller's trace, and no token, code or
// secret in any attribute.
func TestServeTracesSignInAndRefresh(t *testing.T) {
	recv := &otlpReceiver{}
	collector := httptest.NewServer(recv)
	defer collector.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	t.Setenv("OTEL_SERVICE_NAME", "keyward-test")

	b := startBroker(t)
	oc := b.client()
	tok := signIn(t, oc)
	// The refresh continues a trace the client started.
	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, b.issuer+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Traceparent", "00-"+traceID+"-"+parentID+"-01")
	req.SetBasicAuth(oc.ClientID, oc.ClientSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	refreshed, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("refresh = %d %s", resp.StatusCode, refreshed)
	}
	b.stop() // flushes the spans

	recv.mu.Lock()
	defer recv.mu.Unlock()
	byID := map[string]*tracepb.Span{}
	for _, s := range recv.spans {
		byID[hex.EncodeToString(s.GetSpanId())] = s
	}
	find := func(name string, match func(map[string]string) bool) *tracepb.Span {
		for _, s := range recv.spans {
			if s.GetName() == name && (match == nil || match(attrs(s.GetAttributes()))) {
				return s
			}
		}
		var names []string
		for _, s := range recv.spans {
			names = append(names, s.GetName())
		}
		t.Fatalf("no span %q among %q", name, names)
		return nil
	}
	parentOf := func(s *tracepb.Span) *tracepb.Span { return byID[hex.EncodeToString(s.GetParentSpanId())] }
	descendsFrom := func(s, root *tracepb.Span) bool {
		for p := parentOf(s); p != nil; p = parentOf(p) {
			if p == root {
				return true
			}
		}
		return false
	}
	grant := func(g string) func(map[string]string) bool {
		return func(a map[string]string) bool { return a["oauth.grant_type"] == g }
	}

	callback := find("GET /callback", nil)
	upstreamToken := find("POST", func(a map[string]string) bool { return a["keyward.upstream"] == "corp" && a["url.path"] == "/token" })
	if !descendsFrom(upstreamToken, callback) {
		t.Error("the upstream's token request is not a child of the callback's span")
	}
	code := find("POST /token", grant("authorization_code"))
	refresh := find("POST /token", grant("refresh_token"))
	if got := hex.EncodeToString(refresh.GetTraceId()); got != traceID || hex.EncodeToString(refresh.GetParentSpanId()) != parentID {
		t.Errorf("refresh span: trace %s parent %x, want the caller's trace %s and span %s", got, refresh.GetParentSpanId(), traceID, parentID)
	}
	if a := attrs(refresh.GetAttributes()); a["http.route"] != "/token" || a["http.response.status_code"] != "int_value:200" {
		t.Errorf("refresh span attributes %v, want route /token, status 200", a)
	}
	for _, root := range []*tracepb.Span{code, refresh} {
		var fosite, stored bool
		for _, s := range recv.spans {
			if descendsFrom(s, root) {
				fosite = fosite || strings.HasPrefix(s.GetName(), "Fosite.")
				stored = stored || strings.HasPrefix(s.GetName(), "store.")
			}
		}
		if !fosite || !stored {
			t.Errorf("token span (%v) has fosite spans under it: %v, store spans: %v; want both", attrs(root.GetAttributes())["oauth.grant_type"], fosite, stored)
		}
	}
	if got := attrs(recv.resource)["service.name"]; got != "keyward-test" {
		t.Errorf("resource service.name = %q, want OTEL_SERVICE_NAME's keyward-test", got)
	}

	secrets := []string{tok.AccessToken, tok.RefreshToken, "app-secret-0123456789", "upstream-secret", strings.Repeat("s", 32)}
	if id, ok := tok.Extra("id_token").(string); ok {
		secrets = append(secrets, id)
	}
	var newer struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.Unmarshal(refreshed, &newer); err != nil || newer.AccessToken == "" {
		t.Fatalf("refresh answer %s: %v", refreshed, err)
	}
	secrets = append(secrets, newer.AccessToken, newer.RefreshToken)
	for _, s := range recv.spans {
		for k, v := range attrs(s.GetAttributes()) {
			for _, secret := range secrets {
				if secret != "" && strings.Contains(v, secret) {
					t.Errorf("span %q attribute %s holds a token or secret", s.GetName(), k)
				}
			}
			if strings.Contains(v, "code=") || strings.Contains(v, "state=") {
				t.Errorf("span %q attribute %s = %q holds a query with a code or state", s.GetName(), k, v)
			}
		}
	}
	if t.Failed() {
		t.Logf("spans: %d", len(recv.spans))
	}
}
