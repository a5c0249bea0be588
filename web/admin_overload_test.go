package web_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/test/brokertest"
	"github.com/keyward/keyward/web"
)

// TestAdminShedsBeyondMaxConcurrent holds the admin API's one slot with an
// authenticated request whose body has not arrived: the next authenticated
// request is answered at once 503 + Retry-After, while a request without
// the token is still refused 401 (strangers never reach the slots).
func TestAdminShedsBeyondMaxConcurrent(t *testing.T) {
	env := brokertest.New(t, brokertest.Options{
		Dir: t.TempDir(), NoSync: true,
		Clients: []broker.Client{{ID: adminApp, Secret: adminSecret, RedirectURIs: []string{adminRedir}}},
	})
	api := httptest.NewServer(web.NewAdmin(web.AdminConfig{Broker: env.Broker, Keys: env.Keys, Token: []byte(adminToken), MaxConcurrent: 1}))
	t.Cleanup(api.Close)
	e := &adminEnv{env: env, api: api}

	conn, err := net.Dial("tcp", strings.TrimPrefix(api.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, "POST /admin/v1/deprovision HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+adminToken+
		"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"); err != nil {
		t.Fatal(err)
	}
	// The held request is inside once another one is shed.
	for {
		status, body := e.call(t, adminToken, http.MethodGet, "/admin/v1/clients", "")
		if status == http.StatusServiceUnavailable {
			if body["error"] != "overloaded" {
				t.Errorf("shed admin request = %v, want error overloaded", body)
			}
			break
		}
		if status != http.StatusOK {
			t.Fatalf("GET clients = %d %v", status, body)
		}
	}
	if status, _ := e.call(t, "", http.MethodGet, "/admin/v1/clients", ""); status != http.StatusUnauthorized {
		t.Errorf("GET clients without the token while full = %d, want 401", status)
	}
}
