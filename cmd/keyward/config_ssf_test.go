package main

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

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
		req.Header.Set("Content-Type", "application/secevent+jwt")
		req.Header.Set("Authorization", "Bearer "+tt.token)
		rec := httptest.NewRecorder()
		inst.handler.ServeHTTP(rec, req)
		if rec.Code != tt.want || !strings.Contains(rec.Body.String(), `"err":"`+tt.err+`"`) {
			t.Errorf("POST %s = %d %s, want %d err %s", tt.path, rec.Code, rec.Body, tt.want, tt.err)
		}
	}
}
