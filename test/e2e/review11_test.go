package e2e

import (
	"bytes"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// Security review of the /authorize caps (issue 11, Medium 3): Authorize
// checks the caps only when in.Request.ParseMultipartForm returns nil or
// ErrNotMultipart. For a multipart POST whose query holds a ';', it parses
// the whole form and then returns ParseForm's "invalid semicolon
// separator" error: the check is skipped, fosite's own ParseMultipartForm
// finds the form already parsed and returns nil, and the oversized state
// is written to the store with the login attempt.
func TestReviewAuthorizeCapsSkippedOnQuerySemicolon(t *testing.T) {
	env, _ := formEnv(t)
	form := authorizeForm()
	form.Set("state", strings.Repeat("s", 60_000))
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for name, values := range form {
		for _, v := range values {
			if err := mw.WriteField(name, v); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, env.Issuer+"/authorize?x;y", &body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := noRedirect().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusBadRequest && pageTitle(string(page)) == "Invalid sign-in request" {
		return // refused, as a 60 KB state must be
	}
	detail := ""
	if loc, err := url.Parse(resp.Header.Get("Location")); err == nil {
		if a, err := env.Store.GetLoginAttemptByState(t.Context(), loc.Query().Get("state")); err == nil {
			detail = fmt.Sprintf("; the stored login attempt keeps a state of %d bytes", len(a.AuthorizeForm.Get("state")))
		}
	}
	t.Fatalf("multipart POST /authorize?x;y with a 60 KB state = %d %q, want the 400 page%s", resp.StatusCode, pageTitle(string(page)), detail)
}

// Security review of /introspect (issue 11, Medium 1): any confidential
// client may introspect any token. A client-credentials bot (or a
// revocation-feed reader, whose secret sits on every edge) that gets hold
// of a person's refresh token issued to another app learns that it is
// live and whose it is (sub, client_id, aud, scope, exp).
// RFC 7662 §4: the server should decide which tokens a caller may
// introspect; a refresh token is only ever presented by its own client.
func TestReviewIntrospectOtherClientsRefreshToken(t *testing.T) {
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
