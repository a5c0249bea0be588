package e2e

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/test/brokertest"
)

// logBuffer is a goroutine-safe log sink.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestRefusalsSayAndLogTheCause: an /authorize without redirect_uri gets a
// page and a log line naming that; a failed client authentication at
// /token is logged with the claimed client_id and whether the client is
// unknown or its secret wrong, never the secret.
func TestRefusalsSayAndLogTheCause(t *testing.T) {
	var logs logBuffer
	env := brokertest.New(t, brokertest.Options{
		Dir: t.TempDir(), NoSync: true, Upstreams: 1, AutoLogin: "alice",
		Clients: []broker.Client{{ID: appID, Name: "The App", Secret: appSecret, RedirectURIs: []string{appRedir}}},
		Logger:  slog.New(slog.NewTextHandler(&logs, nil)),
	})

	q := url.Values{"client_id": {appID}, "response_type": {"code"}, "scope": {"openid"}, "state": {"state-0123456789"},
		"code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"}}
	resp, err := http.Get(env.Issuer + "/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(page), "has no redirect_uri") || strings.Contains(string(page), "has not registered") {
		t.Errorf("/authorize without redirect_uri = %d, page:\n%s\nwant 400 saying redirect_uri is missing", resp.StatusCode, page)
	}

	for _, c := range []struct{ id, secret string }{{appID, "wrong-secret-1"}, {"nobody", "nobody-secret-1"}} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, env.Issuer+"/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(c.id, c.secret)
		if status, body := do(t, req); status != http.StatusUnauthorized || body["error"] != "invalid_client" {
			t.Errorf("/token as %s = %d %v, want 401 invalid_client", c.id, status, body)
		}
	}

	out := logs.String()
	for _, want := range []string{
		"refusal=no_redirect_uri", "The 'redirect_uri' parameter is required",
		"claimed_client_id=app client_auth=wrong_secret", "claimed_client_id=nobody client_auth=unknown_client",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{"wrong-secret-1", "nobody-secret-1"} {
		if strings.Contains(out, secret) {
			t.Errorf("log holds the secret %q", secret)
		}
	}
}
