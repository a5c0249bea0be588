package web_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/test/brokertest"
	"github.com/keyward/keyward/web"
)

const (
	adminToken  = "admin-token-0123456789-0123456789-abcdef"
	adminApp    = "app"
	adminSecret = "app-secret-0123456789-0123456789-abcdef"
	adminRedir  = "http://127.0.0.1:1/app/callback"
)

type adminEnv struct {
	env *brokertest.Env
	api *httptest.Server
}

func newAdminEnv(t *testing.T) *adminEnv {
	t.Helper()
	env := brokertest.New(t, brokertest.Options{
		Dir: t.TempDir(), NoSync: true, AutoLogin: "alice",
		Clients: []broker.Client{{ID: adminApp, Secret: adminSecret, RedirectURIs: []string{adminRedir}}},
		Broker:  func(c *broker.Config) { c.RevocationReaders = []string{adminApp} },
	})
	api := httptest.NewServer(web.NewAdmin(web.AdminConfig{Broker: env.Broker, Keys: env.Keys, Token: []byte(adminToken)}))
	t.Cleanup(api.Close)
	return &adminEnv{env: env, api: api}
}

// signIn runs a code flow for the fake IdP's user in a new browser and
// returns the tokens.
func (e *adminEnv) signIn(t *testing.T) *oauth2.Token {
	t.Helper()
	tok, err := e.env.SignIn(t.Context(), oauth2.Config{
		ClientID: adminApp, ClientSecret: adminSecret, RedirectURL: adminRedir,
		Endpoint: oauth2.Endpoint{AuthURL: e.env.Issuer + "/authorize", TokenURL: e.env.Issuer + "/token"},
		Scopes:   []string{"openid", "email", "offline_access"},
	})
	if err != nil {
		t.Fatalf("sign in: %v", err)
	}
	return tok
}

func (e *adminEnv) call(t *testing.T, token, method, path, body string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, e.api.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q, want application/json", method, path, ct)
	}
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("%s %s: %d, body is not JSON: %v", method, path, resp.StatusCode, err)
	}
	return resp.StatusCode, m
}

func TestAdminRefusesWithoutToken(t *testing.T) {
	e := newAdminEnv(t)
	for _, tc := range []struct{ name, token, path string }{
		{"no token", "", "/admin/v1/subjects"},
		{"wrong token", "not-the-token", "/admin/v1/subjects"},
		{"prefix of the token", adminToken[:10], "/admin/v1/keys"},
		{"unknown path", "", "/admin/v1/nothing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, m := e.call(t, tc.token, http.MethodGet, tc.path, "")
			if status != http.StatusUnauthorized || m["error"] != "unauthorized" {
				t.Errorf("GET %s = %d %v, want 401 unauthorized", tc.path, status, m)
			}
		})
	}
	// No configured token refuses everything, the empty one too.
	h := web.NewAdmin(web.AdminConfig{Broker: e.env.Broker, Keys: e.env.Keys})
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/admin/v1/subjects", nil)
	req.Header.Set("Authorization", "Bearer ")
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("without a configured token: %d, want 401", rec.Code)
	}
}

