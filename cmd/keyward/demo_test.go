package main

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer collects the demo's output while it runs.
type lockedBuffer struct {
	mu sync.Mutex
	sb strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sb.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sb.String()
}

// TestDemo runs `keyward demo` and signs in as alice through the demo
// identity provider's login form, as a person following the README would.
func TestDemo(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	out := &lockedBuffer{}
	done := make(chan error, 1)
	go func() { done <- runDemo(ctx, demoOptions{port: 0}, out, io.Discard) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("demo ended with %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("demo did not stop within 15s of Ctrl-C")
		}
	})

	appURL := ""
	re := regexp.MustCompile(`Open the demo app:\s+(\S+)`)
	for deadline := time.Now().Add(20 * time.Second); appURL == ""; time.Sleep(20 * time.Millisecond) {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			appURL = m[1]
		}
		select {
		case err := <-done:
			t.Fatalf("demo stopped early: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo printed no app URL within 20s:\n%s", out.String())
		}
	}
	for _, want := range []string{"alice / alice-demo", "bob / bob-demo", "/.well-known/openid-configuration"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	get := func(u string) (*http.Response, string) {
		t.Helper()
		resp, err := browser.Get(u)
		if err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	// The app sends the browser through Keyward to the identity provider's form.
	resp, body := get(appURL + "/login")
	if !strings.Contains(body, `name="password"`) {
		t.Fatalf("GET /login ended at %s (%d), want the identity provider's login form:\n%.800s", resp.Request.URL, resp.StatusCode, body)
	}
	action := regexp.MustCompile(`<form method="post" action="([^"]+)"`).FindStringSubmatch(body)
	token := regexp.MustCompile(`name="form_token" value="([^"]+)"`).FindStringSubmatch(body)
	if action == nil || token == nil {
		t.Fatalf("login form lacks action or form token:\n%s", body)
	}
	formURL, err := resp.Request.URL.Parse(strings.ReplaceAll(action[1], "&amp;", "&"))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, formURL.String(), strings.NewReader(url.Values{
		"form_token": {token[1]}, "username": {"alice"}, "password": {"alice-demo"},
	}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", formURL.Scheme+"://"+formURL.Host)
	presp, err := browser.Do(req)
	if err != nil {
		t.Fatalf("POST login form: %v", err)
	}
	defer presp.Body.Close()
	page, _ := io.ReadAll(presp.Body)
	// Back at the app, signed in, with the claims of both tokens shown.
	if presp.Request.URL.Host != mustHost(t, appURL) || presp.StatusCode != http.StatusOK {
		t.Fatalf("after the login form: %d at %s, want 200 at the app:\n%.800s", presp.StatusCode, presp.Request.URL, page)
	}
	for _, want := range []string{"alice@example.com", "admins", "at&#43;jwt"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("signed-in app page lacks %q", want)
		}
	}
}

func mustHost(t *testing.T, raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}
