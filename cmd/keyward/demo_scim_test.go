package main

import (
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDemoSCIMDeactivation walks the banner's SCIM line as a reader would:
// bob signs in and calls the API; the banner's curl, run as printed,
// deactivates him through the demo upstream's SCIM endpoint (the token in
// the data folder); his next API call answers 401 once the gateway has read
// the feed, and his browser, at its next visit, ends on "Access removed".
// Alice is untouched.
func TestDemoSCIMDeactivation(t *testing.T) {
	bash := docsProgram(t, "bash")
	docsProgram(t, "curl")
	appURL, out := startDemo(t)
	browser, bobPage := signInDemo(t, appURL, "bob", "bob-demo")
	_, alicePage := signInDemo(t, appURL, "alice", "alice-demo")
	bob, alice := demoAccessToken(t, bobPage), demoAccessToken(t, alicePage)
	if code, body := demoAPI(t, appURL, bob); code != http.StatusOK {
		t.Fatalf("GET /api/whoami with bob's token = %d %s, want 200", code, body)
	}

	m := regexp.MustCompile(`(?m)^\s+(curl -X PATCH .*/scim/v2/demo/Users/\S+)$`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("the banner shows no SCIM curl line:\n%s", out.String())
	}
	cmd := exec.CommandContext(t.Context(), bash, "-euo", "pipefail", "-c", m[1]+" --silent --fail-with-body")
	answer, err := cmd.Output()
	if err != nil {
		t.Fatalf("the banner's SCIM curl: %v\n%s", err, answer)
	}
	if !strings.Contains(string(answer), `"active":false`) || !strings.Contains(string(answer), `"userName":"bob@example.com"`) {
		t.Errorf("the SCIM answer = %s, want bob's user with active false", answer)
	}

	status := 0
	for range 30 {
		if status, _ = demoAPI(t, appURL, bob); status == http.StatusUnauthorized {
			break
		}
		time.Sleep(demoRevocationInterval)
	}
	if status != http.StatusUnauthorized {
		t.Fatalf("bob's token after the SCIM deactivation: still %d after 30 polls, want 401", status)
	}
	if code, body := demoAPI(t, appURL, alice); code != http.StatusOK {
		t.Errorf("alice's token after bob's deactivation = %d %s, want 200", code, body)
	}

	// His browser: the gateway's session is refused, Keyward's is gone,
	// so the identity provider asks for his password; after it, Keyward
	// refuses him.
	resp, err := browser.Get(appURL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	action := regexp.MustCompile(`<form method="post" action="([^"]+)"`).FindStringSubmatch(string(body))
	token := regexp.MustCompile(`name="form_token" value="([^"]+)"`).FindStringSubmatch(string(body))
	if action == nil || token == nil {
		t.Fatalf("bob's browser after the deactivation: %d at %s, want the identity provider's login form:\n%.600s", resp.StatusCode, resp.Request.URL, body)
	}
	formURL, err := resp.Request.URL.Parse(strings.ReplaceAll(action[1], "&amp;", "&"))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, formURL.String(), strings.NewReader(url.Values{
		"form_token": {token[1]}, "username": {"bob"}, "password": {"bob-demo"},
	}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", formURL.Scheme+"://"+formURL.Host)
	if resp, err = browser.Do(req); err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "Access removed") {
		t.Errorf("bob's sign-in after the deactivation: %d at %s, want 403 \"Access removed\":\n%.600s", resp.StatusCode, resp.Request.URL, body)
	}
}
