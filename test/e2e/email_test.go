package e2e

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/keyward/keyward/store"
)

// A refresh grant stored before Keyward left unverified emails out of its
// tokens still holds one, with email_verified false: fosite refreshes the
// stored session, so the rule is applied again at every refresh.
func TestRefreshLeavesOutAnUnverifiedEmailOfAnOlderGrant(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.client(appID, appSecret, appRedir, nil)
	tok, _ := c.signIn()
	sig := tok.RefreshToken[strings.LastIndex(tok.RefreshToken, ".")+1:]
	err := e.store.UpdateGrant(t.Context(), store.GrantRefreshToken, sig, func(g store.Grant) (store.Grant, error) {
		older := bytes.ReplaceAll(g.Data, []byte(`"email_verified":true`), []byte(`"email_verified":false`))
		if bytes.Equal(older, g.Data) {
			return g, errors.New("the stored refresh grant holds no email_verified")
		}
		g.Data = older
		return g, nil
	})
	if err != nil {
		t.Fatalf("UpdateGrant: %v", err)
	}

	// /userinfo reads the identity of the sign-in's session (access tokens
	// are not stored), which such an older grant's session holds just as
	// unverified.
	_, atc := verifyAccessToken(t, e, tok.AccessToken, appID)
	sid, _ := atc["sid"].(string)
	err = e.store.UpdateSession(t.Context(), sid, func(s store.Session) (store.Session, error) {
		s.Identity.EmailVerified = false
		return s, nil
	})
	if err != nil {
		t.Fatalf("UpdateSession: %v", err)
	}

	status, r := c.refresh(tok.RefreshToken)
	if status != http.StatusOK {
		t.Fatalf("refresh = %d %v", status, r)
	}
	idt, err := c.verifier.Verify(t.Context(), r["id_token"].(string))
	if err != nil {
		t.Fatalf("verify refreshed ID token: %v", err)
	}
	var idc map[string]any
	if err := idt.Claims(&idc); err != nil {
		t.Fatal(err)
	}
	_, at := verifyAccessToken(t, e, r["access_token"].(string), appID)
	for name, claims := range map[string]map[string]any{"ID token": idc, "access token": at} {
		if claims["email"] != nil || claims["email_verified"] != nil || claims["name"] != "Alice Example" {
			t.Errorf("refreshed %s: email %v email_verified %v name %v, want no email, no email_verified, name Alice Example",
				name, claims["email"], claims["email_verified"], claims["name"])
		}
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, e.issuer+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+r["access_token"].(string))
	if status, ui := do(t, req); status != http.StatusOK || ui["email"] != nil || ui["email_verified"] != nil {
		t.Errorf("userinfo after refresh = %d %v, want no email", status, ui)
	}
}
