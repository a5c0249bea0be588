package e2e

import (
	"net/http"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/keyward/keyward/store"
	"github.com/keyward/keyward/web"
)

// TestDeprovisionedSignInShowsAccessRemoved: after deprovisioning, a new
// sign-in (through the upstream, which still knows the person) ends on a
// clear "Access removed" page with no code for the application; reinstating
// lets the person sign in again.
func TestDeprovisionedSignInShowsAccessRemoved(t *testing.T) {
	e := newEnv(t, envOptions{web: func(c *web.Config) {
		c.Pages = web.PagesConfig{AccessRemovedContact: "the IT service desk", AccessRemovedContactURL: "mailto:it@example.com"}
	}})
	browser := newBrowser(t)
	c := e.client(appID, appSecret, appRedir, browser)
	tok, _ := c.signIn()
	_, at := verifyAccessToken(t, e, tok.AccessToken, appID)
	sub := at["sub"].(string)
	if _, err := e.b.Broker.Deprovision(t.Context(), sub, "left", "e2e"); err != nil {
		t.Fatalf("Deprovision: %v", err)
	}

	// The same browser: its single sign-on session is gone, so the person
	// goes upstream again and comes back refused.
	before := e.idps[0].Hits("authorize")
	resp := c.authorize(newLogin())
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "Access removed") || resp.Header.Get("Location") != "" {
		t.Errorf("sign-in after deprovisioning = %d (Location %q), want 403 \"Access removed\" and no redirect", resp.StatusCode, resp.Header.Get("Location"))
	}
	// Not a dead end: the page says whom to ask (pages.accessRemovedContact).
	if want := `Contact: <a href="mailto:it@example.com">the IT service desk</a>`; !strings.Contains(body, want) {
		t.Errorf("the Access removed page lacks %s:\n%s", want, body)
	}
	if e.idps[0].Hits("authorize") != before+1 {
		t.Errorf("the sign-in did not go to the upstream (single sign-on session should be gone)")
	}
	if status, m := c.refresh(tok.RefreshToken); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Errorf("refresh after deprovisioning = %d %v, want 400 invalid_grant", status, m)
	}

	if _, err := e.b.Broker.Reinstate(t.Context(), sub, "back", "e2e"); err != nil {
		t.Fatalf("Reinstate: %v", err)
	}
	fresh := e.client(appID, appSecret, appRedir, nil)
	tok2, _ := fresh.signIn()
	verifyAccessToken(t, e, tok2.AccessToken, appID)
	if status, m := c.refresh(tok.RefreshToken); status != http.StatusBadRequest {
		t.Errorf("the old refresh token after reinstating = %d %v, want it still dead", status, m)
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
