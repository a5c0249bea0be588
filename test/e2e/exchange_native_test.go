package e2e

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/federation"
	"github.com/keyward/keyward/store"
)

// Native sign-in: the native app's client ID at the upstreams, and the
// Keyward client the app exchanges with.
const (
	nativeAppID = "mobile-app-at-corp"
	mobileID    = "mobile" // public: the upstream ID token is its only credential
	tokenTypeID = "urn:ietf:params:oauth:token-type:id_token"
)

// newNativeEnv is a broker with three upstreams: corp takes ID tokens of
// nativeAppID from public clients, partner has native sign-in off, and
// third takes them from confidential clients only.
func newNativeEnv(t *testing.T) *exchangeEnv {
	t.Helper()
	x := &exchangeEnv{}
	x.env = newEnv(t, envOptions{upstreams: 3, broker: func(bc *broker.Config) {
		for i, up := range bc.Upstreams {
			fc := federation.Config{
				ID: up.ID(), Name: up.Name(), Issuer: up.Issuer(),
				ClientID: "keyward", ClientSecret: "upstream-secret", RedirectURL: bc.Issuer + "/callback",
				Scopes: []string{"openid", "email", "profile", "groups"},
			}
			switch up.ID() {
			case "corp":
				fc.NativeClientIDs, fc.NativePublicClients = []string{"other-app", nativeAppID}, true
			case "third":
				fc.NativeClientIDs = []string{nativeAppID}
				fc.TrustEmail = true
			}
			native, err := fc.Open(t.Context(), http.DefaultClient, testLogger(t))
			if err != nil {
				t.Fatalf("open upstream %s: %v", up.ID(), err)
			}
			bc.Upstreams[i] = native
		}
		te := broker.GrantTypeTokenExchange
		bc.Clients = append(bc.Clients,
			broker.Client{ID: mobileID, Public: true, GrantTypes: []string{te},
				Audiences: []string{"orders-api"}, Scopes: []string{"openid", "email", "profile", "groups", "orders:read"}},
			broker.Client{ID: gwID, Secret: gwSecret, GrantTypes: []string{te},
				Audiences: []string{"orders-api", "inventory-api"}, Scopes: []string{"openid", "email", "profile", "groups", "orders:read"}},
		)
	}})
	return x
}

// idToken mints an ID token for alice at upstream i, as the upstream's
// SDK in a native app would receive it; extra overrides claims.
func (x *exchangeEnv) idToken(i int, extra map[string]any) string {
	claims := map[string]any{
		"aud": nativeAppID, "sub": "demo-alice", "azp": nativeAppID,
		"email": "alice@example.com", "email_verified": true, "name": "Alice Example",
		"preferred_username": "alice", "groups": []string{"staff", "admins"},
	}
	for k, v := range extra {
		claims[k] = v
	}
	return x.idps[i].MintJWT(claims)
}

// signInAt runs a browser sign-in of alice through the chooser at upstream id.
func (x *exchangeEnv) signInAt(t *testing.T, id string) *oauth2.Token {
	t.Helper()
	c := x.client(appID, appSecret, appRedir, nil)
	l := newLogin()
	body := readAll(t, c.authorize(l))
	i := strings.Index(body, "/login/"+id+"?attempt=")
	if i < 0 {
		t.Fatalf("chooser page has no link to %s", id)
	}
	link := body[i:]
	link = strings.ReplaceAll(link[:strings.IndexAny(link, `"'`)], "&amp;", "&")
	tok, err := c.oauth.Exchange(t.Context(), c.code(c.get(x.issuer+link), l), oauth2.VerifierOption(l.verifier))
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	return tok
}