func TestAdminEndpoints(t *testing.T) {
	e := newAdminEnv(t)
	tok := e.signIn(t)
	a := func(method, path, body string, want int) map[string]any {
		t.Helper()
		status, m := e.call(t, adminToken, method, path, body)
		if status != want {
			t.Fatalf("%s %s = %d %v, want %d", method, path, status, m, want)
		}
		return m
	}

	subs := a(http.MethodGet, "/admin/v1/subjects", "", 200)["subjects"].([]any)
	if len(subs) != 1 {
		t.Fatalf("subjects = %v, want one", subs)
	}
	sub := subs[0].(map[string]any)
	id := sub["id"].(string)
	if sub["email"] != "alice@example.com" || sub["disabled"] != false {
		t.Errorf("subject = %v, want alice, active", sub)
	}
	detail := a(http.MethodGet, "/admin/v1/subjects/"+id, "", 200)
	sessions := detail["sessions"].([]any)
	if len(sessions) != 1 {
		t.Fatalf("sessions of %s = %v, want one", id, sessions)
	}
	if got := a(http.MethodGet, "/admin/v1/sessions?subject="+id, "", 200)["sessions"].([]any); len(got) != 1 {
		t.Errorf("GET sessions?subject = %v, want one", got)
	}
	if got := a(http.MethodGet, "/admin/v1/sessions?subject=nobody", "", 200)["sessions"].([]any); len(got) != 0 {
		t.Errorf("GET sessions?subject=nobody = %v, want none", got)
	}

	// Unknown subjects and sessions are 404 with a clear message.
	for _, c := range []struct{ method, path, body string }{
		{http.MethodGet, "/admin/v1/subjects/nobody", ""},
		{http.MethodPost, "/admin/v1/subjects/nobody/deprovision", `{"reason":"x"}`},
		{http.MethodPost, "/admin/v1/subjects/nobody/reinstate", ""},
		{http.MethodPost, "/admin/v1/deprovision", `{"email":"nobody@example.com"}`},
		{http.MethodDelete, "/admin/v1/sessions/nosuch", ""},
	} {
		m := a(c.method, c.path, c.body, 404)
		if m["error"] != "not_found" || !strings.Contains(m["message"].(string), "unknown") {
			t.Errorf("%s %s = %v, want not_found with a message", c.method, c.path, m)
		}
	}
	// Bad requests.
	a(http.MethodPost, "/admin/v1/deprovision", `{"reason":"no email"}`, 400)
	a(http.MethodPost, "/admin/v1/subjects/"+id+"/deprovision", `{"reson":"typo"}`, 400)
	a(http.MethodGet, "/admin/v1/audit?limit=0", "", 400)
	a(http.MethodPost, "/admin/v1/subjects/"+id+"/deprovision", `{"reason":"`+strings.Repeat("x", 20<<10)+`"}`, 413)
	a(http.MethodPut, "/admin/v1/subjects", "", 405)

	// Keys and clients.
	keys := a(http.MethodGet, "/admin/v1/keys", "", 200)["keys"].([]any)
	if len(keys) < 2 {
		t.Errorf("keys = %v, want current and next", keys)
	}
	rotated := a(http.MethodPost, "/admin/v1/keys/rotate", `{"reason":"drill"}`, 200)
	if rotated["next_rotation"] == nil {
		t.Errorf("keys/rotate = %v, want next_rotation", rotated)
	}
	clients := a(http.MethodGet, "/admin/v1/clients", "", 200)["clients"].([]any)
	if c := clients[0].(map[string]any); len(clients) != 1 || c["id"] != adminApp || c["revocation_reader"] != true || c["secret"] != nil {
		t.Errorf("clients = %v, want app, a feed reader, without secret", clients)
	}

	// Ending the session.
	sid := sessions[0].(map[string]any)["id"].(string)
	rs := a(http.MethodDelete, "/admin/v1/sessions/"+sid+"?reason=lost+laptop", "", 200)
	if rev := rs["revocation"].(map[string]any); rev["kind"] != "session" || rev["session_id"] != sid || rs["refresh_tokens_revoked"] != true {
		t.Errorf("DELETE session = %v, want a session feed entry and its refresh tokens revoked", rs)
	}

	// Deprovision, by id then by email, and reinstate.
	d := a(http.MethodPost, "/admin/v1/subjects/"+id+"/deprovision", `{"reason":"left"}`, 200)
	// The session's grants went with the session above; nothing is left.
	if rev := d["revocation"].(map[string]any); rev["kind"] != "subject" || rev["subject"] != id || d["grants_deleted"].(float64) != 0 {
		t.Errorf("deprovision = %v, want a subject feed entry (grants already gone with the session)", d)
	}
	if s := a(http.MethodGet, "/admin/v1/subjects/"+id, "", 200)["subject"].(map[string]any); s["disabled"] != true || s["not_before"] == nil {
		t.Errorf("after deprovision: %v, want disabled with not_before", s)
	}
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, e.env.Issuer+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(adminApp, adminSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "invalid_grant") {
		t.Errorf("refresh after deprovision = %d %s, want 400 invalid_grant", resp.StatusCode, body)
	}
	byEmail := a(http.MethodPost, "/admin/v1/deprovision", `{"email":"ALICE@example.com","reason":"again"}`, 200)
	if r := byEmail["results"].([]any); len(r) != 1 || r[0].(map[string]any)["subject"] != id {
		t.Errorf("deprovision by email = %v, want %s", byEmail, id)
	}
	re := a(http.MethodPost, "/admin/v1/subjects/"+id+"/reinstate", `{"reason":"back"}`, 200)["subject"].(map[string]any)
	if re["disabled"] != false || re["not_before"] == nil {
		t.Errorf("reinstate = %v, want active with not_before kept", re)
	}

	// Every mutating action is in the audit log, newest last.
	events := a(http.MethodGet, "/admin/v1/audit?limit=10", "", 200)["events"].([]any)
	var got []string
	for _, ev := range events {
		m := ev.(map[string]any)
		if m["actor"] != web.AdminActor {
			t.Errorf("audit event %v: actor, want %s", m, web.AdminActor)
		}
		got = append(got, m["action"].(string)+":"+m["reason"].(string))
	}
	want := []string{"keys.rotate:drill", "session.revoke:lost laptop", "deprovision:left", "deprovision:again", "reinstate:back"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("audit = %v, want %v", got, want)
	}
}
