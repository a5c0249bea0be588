package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

// TestPromptValuesAdvertised: discovery lists exactly the prompt values
// Keyward honours; consent is not among them.
func TestPromptValuesAdvertised(t *testing.T) {
	e := newEnv(t, envOptions{})
	resp, err := http.Get(e.issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Prompts []string `json:"prompt_values_supported"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if want := []string{"none", "login", "select_account"}; !slices.Equal(doc.Prompts, want) {
		t.Errorf("prompt_values_supported = %q, want %q", doc.Prompts, want)
	}
}

// TestPromptConsent: Keyward has no consent screen, so prompt=consent is
// answered with consent_required to the client, with or without a
// session, and never with a code or an upstream sign-in.
func TestPromptConsent(t *testing.T) {
	e := newEnv(t, envOptions{})
	browser := newBrowser(t)
	app := e.client(appID, appSecret, appRedir, browser)
	app.signIn()
	fresh := e.client(app2ID, app2Secret, app2Redir, nil)
	for name, c := range map[string]*rp{"with a session": e.client(app2ID, app2Secret, app2Redir, browser), "without a session": fresh} {
		before := e.idps[0].Hits("authorize")
		l := newLogin()
		resp := c.authorize(l, oauth2.SetAuthURLParam("prompt", "consent"))
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if loc == nil || loc.Query().Get("error") != "consent_required" || loc.Query().Get("code") != "" ||
			loc.Query().Get("state") != l.state || loc.Query().Get("iss") != e.issuer {
			t.Errorf("prompt=consent %s: %d Location %q, want a redirect with error=consent_required, state and iss", name, resp.StatusCode, resp.Header.Get("Location"))
		} else if d := loc.Query().Get("error_description"); !strings.Contains(d, "no consent screen") {
			t.Errorf("prompt=consent %s: error_description %q does not say why", name, d)
		}
		if got := e.idps[0].Hits("authorize"); got != before {
			t.Errorf("prompt=consent %s: upstream sign-ins %d → %d, want none", name, before, got)
		}
	}
}

// TestPromptSelectAccount: select_account skips single sign-on. With one
// upstream it is prompt=login (a fresh upstream sign-in, prompt=login
// there); with several the chooser is shown again.
func TestPromptSelectAccount(t *testing.T) {
	t.Run("one upstream", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		browser := newBrowser(t)
		e.client(appID, appSecret, appRedir, browser).signIn()
		c := e.client(app2ID, app2Secret, app2Redir, browser)
		before := e.idps[0].Hits("authorize")
		l := newLogin()
		c.code(c.authorize(l, oauth2.SetAuthURLParam("prompt", "select_account")), l)
		if got := e.idps[0].Hits("authorize"); got != before+1 {
			t.Errorf("prompt=select_account: upstream sign-ins %d → %d, want one more", before, got)
		}
		if got := e.idps[0].LastAuthorizeRequest().Get("prompt"); got != "login" {
			t.Errorf("upstream prompt = %q, want login", got)
		}
	})
	t.Run("two upstreams", func(t *testing.T) {
		e := newEnv(t, envOptions{upstreams: 2})
		browser := newBrowser(t)
		app := e.client(appID, appSecret, appRedir, browser)
		l := newLogin()
		resp := app.authorize(l)
		app.code(app.get(e.issuer+chooserLink(readAll(t, resp), "corp")), l) // a session with corp

		c := e.client(app2ID, app2Secret, app2Redir, browser)
		l = newLogin()
		resp = c.authorize(l, oauth2.SetAuthURLParam("prompt", "select_account"))
		body := readAll(t, resp)
		link := chooserLink(body, "partner")
		if resp.StatusCode != http.StatusOK || link == "" {
			t.Fatalf("prompt=select_account with a session and two upstreams = %d, want the chooser page; Location %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		c.code(c.get(e.issuer+link), l)
		if got := e.idps[1].LastAuthorizeRequest().Get("prompt"); got != "login" {
			t.Errorf("partner's prompt = %q, want login", got)
		}
	})
}