func TestNativeSignIn(t *testing.T) {
	x := newNativeEnv(t)
	browser := x.signInAt(t, "corp")
	_, web := verifyAccessToken(t, x.env, browser.AccessToken, appID)

	raw := x.idToken(0, nil)
	status, m := x.exchange(t, mobileID, "", url.Values{
		"subject_token": {raw}, "subject_token_type": {tokenTypeID},
		"audience": {"orders-api"}, "scope": {"openid email profile groups"},
	})
	if status != http.StatusOK {
		t.Fatalf("native exchange = %d %v", status, m)
	}
	if m["issued_token_type"] != tokenTypeAT || m["refresh_token"] != nil {
		t.Errorf("response = %v, want issued_token_type access_token and no refresh token", m)
	}
	hdr, at := verifyAccessToken(t, x.env, m["access_token"].(string), "orders-api")
	if hdr["typ"] != "at+jwt" || at["client_id"] != mobileID || at["scope"] != "openid email profile groups" {
		t.Errorf("native token = %v %v", hdr, at)
	}
	// The same person as after the browser sign-in, with the same claims.
	for _, c := range []string{"sub", "idp", "email", "name", "preferred_username", "groups"} {
		if diff := cmp.Diff(web[c], at[c]); diff != "" || at[c] == nil {
			t.Errorf("claim %s: browser %v, native %v", c, web[c], at[c])
		}
	}
	if at["sub"] != broker.SubjectID("corp", "demo-alice") || at["idp"] != "corp" || at["sid"] != nil {
		t.Errorf("native token sub %v idp %v sid %v, want SubjectID(corp, demo-alice), corp and no sid", at["sub"], at["idp"], at["sid"])
	}
	idc := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(raw, idc); err != nil {
		t.Fatal(err)
	}
	if at["exp"].(float64) > idc["exp"].(float64) {
		t.Errorf("native token exp %v outlives the ID token's %v", at["exp"], idc["exp"])
	}

	// Identity claims follow the granted scopes, as after a browser sign-in.
	status, m = x.exchange(t, mobileID, "", url.Values{
		"subject_token": {x.idToken(0, nil)}, "subject_token_type": {tokenTypeJW}, "scope": {"orders:read"},
	})
	if status != http.StatusOK {
		t.Fatalf("native exchange as jwt = %d %v", status, m)
	}
	if _, at := verifyAccessToken(t, x.env, m["access_token"].(string), "orders-api"); at["email"] != nil || at["groups"] != nil || at["scope"] != "orders:read" {
		t.Errorf("token with scope orders:read carries identity claims: %v", at)
	}

	// A person who never signed in in a browser becomes a subject.
	status, m = x.exchange(t, mobileID, "", url.Values{
		"subject_token": {x.idToken(0, map[string]any{"sub": "demo-bob", "email": "bob@example.com", "name": "Bob"})}, "subject_token_type": {tokenTypeID},
	})
	if status != http.StatusOK {
		t.Fatalf("native exchange for bob = %d %v", status, m)
	}
	bob, err := x.store.GetSubject(t.Context(), broker.SubjectID("corp", "demo-bob"))
	if err != nil || bob.UpstreamID != "corp" || bob.UpstreamSubject != "demo-bob" || bob.Email != "bob@example.com" {
		t.Errorf("subject of bob = %+v, %v; want one recorded from the ID token", bob, err)
	}

	// A confidential client may exchange tokens of an upstream that takes
	// none from public clients.
	status, m = x.exchange(t, gwID, gwSecret, url.Values{"subject_token": {x.idToken(2, nil)}, "subject_token_type": {tokenTypeID}, "audience": {"inventory-api"}})
	if status != http.StatusOK {
		t.Fatalf("confidential native exchange at third = %d %v", status, m)
	}
	if _, at := verifyAccessToken(t, x.env, m["access_token"].(string), "inventory-api"); at["sub"] != broker.SubjectID("third", "demo-alice") || at["idp"] != "third" {
		t.Errorf("token from third = %v", at)
	}
}

// Native sign-in follows the browser's email rule: an email the upstream
// does not mark verified stays out of the access token, unless the
// upstream's trustEmail treats it as verified.
func TestNativeSignInUnverifiedEmail(t *testing.T) {
	x := newNativeEnv(t)
	tests := []struct {
		name, client, secret string
		upstream             int
		verified             any // email_verified in the upstream ID token; nil: absent
		wantEmail            any // nil: no email and no email_verified
	}{
		{name: "verified", client: mobileID, verified: true, wantEmail: "alice@example.com"},
		{name: "marked unverified", client: mobileID, verified: false},
		{name: "verification unknown", client: mobileID},
		{name: "trustEmail", client: gwID, secret: gwSecret, upstream: 2, verified: false, wantEmail: "alice@example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, m := x.exchange(t, tt.client, tt.secret, url.Values{
				"subject_token": {x.idToken(tt.upstream, map[string]any{"email_verified": tt.verified})}, "subject_token_type": {tokenTypeID},
				"audience": {"orders-api"}, "scope": {"openid email profile"},
			})
			if status != http.StatusOK {
				t.Fatalf("native exchange = %d %v", status, m)
			}
			_, at := verifyAccessToken(t, x.env, m["access_token"].(string), "orders-api")
			wantVerified := any(nil)
			if tt.wantEmail != nil {
				wantVerified = true
			}
			if at["email"] != tt.wantEmail || at["email_verified"] != wantVerified || at["name"] != "Alice Example" {
				t.Errorf("access token email %v email_verified %v name %v, want %v, %v, Alice Example",
					at["email"], at["email_verified"], at["name"], tt.wantEmail, wantVerified)
			}
		})
	}
}

