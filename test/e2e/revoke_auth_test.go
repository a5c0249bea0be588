package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestRevokeClientAuthFailure: a failed client authentication at /revoke
// answers 401 invalid_client with a WWW-Authenticate challenge (RFC 6749
// §5.2, RFC 7009 §2.2.1), in Keyward's words, and revokes nothing.
func TestRevokeClientAuthFailure(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.client(appID, appSecret, appRedir, nil)
	tok, _ := c.signIn()
	for _, tt := range []struct {
		name, id, secret, desc string
	}{
		{"wrong secret", appID, "wrong-secret", "Client authentication failed: unknown client_id or wrong client secret."},
		{"unknown client", "nobody", "nobody-secret", "Client authentication failed: unknown client_id or wrong client secret."},
	} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.issuer+"/revoke", strings.NewReader(url.Values{"token": {tok.RefreshToken}}.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(tt.id, tt.secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		challenge := resp.Header.Get("WWW-Authenticate")
		var body map[string]any
		err = json.NewDecoder(resp.Body).Decode(&body)
		_ = resp.Body.Close()
		if err != nil {
			t.Fatalf("%s: %d, body is not JSON: %v", tt.name, resp.StatusCode, err)
		}
		status := resp.StatusCode
		if status != http.StatusUnauthorized || body["error"] != "invalid_client" || body["error_description"] != tt.desc {
			t.Errorf("%s: %d %v, want 401 invalid_client %q", tt.name, status, body, tt.desc)
		}
		if !strings.HasPrefix(challenge, "Basic ") {
			t.Errorf("%s: WWW-Authenticate %q, want a Basic challenge", tt.name, challenge)
		}
	}
	if status, m := c.refresh(tok.RefreshToken); status != http.StatusOK {
		t.Errorf("refresh after the refused revocations = %d %v, want 200", status, m)
	}
}
