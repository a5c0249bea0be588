package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"
)

// verifyAccessToken checks an access token offline against /keys, as a
// gateway does, and returns its header and claims.
func verifyAccessToken(t *testing.T, e *env, raw, audience string) (map[string]any, jwt.MapClaims) {
	t.Helper()
	resp, err := http.Get(e.issuer + "/keys")
	if err != nil {
		t.Fatalf("GET /keys: %v", err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatalf("decode JWKS: %v", err)
	}
	claims := jwt.MapClaims{}
	tok, err := jwt.ParseWithClaims(raw, claims, func(tok *jwt.Token) (any, error) {
		kid, _ := tok.Header["kid"].(string)
		keys := set.Key(kid)
		if len(keys) != 1 {
			t.Fatalf("kid %q: %d keys in the JWKS, want 1", kid, len(keys))
		}
		return keys[0].Key, nil
	}, jwt.WithValidMethods([]string{"RS256", "ES256", "EdDSA"}), jwt.WithIssuer(e.issuer), jwt.WithAudience(audience),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt())
	if err != nil {
		t.Fatalf("access token does not verify against /keys: %v", err)
	}
	return tok.Header, claims
}

func TestSignInRefreshRevoke(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.client(appID, appSecret, appRedir, nil)
	tok, l := c.signIn()

	// The ID token verifies with go-oidc, nonce and at_hash included.
	rawID, _ := tok.Extra("id_token").(string)
	idt, err := c.verifier.Verify(t.Context(), rawID)
	if err != nil {
		t.Fatalf("verify ID token: %v", err)
	}
	if idt.Nonce != l.nonce {
		t.Errorf("ID token nonce = %q, want %q", idt.Nonce, l.nonce)
	}
	if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
		t.Errorf("at_hash: %v", err)
	}
	var idc struct {
		Email    string   `json:"email"`
		Verified bool     `json:"email_verified"`
		Name     string   `json:"name"`
		Groups   []string `json:"groups"`
		SID      string   `json:"sid"`
		AuthTime int64    `json:"auth_time"`
	}
	if err := idt.Claims(&idc); err != nil {
		t.Fatal(err)
	}
	if idc.Email != "alice@example.com" || !idc.Verified || idc.Name != "Alice Example" || idc.SID == "" || idc.AuthTime == 0 {
		t.Errorf("ID token claims = %+v", idc)
	}
	if diff := cmp.Diff([]string{"staff", "admins"}, idc.Groups); diff != "" {
		t.Errorf("ID token groups (-want +got):\n%s", diff)
	}

	// The access token is an RFC 9068 JWT that verifies offline.
	hdr, at := verifyAccessToken(t, e, tok.AccessToken, appID)
	if hdr["typ"] != "at+jwt" || hdr["kid"] == nil {
		t.Errorf("access token header = %v, want typ at+jwt and a kid", hdr)
	}
	for _, claim := range []string{"iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope", "sid", "idp", "auth_time", "email", "name", "groups"} {
		if _, ok := at[claim]; !ok {
			t.Errorf("access token lacks %q: %v", claim, at)
		}
	}
	if at["sub"] != idt.Subject || at["client_id"] != appID || at["idp"] != "corp" || at["sid"] != idc.SID {
		t.Errorf("access token claims = %v", at)
	}
	scopes := strings.Fields(at["scope"].(string))
	sort.Strings(scopes)
	if diff := cmp.Diff([]string{"email", "groups", "offline_access", "openid", "profile"}, scopes); diff != "" {
		t.Errorf("scope (-want +got):\n%s", diff)
	}
	// fosite rounds exp to the second.
	if exp, iat := at["exp"].(float64), at["iat"].(float64); exp-iat < 299 || exp-iat > 301 {
		t.Errorf("access token lifetime = %vs, want 300s±1 (the default 5m)", exp-iat)
	}

	// userinfo answers for the access token.
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, e.issuer+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	if status, ui := do(t, req); status != http.StatusOK || ui["sub"] != idt.Subject || ui["email"] != "alice@example.com" {
		t.Errorf("userinfo = %d %v", status, ui)
	}

	// Refresh rotates the refresh token and issues a fresh access token.
	status, r1 := c.refresh(tok.RefreshToken)
	if status != http.StatusOK {
		t.Fatalf("refresh = %d %v", status, r1)
	}
	rt1 := r1["refresh_token"].(string)
	if rt1 == tok.RefreshToken {
		t.Fatal("refresh token was not rotated")
	}
	_, at1 := verifyAccessToken(t, e, r1["access_token"].(string), appID)
	if at1["jti"] == at["jti"] {
		t.Error("refreshed access token kept the old jti")
	}
	if at1["iat"].(float64) < at["iat"].(float64) {
		t.Error("refreshed access token has an older iat")
	}
	if _, ok := r1["id_token"]; !ok {
		t.Error("refresh response lacks a new ID token")
	}

	// Past the grace period, reusing the old refresh token is theft: it fails
	// and the newest refresh token of the family dies with it.
	e.clock.Advance(11 * time.Second)
	if status, m := c.refresh(tok.RefreshToken); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Errorf("reuse of a rotated refresh token = %d %v, want 400 invalid_grant", status, m)
	}
	if status, m := c.refresh(rt1); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Errorf("newest refresh token after reuse = %d %v, want 400 invalid_grant", status, m)
	}
	if got := c.introspect(r1["access_token"].(string)); got["active"] != false {
		t.Errorf("introspect the family's access token after reuse = %v, want inactive", got)
	}
}

