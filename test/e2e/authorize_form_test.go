package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/test/brokertest"
)

// formEnv is a broker whose bbolt file the test can weigh, with a login
// limit generous enough for the requests below.
func formEnv(t *testing.T) (*brokertest.Env, string) {
	t.Helper()
	dir := t.TempDir()
	env := brokertest.New(t, brokertest.Options{
		Dir: dir, NoSync: true, AutoLogin: "alice",
		Clients: []broker.Client{{ID: appID, Name: "The App", Secret: appSecret, RedirectURIs: []string{appRedir}}},
		Broker:  func(bc *broker.Config) { bc.LoginLimits = broker.LoginLimits{PerMinute: 6000, Burst: 100} },
	})
	return env, filepath.Join(dir, "keyward.db")
}

// authorizeForm is a valid /authorize request of the app as a form.
func authorizeForm() url.Values {
	return url.Values{
		"client_id": {appID}, "redirect_uri": {appRedir}, "response_type": {"code"},
		"scope": {"openid email"}, "state": {"state-0123456789"}, "nonce": {"nonce-0123456789"},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"},
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// An /authorize request padded with parameters Keyward does not use
// stores only the parameters it does use: 40 requests with 60 KB of
// padding each (2.4 MB in all) leave the stored attempts at their usual
// size and the bbolt file where it was.
func TestAuthorizeStoresOnlyKnownParameters(t *testing.T) {
	env, dbPath := formEnv(t)
	padding := strings.Repeat("x", 60_000)
	before := fileSize(t, dbPath)
	for i := range 40 {
		form := authorizeForm()
		form.Set("pad", padding)
		form.Set("ui_locales", "de")
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, env.Issuer+"/authorize", strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := noRedirect().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, err := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusSeeOther || err != nil || !strings.HasPrefix(loc.String(), env.IdPs[0].URL()) {
			t.Fatalf("padded POST /authorize #%d = %d to %q, want 303 to the upstream", i+1, resp.StatusCode, resp.Header.Get("Location"))
		}
		a, err := env.Store.GetLoginAttemptByState(t.Context(), loc.Query().Get("state"))
		if err != nil {
			t.Fatalf("the attempt of request #%d: %v", i+1, err)
		}
		raw, err := json.Marshal(a) // what store/bolt writes
		if err != nil {
			t.Fatal(err)
		}
		if len(raw) > 2048 {
			t.Fatalf("stored attempt #%d is %d bytes, want at most 2048 (the padding is not kept)", i+1, len(raw))
		}
		for _, dropped := range []string{"pad", "ui_locales"} {
			if _, ok := a.AuthorizeForm[dropped]; ok {
				t.Fatalf("stored attempt #%d keeps the unused parameter %s", i+1, dropped)
			}
		}
		if a.AuthorizeForm.Get("nonce") != "nonce-0123456789" || a.AuthorizeForm.Get("code_challenge") != form.Get("code_challenge") {
			t.Fatalf("stored attempt #%d lost a parameter the sign-in needs: %v", i+1, a.AuthorizeForm)
		}
	}
	grown := fileSize(t, dbPath) - before
	t.Logf("bbolt file: %d bytes before, grew by %d for 40 padded attempts", before, grown)
	if grown > 1<<20 {
		t.Errorf("the bbolt file grew by %d bytes for 40 attempts, want at most 1 MiB", grown)
	}
}

// Oversized or repeated parameters get the 400 page, before anything is
// written, and never a redirect that would echo them.
func TestAuthorizeRefusesOversizedParameters(t *testing.T) {
	le := newLimitedEnv(t, 1, broker.LoginLimits{})
	for _, tc := range []struct {
		name string
		edit func(url.Values)
		want string // in the page
	}{
		{"state of 5000 bytes", func(f url.Values) { f.Set("state", strings.Repeat("s", 5000)) }, "state"},
		{"nonce of 2000 bytes", func(f url.Values) { f.Set("nonce", strings.Repeat("n", 2000)) }, "nonce"},
		{"state twice", func(f url.Values) { f.Add("state", "state-9876543210") }, "state"},
		{"login_hint of 1000 bytes", func(f url.Values) { f.Set("login_hint", strings.Repeat("l", 1000)) }, "login_hint"},
		{"100 audiences", func(f url.Values) {
			for range 100 {
				f.Add("audience", appID)
			}
		}, "audience"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			form := authorizeForm()
			tc.edit(form)
			resp, body := getNoFollow(t, nil, le.Issuer+"/authorize?"+form.Encode())
			if resp.StatusCode != http.StatusBadRequest || pageTitle(body) != "Invalid sign-in request" || resp.Header.Get("Location") != "" {
				t.Fatalf("GET /authorize with %s = %d %q Location %q, want the 400 page; body: %.300s", tc.name, resp.StatusCode, pageTitle(body), resp.Header.Get("Location"), body)
			}
			if !strings.Contains(body, tc.want) {
				t.Errorf("the page does not name the parameter %s; body: %.600s", tc.want, body)
			}
			if n := le.attempts.created.Load(); n != 0 {
				t.Errorf("login attempts written = %d, want 0", n)
			}
		})
	}
	// Parameters up to their caps still sign in.
	form := authorizeForm()
	form.Set("state", strings.Repeat("s", 1024))
	form.Set("nonce", strings.Repeat("n", 512))
	resp, body := getNoFollow(t, nil, le.Issuer+"/authorize?"+form.Encode())
	le.wantUpstreamRedirect(t, "authorize with state and nonce at their caps", resp, body)
}

// The caps once held only when the caps only when in.Request.ParseMultipartForm returns nil or
// ErrNotMultipart. For a multipart POST whose query holds a ';', it parses
// the whole form and then returns ParseForm's "invalid semicolon
// separator" error: the check is skipped, fosite's own ParseMultipartForm
// finds the form already parsed and returns nil, and the oversized state
// is written to the store with the login attempt.
func TestAuthorizeCapsHoldWhenTheQueryHasASemicolon(t *testing.T) {
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