func TestNativeSignInRefusals(t *testing.T) {
	x := newNativeEnv(t)
	tests := []struct {
		name      string
		client    string
		secret    string
		token     string
		typ       string
		form      url.Values
		status    int
		wantError string
	}{
		{name: "wrong audience", token: x.idToken(0, map[string]any{"aud": "someone-else", "azp": nil}), status: 400, wantError: "invalid_grant"},
		{name: "browser ID token (aud is Keyward's own client)", token: x.idToken(0, map[string]any{"aud": "keyward", "azp": nil}), status: 400, wantError: "invalid_grant"},
		{name: "several audiences, azp not native", token: x.idToken(0, map[string]any{"aud": []string{nativeAppID, "x"}, "azp": "x"}), status: 400, wantError: "invalid_grant"},
		{name: "expired", token: x.idToken(0, map[string]any{"exp": time.Now().Add(-time.Minute).Unix()}), status: 400, wantError: "invalid_grant"},
		{name: "no exp", token: x.idToken(0, map[string]any{"exp": nil}), status: 400, wantError: "invalid_grant"},
		{name: "tampered", token: tamperClaim(t, x.idToken(0, nil), "sub", "demo-bob"), status: 400, wantError: "invalid_grant"},
		{name: "unknown kid", token: x.idps[0].MintJWTWithKid(map[string]any{"aud": nativeAppID, "sub": "demo-alice"}, "unknown-kid"), status: 400, wantError: "invalid_grant"},
		{name: "no sub", token: x.idToken(0, map[string]any{"sub": nil}), status: 400, wantError: "invalid_grant"},
		{name: "upstream without nativeClientIDs", token: x.idToken(1, nil), status: 400, wantError: "invalid_grant"},
		{name: "public client, upstream allows only confidential", token: x.idToken(2, nil), status: 400, wantError: "unauthorized_client"},
		{name: "type access_token", token: x.idToken(0, nil), typ: tokenTypeAT, status: 400, wantError: "invalid_request"},
		{name: "audience the client may not have", token: x.idToken(0, nil), form: url.Values{"audience": {"inventory-api"}}, status: 400, wantError: "invalid_target"},
		{name: "scope the client may not have", token: x.idToken(0, nil), form: url.Values{"scope": {"deploy"}}, status: 400, wantError: "invalid_scope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form := url.Values{}
			for k, v := range tt.form {
				form[k] = v
			}
			form.Set("subject_token", tt.token)
			form.Set("subject_token_type", tokenTypeID)
			if tt.typ != "" {
				form.Set("subject_token_type", tt.typ)
			}
			client, secret := tt.client, tt.secret
			if client == "" {
				client = mobileID
			}
			status, m := x.exchange(t, client, secret, form)
			if status != tt.status || m["error"] != tt.wantError {
				t.Errorf("exchange = %d %v, want %d %s", status, m, tt.status, tt.wantError)
			}
		})
	}
	// Native sign-in off: partner's keys were never fetched for it.
	if n := x.idps[1].Hits("keys"); n != 0 {
		t.Errorf("partner (native sign-in off) got %d key set requests, want 0", n)
	}
}

func TestNativeSignInDisabledSubject(t *testing.T) {
	x := newNativeEnv(t)
	form := func() url.Values {
		return url.Values{"subject_token": {x.idToken(0, nil)}, "subject_token_type": {tokenTypeID}}
	}
	if status, m := x.exchange(t, mobileID, "", form()); status != http.StatusOK {
		t.Fatalf("first exchange = %d %v", status, m)
	}
	sub := broker.SubjectID("corp", "demo-alice")
	err := x.store.UpdateSubject(t.Context(), sub, func(s store.Subject) (store.Subject, error) {
		s.Disabled = true
		return s, nil
	})
	if err != nil {
		t.Fatalf("UpdateSubject: %v", err)
	}
	if status, m := x.exchange(t, mobileID, "", form()); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Errorf("exchange for a disabled subject = %d %v, want 400 invalid_grant", status, m)
	}
}

// tamperClaim sets one claim of a signed token, keeping the signature.
func tamperClaim(t *testing.T, tok, name string, value any) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	claims[name] = value
	payload, _ = json.Marshal(claims)
	parts[1] = base64.RawURLEncoding.EncodeToString(payload)
	return strings.Join(parts, ".")
}

// TestDiscoveryGrantTypes: discovery advertises the grants of this issue.
func TestDiscoveryGrantTypes(t *testing.T) {
	e := newEnv(t, envOptions{})
	resp, err := http.Get(e.issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		GrantTypes []string `json:"grant_types_supported"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatalf("decode discovery: %v", err)
	}
	for _, g := range []string{broker.GrantTypeTokenExchange, "client_credentials"} {
		if !slices.Contains(doc.GrantTypes, g) {
			t.Errorf("grant_types_supported = %v, lacks %s", doc.GrantTypes, g)
		}
	}
}
