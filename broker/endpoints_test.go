package broker

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/keyward/keyward/store"
)

// post sends form to one of the token part's handlers and decodes the
// JSON answer.
func post(t *testing.T, h func(w http.ResponseWriter, r *http.Request), form url.Values, basic ...string) (int, map[string]any) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, testIssuer+"/token", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if len(basic) == 2 {
		r.SetBasicAuth(basic[0], basic[1])
	}
	w := httptest.NewRecorder()
	h(w, r)
	var body map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &body)
	return w.Code, body
}

func (b *Broker) tokenHandler(t *testing.T) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) { b.tokens.Token(t.Context(), w, r) }
}

func redeem(t *testing.T, b *Broker, code string) map[string]any {
	t.Helper()
	status, body := post(t, b.tokenHandler(t), url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {testRedirect},
		"client_id": {"app"}, "code_verifier": {testVerifier},
	})
	if status != http.StatusOK {
		t.Fatalf("redeem code: %d %v", status, body)
	}
	return body
}

func TestTokenCodeAndRefresh(t *testing.T) {
	f := newFixture(t)
	up := &fakeUpstream{id: "corp", name: "Corp", issuer: "https://idp.example.com", authURL: "https://idp.example.com/auth", identity: aliceIdentity()}
	b := newTestBroker(t, f, nil, up)
	code, _ := signInCode(t, b, up, nil)
	tok := redeem(t, b, code)
	if tok["access_token"] == nil || tok["id_token"] == nil || tok["refresh_token"] == nil {
		t.Fatalf("token answer %v, want access, ID and refresh tokens", tok)
	}
	status, ref := post(t, b.tokenHandler(t), url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}, "client_id": {"app"}})
	if status != http.StatusOK || ref["access_token"] == tok["access_token"] {
		t.Fatalf("refresh: %d %v", status, ref)
	}
	// A subject disabled since (its grants kept): the next refresh is
	// refused by the subject check.
	if err := f.st.UpdateSubject(t.Context(), SubjectID("corp", "alice"), func(s store.Subject) (store.Subject, error) {
		s.Disabled = true
		return s, nil
	}); err != nil {
		t.Fatal(err)
	}
	status, body := post(t, b.tokenHandler(t), url.Values{"grant_type": {"refresh_token"}, "refresh_token": {ref["refresh_token"].(string)}, "client_id": {"app"}})
	if status != 400 || body["error"] != "invalid_grant" || !strings.Contains(body["error_description"].(string), "Access has been removed") {
		t.Errorf("refresh after deprovisioning: %d %v, want invalid_grant, access removed", status, body)
	}
	// A code is used once.
	if status, body := post(t, b.tokenHandler(t), url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {testRedirect},
		"client_id": {"app"}, "code_verifier": {testVerifier}}); status != 400 || body["error"] != "invalid_grant" {
		t.Errorf("second redeem: %d %v, want invalid_grant", status, body)
	}
}

// TestTokenCodeOfEndedSession: a code whose session ended before it was
// redeemed is refused.
func TestTokenCodeOfEndedSession(t *testing.T) {
	f := newFixture(t)
	up := &fakeUpstream{id: "corp", name: "Corp", issuer: "https://idp.example.com", authURL: "https://idp.example.com/auth", identity: aliceIdentity()}
	b := newTestBroker(t, f, nil, up)
	code, sess := signInCode(t, b, up, nil)
	if err := f.st.DeleteSession(t.Context(), sess.ID); err != nil {
		t.Fatal(err)
	}
	status, body := post(t, b.tokenHandler(t), url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {testRedirect},
		"client_id": {"app"}, "code_verifier": {testVerifier}})
	if status != 400 || !strings.Contains(body["error_description"].(string), "session this code was issued in has ended") {
		t.Errorf("redeem after the session ended: %d %v", status, body)
	}
}

func TestTokenClientCredentialsAndErrors(t *testing.T) {
	f := newFixture(t)
	b := newTestBroker(t, f, nil)
	status, body := post(t, b.tokenHandler(t), url.Values{"grant_type": {"client_credentials"}, "scope": {"api"}}, "svc", "svc-secret")
	if status != http.StatusOK || body["access_token"] == nil {
		t.Fatalf("client_credentials: %d %v", status, body)
	}
	claims := decodeJWT(t, body["access_token"].(string))
	if claims["sub"] != "svc" || claims["client_id"] != "svc" {
		t.Errorf("client_credentials token claims %v, want sub and client_id svc", claims)
	}
	for _, tt := range []struct {
		name, want string
		form       url.Values
		basic      []string
	}{
		{"unsupported grant", "unsupported_grant_type", url.Values{"grant_type": {"password"}}, nil},
		{"wrong secret", "invalid_client", url.Values{"grant_type": {"client_credentials"}}, []string{"svc", "nope"}},
		{"no grant type", "invalid_request", url.Values{}, []string{"svc", "svc-secret"}},
	} {
		if _, body := post(t, b.tokenHandler(t), tt.form, tt.basic...); body["error"] != tt.want {
			t.Errorf("%s: %v, want %s", tt.name, body, tt.want)
		}
	}
}

