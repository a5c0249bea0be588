package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSSFSectionValidate(t *testing.T) {
	entry := "ssf:\n  - upstream: %s\n    issuer: https://idp.example.com\n    jwksURL: https://idp.example.com/ssf/jwks\n    tokenFile: /etc/keyward/ssf\n"
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"valid", strings.Replace(entry, "%s", "corp", 1), nil},
		{"unknown upstream", strings.Replace(entry, "%s", "nope", 1), []string{"ssf[0].upstream"}},
		{"poll only", "ssf:\n  - {upstream: corp, issuer: https://idp.example.com, jwksURL: https://idp.example.com/jwks, pollURL: https://idp.example.com/ssf/poll, pollTokenFile: /etc/keyward/ssf-poll}\n", nil},
		{"poll without its token", "ssf:\n  - {upstream: corp, issuer: https://idp.example.com, jwksURL: https://idp.example.com/jwks, pollURL: https://idp.example.com/ssf/poll, pollInterval: 10ms}\n", []string{"ssf[0].pollTokenFile", "ssf[0].pollInterval"}},
		{"http issuer, no token", "ssf:\n  - upstream: corp\n    issuer: http://idp.example.com\n    jwksURL: https://idp.example.com/jwks\n", []string{"ssf[0].issuer", "ssf[0].tokenFile"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustParse(t, validYAML+tt.yaml)
			var got []string
			if err := c.Validate(); err != nil {
				got = errorPaths(t, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Validate() paths (-want +got):\n%s", diff)
			}
		})
	}
}

// TestServeMountsSSF: serve's assembly answers pushes at
// /ssf/{upstream}/events for a configured stream (a push without its token
// is 401 authentication_failed), and refuses other upstreams.
func TestServeMountsSSF(t *testing.T) {
	dir := t.TempDir()
	cfgPath, _ := keysTestConfig(t, dir, strings.Repeat("s", 40))
	data, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	tokenPath := writeFile(t, dir, "ssf-token", scimTestToken+"\n")
	cfgPath = writeFile(t, dir, "keyward.yaml", string(data)+
		"ssf:\n  - {upstream: corp, issuer: https://idp.example.com, jwksURL: https://idp.example.com/jwks, tokenFile: "+tokenPath+"}\n")
	cfg, sec, err := loadConfigFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := build(t.Context(), cfg, sec, slog.New(slog.DiscardHandler), http.DefaultTransport, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.close()
	for _, tt := range []struct {
		path, token string
		want        int
		err         string
	}{
		{"/ssf/corp/events", "wrong", http.StatusUnauthorized, "authentication_failed"},
		{"/ssf/corp/events", scimTestToken, http.StatusBadRequest, "invalid_request"}, // "garbage" is no SET
		{"/ssf/other/events", scimTestToken, http.StatusForbidden, "access_denied"},
	} {
		req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:5556"+tt.path, strings.NewReader("garbage"))
		req.RemoteAddr = "127.0.0.1:40000" // plain http is for loopback only (web's secureTransport)
		req.Header.Set("Content-Type", "application/secevent+jwt")
		req.Header.Set("Authorization", "Bearer "+tt.token)
		rec := httptest.NewRecorder()
		inst.handler.ServeHTTP(rec, req)
		if rec.Code != tt.want || !strings.Contains(rec.Body.String(), `"err":"`+tt.err+`"`) {
			t.Errorf("POST %s = %d %s, want %d err %s", tt.path, rec.Code, rec.Body, tt.want, tt.err)
		}
	}
}

// TestServePollsSSF: with ssf[].pollURL (and no push token), serve polls
// the transmitter's poll endpoint (RFC 8936) with the poll token from its
// file, and stops polling when it stops.
func TestServePollsSSF(t *testing.T) {
	polls := make(chan string, 16)
	transmitter := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		select {
		case polls <- fmt.Sprintf("%s %s %s maxEvents=%v", r.Method, r.URL.Path, r.Header.Get("Authorization"), body["maxEvents"]):
		default:
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"sets":{},"moreAvailable":false}`)
	}))
	defer transmitter.Close()

	dir := t.TempDir()
	cfgPath, _ := keysTestConfig(t, dir, strings.Repeat("s", 40))
	data, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	tokenPath := writeFile(t, dir, "ssf-poll-token", scimTestToken+"\n")
	cfgPath = writeFile(t, dir, "keyward.yaml", string(data)+
		"ssf:\n  - {upstream: corp, issuer: https://idp.example.com, jwksURL: https://idp.example.com/jwks, pollURL: "+transmitter.URL+"/poll, pollTokenFile: "+tokenPath+", pollInterval: 1s}\n")
	cfg, sec, err := loadConfigFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := build(t.Context(), cfg, sec, slog.New(slog.DiscardHandler), http.DefaultTransport, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- inst.run(ctx, ln, cfg) }()
	select {
	case got := <-polls:
		if want := "POST /poll Bearer " + scimTestToken + " maxEvents=100"; got != want {
			t.Errorf("the transmitter got %q, want %q", got, want)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not poll the transmitter")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve ended with %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop")
	}
}
