package broker

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/store"
)

// TestTokenErrorDescriptions: the common /token refusals answer with
// Keyward's own short sentence (exact), under RFC 6749's error codes, and
// a failed client authentication is logged with the claimed client_id and
// its reason, never the secret.
func TestTokenErrorDescriptions(t *testing.T) {
	f := newFixture(t)
	var logs bytes.Buffer
	up := &fakeUpstream{id: "corp", name: "Corp", issuer: "https://idp.example.com", authURL: "https://idp.example.com/auth", identity: aliceIdentity()}
	b := newTestBroker(t, f, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	}, up)
	tokenFor := func() map[string]any {
		code, _ := signInCode(t, b, up, nil)
		return redeem(t, b, code)
	}
	codeForm := func(code string, edit func(url.Values)) url.Values {
		v := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {testRedirect}, "client_id": {"app"}, "code_verifier": {testVerifier}}
		if edit != nil {
			edit(v)
		}
		return v
	}
	refreshForm := func(rt string) url.Values {
		return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"app"}}
	}
	type refusal struct {
		name, code, desc string
		status           int
		form             url.Values
		basic            []string
	}
	var cases []refusal

	cases = append(cases, refusal{"bad code", "invalid_grant", "The authorization code is unknown.", 400, codeForm("kw_ac_bogusbogusbogus.bogusbogusbogus", nil), nil})

	used, _ := signInCode(t, b, up, nil)
	redeem(t, b, used)
	cases = append(cases, refusal{"reused code", "invalid_grant", "The authorization code was already used; the tokens issued for it are revoked.", 400, codeForm(used, nil), nil})

	code, _ := signInCode(t, b, up, nil)
	cases = append(cases, refusal{"wrong PKCE verifier", "invalid_grant", "The code_verifier does not match the code_challenge of the authorization request.", 400,
		codeForm(code, func(v url.Values) { v.Set("code_verifier", strings.Repeat("x", 43)) }), nil})
	code, _ = signInCode(t, b, up, nil)
	cases = append(cases, refusal{"wrong redirect_uri", "invalid_grant", "redirect_uri does not match the one of the authorization request.", 400,
		codeForm(code, func(v url.Values) { v.Set("redirect_uri", testRedirect+"/other") }), nil})

	expired := tokenFor()["refresh_token"].(string)
	sig := expired[strings.LastIndexByte(expired, '.')+1:]
	if err := f.st.UpdateGrant(t.Context(), store.GrantRefreshToken, sig, func(g store.Grant) (store.Grant, error) {
		g.ExpiresAt = time.Now().Add(-time.Minute)
		return g, nil
	}); err != nil {
		t.Fatal(err)
	}
	cases = append(cases, refusal{"expired refresh token", "invalid_grant", "The refresh token has expired.", 400, refreshForm(expired), nil})

	revoked := tokenFor()["refresh_token"].(string)
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodPost, testIssuer+"/revoke", strings.NewReader(url.Values{"token": {revoked}, "client_id": {"app"}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	b.Revoke(t.Context(), w, r)
	if w.Code != http.StatusOK {
		t.Fatalf("revoke: %d %s", w.Code, w.Body)
	}
	cases = append(cases, refusal{"revoked refresh token", "invalid_grant", "The refresh token is unknown: it was never issued, or it was revoked (sign-out, an administrator, or the person's access removed).", 400, refreshForm(revoked), nil})

	reused := tokenFor()["refresh_token"].(string)
	if status, body := post(t, b.tokenHandler(t), refreshForm(reused)); status != http.StatusOK {
		t.Fatalf("refresh: %d %v", status, body)
	}

	deprovisioned := tokenFor()["refresh_token"].(string)

	cases = append(cases,
		refusal{"unknown client", "invalid_client", "Client authentication failed: unknown client_id or wrong client secret.", 401, url.Values{"grant_type": {"client_credentials"}}, []string{"nobody", "nobody-secret"}},
		refusal{"wrong secret", "invalid_client", "Client authentication failed: unknown client_id or wrong client secret.", 401, url.Values{"grant_type": {"client_credentials"}}, []string{"svc", "wrong-secret"}},
		refusal{"audience not allowed", "invalid_request", "The client may not request the audience elsewhere.", 400, url.Values{"grant_type": {"client_credentials"}, "audience": {"elsewhere"}}, []string{"svc", "svc-secret"}},
		refusal{"scope not allowed", "invalid_scope", "The client may not request the scope admin.", 400, url.Values{"grant_type": {"client_credentials"}, "scope": {"admin"}}, []string{"svc", "svc-secret"}},
		refusal{"unsupported grant type", "unsupported_grant_type", "The grant type password is not supported.", 400, url.Values{"grant_type": {"password"}}, []string{"svc", "svc-secret"}},
	)
	for _, c := range cases {
		status, body := post(t, b.tokenHandler(t), c.form, c.basic...)
		if status != c.status || body["error"] != c.code || body["error_description"] != c.desc {
			t.Errorf("%s: %d %v\nwant %d %s %q", c.name, status, body, c.status, c.code, c.desc)
		}
	}

	// Past the grace period, a rotated refresh token is reuse.
	f.now = f.now.Add(time.Hour)
	if status, body := post(t, b.tokenHandler(t), refreshForm(reused)); status != 400 || body["error"] != "invalid_grant" ||
		body["error_description"] != "The refresh token was already used; all tokens of its grant are now revoked." {
		t.Errorf("reused refresh token: %d %v", status, body)
	}
	// Deprovisioning deletes the person's grants.
	if _, err := b.Deprovision(t.Context(), SubjectID("corp", "alice"), "left", "test"); err != nil {
		t.Fatal(err)
	}
	if status, body := post(t, b.tokenHandler(t), refreshForm(deprovisioned)); status != 400 || body["error"] != "invalid_grant" ||
		body["error_description"] != "The refresh token is unknown: it was never issued, or it was revoked (sign-out, an administrator, or the person's access removed)." {
		t.Errorf("refresh of a deprovisioned person: %d %v", status, body)
	}

	out := logs.String()
	for _, want := range []string{"claimed_client_id=nobody client_auth=unknown_client", "claimed_client_id=svc client_auth=wrong_secret"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{"nobody-secret", "wrong-secret"} {
		if strings.Contains(out, secret) {
			t.Errorf("log holds the secret %q", secret)
		}
	}
}
