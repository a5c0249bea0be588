package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// TestIntrospectionClientAuthentication: /introspect answers only a client
// that authenticates with a method discovery advertises for it
// (client_secret_basic). An access token is no credential there, whether
// in the Authorization header, the form or the query, and whichever grant
// issued it; a refusal is 401 invalid_client with a Basic challenge and
// says nothing about the token asked about.
func TestIntrospectionClientAuthentication(t *testing.T) {
	x := newExchangeEnv(t)
	user, _ := x.client(appID, appSecret, appRedir, nil).signIn()
	// Three kinds of valid Keyward access token as would-be credentials.
	bot := x.clientCredentials(t, botID, botSecret, url.Values{"audience": {"orders-api"}})
	status, m := x.exchange(t, ciID, "", url.Values{"subject_token": {x.ciToken(nil)}, "subject_token_type": {tokenTypeJW}, "audience": {"deploy-api"}})
	if status != http.StatusOK {
		t.Fatalf("workload exchange = %d %v", status, m)
	}
	workload := m["access_token"].(string)

	var doc struct {
		Methods []string `json:"introspection_endpoint_auth_methods_supported"`
	}
	resp := x.client(appID, appSecret, appRedir, nil).get(x.issuer + "/.well-known/openid-configuration")
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(doc.Methods, []string{"client_secret_basic"}) {
		t.Errorf("introspection_endpoint_auth_methods_supported = %v, want [client_secret_basic]", doc.Methods)
	}

	// The attack: another token in access_token introspects alice's
	// refresh token.
	target := user.RefreshToken
	form := func(extra url.Values) string {
		v := url.Values{"token": {target}}
		for k, vs := range extra {
			v[k] = vs
		}
		return v.Encode()
	}
	multipartBody := func(fields url.Values) (string, string) {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		for k, vs := range fields {
			for _, v := range vs {
				_ = mw.WriteField(k, v)
			}
		}
		_ = mw.Close()
		return buf.String(), mw.FormDataContentType()
	}
	const formType = "application/x-www-form-urlencoded"
	type request struct {
		name        string
		query       url.Values
		body        string
		contentType string
		header      http.Header
		basic       []string // id, secret
	}
	mpBody, mpType := multipartBody(url.Values{"token": {target}, "access_token": {bot}})
	refused := []request{
		{name: "client-credentials token in the form", body: form(url.Values{"access_token": {bot}}), contentType: formType},
		{name: "workload-exchange token in the form", body: form(url.Values{"access_token": {workload}}), contentType: formType},
		{name: "a person's access token in the form", body: form(url.Values{"access_token": {user.AccessToken}}), contentType: formType},
		{name: "token in the query", query: url.Values{"access_token": {bot}}, body: form(nil), contentType: formType},
		{name: "token in a multipart form", body: mpBody, contentType: mpType},
		{name: "bearer token", body: form(nil), contentType: formType, header: http.Header{"Authorization": {"Bearer " + bot}}},
		{name: "valid client and an access token", body: form(url.Values{"access_token": {bot}}), contentType: formType, basic: []string{appID, appSecret}},
		{name: "valid client and an empty access_token", query: url.Values{"access_token": {""}}, body: form(nil), contentType: formType, basic: []string{appID, appSecret}},
		{name: "no credentials", body: form(nil), contentType: formType},
		{name: "wrong secret", body: form(nil), contentType: formType, basic: []string{appID, "not-the-secret"}},
		{name: "unknown client", body: form(nil), contentType: formType, basic: []string{"nobody", appSecret}},
		{name: "public client", body: form(nil), contentType: formType, basic: []string{ciID, ""}},
		{name: "client_secret_post (not advertised)", body: form(url.Values{"client_id": {appID}, "client_secret": {appSecret}}), contentType: formType},
	}
	send := func(t *testing.T, r request) (*http.Response, []byte) {
		t.Helper()
		u := x.issuer + "/introspect"
		if r.query != nil {
			u += "?" + r.query.Encode()
		}
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, u, strings.NewReader(r.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", r.contentType)
		for k, v := range r.header {
			req.Header[k] = v
		}
		if r.basic != nil {
			req.SetBasicAuth(url.QueryEscape(r.basic[0]), url.QueryEscape(r.basic[1]))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("POST /introspect: %v", err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}
	for _, r := range refused {
		t.Run(r.name, func(t *testing.T) {
			resp, body := send(t, r)
			var m map[string]any
			_ = json.Unmarshal(body, &m)
			if resp.StatusCode != http.StatusUnauthorized || m["error"] != "invalid_client" {
				t.Fatalf("introspect = %d %.300s, want 401 invalid_client", resp.StatusCode, body)
			}
			if _, leaked := m["active"]; leaked || bytes.Contains(body, []byte(`"sub"`)) {
				t.Errorf("a refused introspection answered about the token: %s", body)
			}
			if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, `Basic realm="`) {
				t.Errorf("WWW-Authenticate = %q, want a Basic challenge (RFC 6749 §5.2)", got)
			}
			if desc, _ := m["error_description"].(string); desc == "" || strings.Contains(strings.ToLower(desc), "fosite") {
				t.Errorf("error_description = %q, want Keyward's own sentence", desc)
			}
			if got := resp.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", got)
			}
		})
	}

	// The authenticated client gets its answer, refresh tokens included.
	resp, body := send(t, request{body: form(nil), contentType: formType, basic: []string{appID, appSecret}})
	var got map[string]any
	_ = json.Unmarshal(body, &got)
	if resp.StatusCode != http.StatusOK || got["active"] != true {
		t.Errorf("introspect as the app = %d %s, want 200 active", resp.StatusCode, body)
	}
}

// Any confidential client could once introspect any token. A client-credentials bot (or a
// revocation-feed reader, whose secret sits on every edge) that gets hold
// of a person's refresh token issued to another app learns that it is
// live and whose it is (sub, client_id, aud, scope, exp).
// RFC 7662 §4: the server should decide which tokens a caller may
// introspect; a refresh token is only ever presented by its own client.
func TestIntrospectionOnlyForTokensTheCallerHasAStakeIn(t *testing.T) {
	x := newExchangeEnv(t)
	user, _ := x.client(appID, appSecret, appRedir, nil).signIn()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, x.issuer+"/introspect",
		strings.NewReader(url.Values{"token": {user.RefreshToken}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(botID, botSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if bytes.Contains(body, []byte(`"active":true`)) {
		t.Errorf("deploy-bot introspecting %s's refresh token = %d %s, want inactive (or refused): the token is neither its own nor for an audience it serves", appID, resp.StatusCode, body)
	}
}

// An access token is not a credential at /introspect: only clients are.
func TestIntrospectRequiresClientAuthentication(t *testing.T) {
	e := newEnv(t, envOptions{})
	a := e.client(appID, appSecret, appRedir, nil)
	userTok, _ := a.signIn()
	other, _ := e.client(app2ID, app2Secret, app2Redir, nil).signIn()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, e.issuer+"/introspect", strings.NewReader(url.Values{"token": {other.AccessToken}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+userTok.AccessToken)
	if status, m := do(t, req); status != http.StatusUnauthorized || m["error"] != "invalid_client" || m["active"] != nil {
		t.Errorf("introspect with a bearer access token = %d %v, want 401 invalid_client", status, m)
	}
}