func TestIntrospectUserInfoRevoke(t *testing.T) {
	f := newFixture(t)
	up := &fakeUpstream{id: "corp", name: "Corp", issuer: "https://idp.example.com", authURL: "https://idp.example.com/auth", identity: aliceIdentity()}
	b := newTestBroker(t, f, nil, up)
	code, sess := signInCode(t, b, up, nil)
	tok := redeem(t, b, code)
	at := tok["access_token"].(string)
	ctx := t.Context()
	introspect := func(w http.ResponseWriter, r *http.Request) { b.tokens.Introspect(ctx, w, r) }
	userinfo := func(token string) (int, map[string]any) {
		r := httptest.NewRequest(http.MethodGet, testIssuer+"/userinfo", nil)
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		b.tokens.UserInfo(ctx, w, r)
		var body map[string]any
		_ = json.Unmarshal(w.Body.Bytes(), &body)
		return w.Code, body
	}

	if status, body := post(t, introspect, url.Values{"token": {at}}, "rs", "rs-secret"); status != 200 || body["active"] != true || body["sub"] != SubjectID("corp", "alice") {
		t.Errorf("introspect by the token's audience: %d %v, want active", status, body)
	}
	if status, body := post(t, introspect, url.Values{"token": {at}}, "svc", "svc-secret"); status != 200 || body["active"] != false {
		t.Errorf("introspect by a client with no stake in the token: %d %v, want inactive", status, body)
	}
	if status, body := post(t, introspect, url.Values{"token": {at}}); status != 401 || body["error"] != "invalid_client" {
		t.Errorf("introspect without client: %d %v", status, body)
	}
	if status, body := post(t, introspect, url.Values{"token": {at}, "access_token": {at}}); status != 401 || body["error"] != "invalid_client" {
		t.Errorf("introspect with a bearer token: %d %v", status, body)
	}
	if status, _ := post(t, introspect, url.Values{"token": {at}}, "svc", "wrong"); status != 401 {
		t.Errorf("introspect with a wrong secret: %d", status)
	}
	if status, body := post(t, introspect, url.Values{"token": {"garbage"}}, "svc", "svc-secret"); status != 200 || body["active"] != false {
		t.Errorf("introspect garbage: %d %v, want inactive", status, body)
	}

	if status, body := userinfo(at); status != 200 || body["email"] != "alice@example.com" || body["sid"] != nil {
		t.Errorf("userinfo: %d %v, want the email claims and no sid", status, body)
	}
	if status, _ := userinfo(""); status != 401 {
		t.Errorf("userinfo without token: %d", status)
	}
	if status, _ := userinfo("garbage"); status != 401 {
		t.Errorf("userinfo with garbage: %d", status)
	}

	// The session ends: the access token is inactive and userinfo refuses it.
	if _, err := b.admin.RevokeSession(ctx, sess.ID, "r", "admin-api"); err != nil {
		t.Fatal(err)
	}
	if status, body := post(t, introspect, url.Values{"token": {at}}, "rs", "rs-secret"); status != 200 || body["active"] != false {
		t.Errorf("introspect after the session ended: %d %v, want inactive", status, body)
	}
	if status, body := userinfo(at); status != 401 || body["error"] != "invalid_token" {
		t.Errorf("userinfo after the session ended: %d %v", status, body)
	}

	revoke := func(w http.ResponseWriter, r *http.Request) { b.tokens.Revoke(ctx, w, r) }
	if status, _ := post(t, revoke, url.Values{"token": {tok["refresh_token"].(string)}, "client_id": {"app"}}); status != 200 {
		t.Errorf("revoke: %d, want 200", status)
	}
}

func TestUserInfoNeedsOpenID(t *testing.T) {
	f := newFixture(t)
	up := &fakeUpstream{id: "corp", name: "Corp", issuer: "https://idp.example.com", authURL: "https://idp.example.com/auth", identity: aliceIdentity()}
	b := newTestBroker(t, f, nil, up)
	code, _ := signInCode(t, b, up, func(q url.Values) { q.Set("scope", "email") })
	at := redeem(t, b, code)["access_token"].(string)
	r := httptest.NewRequest(http.MethodGet, testIssuer+"/userinfo", nil)
	r.Header.Set("Authorization", "Bearer "+at)
	w := httptest.NewRecorder()
	b.tokens.UserInfo(t.Context(), w, r)
	if w.Code != http.StatusForbidden || !strings.Contains(w.Header().Get("WWW-Authenticate"), "insufficient_scope") {
		t.Errorf("userinfo without openid: %d %q, want 403 insufficient_scope", w.Code, w.Header().Get("WWW-Authenticate"))
	}
}

// decodeJWT returns a JWT's claims, unverified.
func decodeJWT(t *testing.T, raw string) map[string]any {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", raw)
	}
	payload, err := base64RawURL(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	return c
}
