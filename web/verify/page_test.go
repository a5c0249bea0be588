package verify

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// get sends one request to srv as the browser at browserHost would, without
// following redirects, and returns the answer with its body read.
func get(t *testing.T, srv *httptest.Server, target string, hdr http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+target, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = browserHost
	for k, v := range hdr {
		req.Header[k] = v
	}
	c := srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

func TestCallbackErrorPage(t *testing.T) {
	be := newBrowserEnv(t, nil)
	srv := httptest.NewServer(be.handler(HeadersNginx))
	t.Cleanup(srv.Close)
	tests := []struct {
		target, want, notWant string
	}{
		// A state was sent, but no sign-in of this browser has it.
		{"/oauth2/callback?code=x&state=y", "not started in this browser", "no state"},
		{"/oauth2/callback?code=x&state=" + strings.Repeat("A", 26), "not started in this browser", "no state"},
		{"/oauth2/callback?code=x", "has no state parameter", "not started"},
	}
	for _, tt := range tests {
		resp, body := get(t, srv, tt.target, nil)
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("GET %s = %d, want 400", tt.target, resp.StatusCode)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("GET %s: Content-Type %q, want HTML", tt.target, ct)
		}
		for _, s := range []string{"<title>Sign-in failed · Keyward</title>", "<style>", `class="kw-card"`, tt.want, `href="/oauth2/start?rd=%2F"`, `<link rel="icon" href="data:,">`} {
			if !strings.Contains(body, s) {
				t.Errorf("GET %s: page lacks %q:\n%s", tt.target, s, body)
			}
		}
		if strings.Contains(body, tt.notWant) {
			t.Errorf("GET %s: page says %q", tt.target, tt.notWant)
		}
	}
}

func TestFaviconDoesNotStartSignIn(t *testing.T) {
	be := newBrowserEnv(t, nil)
	page := http.Header{"Accept": {"text/html,*/*"}, "Sec-Fetch-Mode": {"navigate"}}
	t.Run("nginx", func(t *testing.T) {
		srv := httptest.NewServer(be.handler(HeadersNginx))
		t.Cleanup(srv.Close)
		resp, _ := get(t, srv, "/oauth2/auth", http.Header{"X-Original-Uri": {"/favicon.ico"}})
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("check of /favicon.ico = %d, want 403 (401 makes nginx start a sign-in)", resp.StatusCode)
		}
		resp, _ = get(t, srv, "/oauth2/auth", http.Header{"X-Original-Uri": {"/cart"}})
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("check of /cart = %d, want 401", resp.StatusCode)
		}
	})
	t.Run("forwarded", func(t *testing.T) {
		srv := httptest.NewServer(be.handler(HeadersForwarded))
		t.Cleanup(srv.Close)
		hdr := page.Clone()
		hdr["X-Forwarded-Uri"] = []string{"/favicon.ico"}
		resp, _ := get(t, srv, "/oauth2/auth", hdr)
		if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Location") != "" {
			t.Errorf("check of /favicon.ico = %d Location %q, want 404 without a redirect", resp.StatusCode, resp.Header.Get("Location"))
		}
		hdr["X-Forwarded-Uri"] = []string{"/cart"}
		resp, _ = get(t, srv, "/oauth2/auth", hdr)
		if resp.StatusCode != http.StatusFound {
			t.Errorf("check of /cart = %d, want 302 to sign in", resp.StatusCode)
		}
	})
}

func TestSignedOutPage(t *testing.T) {
	t.Run("no end_session_endpoint", func(t *testing.T) {
		be := newBrowserEnv(t, nil)
		h := be.handler(HeadersNginx)
		be.signIn(t, h, "/", nil)
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		var jar []string
		for name, value := range be.jar {
			jar = append(jar, name+"="+value)
		}
		resp, body := get(t, srv, "/oauth2/sign_out", http.Header{"Cookie": {strings.Join(jar, "; ")}})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("sign_out = %d to %q, want 200 with the signed-out page", resp.StatusCode, resp.Header.Get("Location"))
		}
		for _, s := range []string{"<h1 id=\"kw-title\">You are signed out</h1>", `href="/oauth2/start?rd=%2F">Sign in again</a>`} {
			if !strings.Contains(body, s) {
				t.Errorf("signed-out page lacks %q:\n%s", s, body)
			}
		}
		var cleared bool
		for _, c := range resp.Cookies() {
			cleared = cleared || (c.Name == sessionCookie && c.MaxAge < 0)
		}
		if !cleared {
			t.Error("sign_out did not clear the session cookie")
		}
	})
	t.Run("end_session_endpoint lands on the page", func(t *testing.T) {
		be := newBrowserEnvWith(t, withDiscovery(map[string]any{"end_session_endpoint": "https://sso.example.com/end_session"}), nil)
		srv := httptest.NewServer(be.handler(HeadersNginx))
		t.Cleanup(srv.Close)
		resp, _ := get(t, srv, "/oauth2/sign_out", nil)
		loc, err := resp.Location()
		if resp.StatusCode != http.StatusFound || err != nil {
			t.Fatalf("sign_out = %d, want 302 to the end_session_endpoint", resp.StatusCode)
		}
		if got, want := loc.Query().Get("post_logout_redirect_uri"), "https://"+browserHost+"/oauth2/signed_out"; got != want {
			t.Errorf("post_logout_redirect_uri = %q, want %q", got, want)
		}
		resp, body := get(t, srv, "/oauth2/signed_out?rd=%2Fcart", nil)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, "You are signed out") || !strings.Contains(body, `href="/oauth2/start?rd=%2Fcart"`) {
			t.Errorf("signed_out = %d, want the page with a link back to /cart:\n%s", resp.StatusCode, body)
		}
		// An rd elsewhere is not offered.
		if _, body := get(t, srv, "/oauth2/signed_out?rd=https://evil.com/", nil); strings.Contains(body, "evil") {
			t.Errorf("signed-out page links to another site:\n%s", body)
		}
	})
}