func TestRefreshGraceWindow(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.client(appID, appSecret, appRedir, nil)
	tok, _ := c.signIn()
	status, r1 := c.refresh(tok.RefreshToken)
	if status != http.StatusOK {
		t.Fatalf("refresh = %d %v", status, r1)
	}
	// A racing client presents the same token within the grace window.
	e.clock.Advance(5 * time.Second)
	status, r2 := c.refresh(tok.RefreshToken)
	if status != http.StatusOK {
		t.Fatalf("refresh within the grace window = %d %v, want 200", status, r2)
	}
	// Both new refresh tokens work; the family is intact.
	for i, rt := range []string{r1["refresh_token"].(string), r2["refresh_token"].(string)} {
		if status, m := c.refresh(rt); status != http.StatusOK {
			t.Errorf("refresh with new token %d = %d %v", i, status, m)
		}
	}
}

// TestRefreshGraceIsOneUse: within the grace window a rotated refresh token
// may be used once more; a further use is reuse and revokes the family.
func TestRefreshGraceIsOneUse(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.client(appID, appSecret, appRedir, nil)
	tok, _ := c.signIn()
	_, r1 := c.refresh(tok.RefreshToken)
	status, r2 := c.refresh(tok.RefreshToken)
	if status != http.StatusOK {
		t.Fatalf("first use within the grace window = %d %v, want 200", status, r2)
	}
	if status, m := c.refresh(tok.RefreshToken); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Fatalf("second use within the grace window = %d %v, want 400 invalid_grant", status, m)
	}
	for i, rt := range []string{r1["refresh_token"].(string), r2["refresh_token"].(string)} {
		if status, m := c.refresh(rt); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
			t.Errorf("branch %d after reuse = %d %v, want 400 invalid_grant (family revoked)", i, status, m)
		}
	}
}

func TestRevokeAndIntrospect(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.client(appID, appSecret, appRedir, nil)
	tok, _ := c.signIn()
	got := c.introspect(tok.AccessToken)
	if got["active"] != true || got["client_id"] != appID {
		t.Fatalf("introspect = %v, want active for %s", got, appID)
	}
	if status, m := c.postForm("/revoke", url.Values{"token": {tok.AccessToken}, "token_type_hint": {"access_token"}}); status != http.StatusOK {
		t.Fatalf("revoke = %d %v", status, m)
	}
	if got := c.introspect(tok.AccessToken); got["active"] != false {
		t.Errorf("introspect after revoke = %v, want inactive", got)
	}
	// Revoking the refresh token ends the family.
	if status, m := c.postForm("/revoke", url.Values{"token": {tok.RefreshToken}}); status != http.StatusOK {
		t.Fatalf("revoke refresh token = %d %v", status, m)
	}
	if status, m := c.refresh(tok.RefreshToken); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Errorf("refresh after revoke = %d %v, want 400 invalid_grant", status, m)
	}
	// Another client may not revoke app's tokens (RFC 7009 §2.1).
	tok2, _ := c.signIn()
	other := e.client(app2ID, app2Secret, app2Redir, nil)
	other.postForm("/revoke", url.Values{"token": {tok2.RefreshToken}})
	if status, m := c.refresh(tok2.RefreshToken); status != http.StatusOK {
		t.Errorf("refresh after another client's revoke attempt = %d %v, want 200", status, m)
	}
}

