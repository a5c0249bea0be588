package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/keyward/keyward/store"
)

// Regression tests for findings of the security review.

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

// /userinfo answers for access tokens only, never for a refresh token.
func TestUserInfoRefusesRefreshToken(t *testing.T) {
	e := newEnv(t, envOptions{})
	tok, _ := e.client(appID, appSecret, appRedir, nil).signIn()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, e.issuer+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+tok.RefreshToken)
	if status, m := do(t, req); status != http.StatusUnauthorized || m["error"] != "invalid_token" {
		t.Errorf("userinfo with a refresh token = %d %v, want 401 invalid_token", status, m)
	}
}

// A code issued before the subject was disabled cannot be redeemed.
func TestCodeRedemptionChecksSubject(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.client(appID, appSecret, appRedir, nil)
	tok, _ := c.signIn()
	_, at := verifyAccessToken(t, e, tok.AccessToken, appID)
	l := newLogin()
	code := c.code(c.authorize(l), l) // single sign-on: a code at once
	err := e.store.UpdateSubject(t.Context(), at["sub"].(string), func(s store.Subject) (store.Subject, error) {
		s.Disabled = true
		return s, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.oauth.Exchange(t.Context(), code, oauth2.VerifierOption(l.verifier)); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Errorf("redeeming a code of a disabled subject: err = %v, want invalid_grant", err)
	}
}

// Tokens issued before a subject's not-before are void: exchanging one does
// not launder it into a fresh token.
func TestExchangeHonoursNotBefore(t *testing.T) {
	x := newExchangeEnv(t)
	tok, _ := x.client(appID, appSecret, appRedir, nil).signIn()
	_, at := verifyAccessToken(t, x.env, tok.AccessToken, appID)
	err := x.store.UpdateSubject(t.Context(), at["sub"].(string), func(s store.Subject) (store.Subject, error) {
		s.NotBefore = time.Now().Add(time.Second)
		return s, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	status, m := x.exchange(t, gwID, gwSecret, url.Values{"subject_token": {tok.AccessToken}, "subject_token_type": {tokenTypeAT}, "audience": {"orders-api"}})
	if status != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Errorf("exchange of a token issued before not-before = %d %v, want 400 invalid_grant", status, m)
	}
}
