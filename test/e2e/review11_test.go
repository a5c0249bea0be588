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