func TestSingleSignOnAcrossClients(t *testing.T) {
	e := newEnv(t, envOptions{})
	browser := newBrowser(t)
	a := e.client(appID, appSecret, appRedir, browser)
	b := e.client(app2ID, app2Secret, app2Redir, browser)
	a.signIn()
	before := e.idps[0].Hits("authorize")
	tok, _ := b.signIn()
	if got := e.idps[0].Hits("authorize"); got != before {
		t.Errorf("second client's sign-in visited the upstream (%d → %d authorize hits); want single sign-on", before, got)
	}
	verifyAccessToken(t, e, tok.AccessToken, app2ID)

	// prompt=login forces a fresh upstream sign-in.
	l := newLogin()
	b.code(b.authorize(l, oauth2.SetAuthURLParam("prompt", "login")), l)
	if got := e.idps[0].Hits("authorize"); got != before+1 {
		t.Errorf("prompt=login: upstream authorize hits %d → %d, want one more", before, got)
	}
	// max_age longer than the session's age keeps single sign-on; a shorter
	// one (0) forces a fresh upstream sign-in.
	l = newLogin()
	b.code(b.authorize(l, oauth2.SetAuthURLParam("max_age", "3600")), l)
	if got := e.idps[0].Hits("authorize"); got != before+1 {
		t.Errorf("max_age=3600: upstream authorize hits %d → %d, want none more", before+1, got)
	}
	l = newLogin()
	b.code(b.authorize(l, oauth2.SetAuthURLParam("max_age", "0")), l)
	if got := e.idps[0].Hits("authorize"); got != before+2 {
		t.Errorf("max_age=0: upstream authorize hits %d → %d, want one more", before+1, got)
	}
	// prompt=none without a session answers login_required to the client.
	fresh := e.client(appID, appSecret, appRedir, nil)
	l = newLogin()
	resp := fresh.authorize(l, oauth2.SetAuthURLParam("prompt", "none"))
	if loc, _ := url.Parse(resp.Header.Get("Location")); loc == nil || loc.Query().Get("error") != "login_required" || loc.Query().Get("iss") != e.issuer {
		t.Errorf("prompt=none without a session: Location = %q, want error=login_required with iss", resp.Header.Get("Location"))
	}
}

func TestRefreshSurvivesRestart(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.client(appID, appSecret, appRedir, nil)
	tok, _ := c.signIn()
	e.restart()
	status, m := c.refresh(tok.RefreshToken)
	if status != http.StatusOK {
		t.Fatalf("refresh after restart = %d %v", status, m)
	}
	verifyAccessToken(t, e, m["access_token"].(string), appID)
	// Rotation does not revoke the access token issued with the rotated
	// refresh token: access tokens are not stored, and it expires within
	// the access-token lifetime (as with Dex). Revoking the family does.
	if got := c.introspect(tok.AccessToken); got["active"] != true {
		t.Errorf("old access token after rotation = %v, want active until it expires", got)
	}
}

func TestChooserWithSeveralUpstreams(t *testing.T) {
	e := newEnv(t, envOptions{upstreams: 2})
	c := e.client(appID, appSecret, appRedir, nil)
	l := newLogin()
	resp := c.authorize(l)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("authorize with two upstreams = %d, want the chooser page", resp.StatusCode)
	}
	body := readAll(t, resp)
	for _, want := range []string{"The App", "Corp SSO", "Partner SSO", "/login/partner?attempt="} {
		if !strings.Contains(body, want) {
			t.Errorf("chooser page lacks %q", want)
		}
	}
	// Choosing is not an error: no "Reference:" for support.
	if strings.Contains(body, "Reference:") {
		t.Errorf("chooser page shows a Reference id although nothing went wrong")
	}
	i := strings.Index(body, "/login/partner?attempt=")
	link := body[i:]
	link = link[:strings.IndexAny(link, `"'`)]
	link = strings.ReplaceAll(link, "&amp;", "&")
	code := c.code(c.get(e.issuer+link), l)
	if e.idps[1].Hits("authorize") != 1 || e.idps[0].Hits("authorize") != 0 {
		t.Errorf("upstream hits: corp %d, partner %d; want 0 and 1", e.idps[0].Hits("authorize"), e.idps[1].Hits("authorize"))
	}
	tok, err := c.oauth.Exchange(t.Context(), code, oauth2.VerifierOption(l.verifier))
	if err != nil {
		t.Fatal(err)
	}
	_, at := verifyAccessToken(t, e, tok.AccessToken, appID)
	if at["idp"] != "partner" {
		t.Errorf("idp = %v, want partner", at["idp"])
	}
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return sb.String()
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
