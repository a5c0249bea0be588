package broker

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/cmd/config"
	"github.com/keyward/keyward/federation"
)

// fakeTrust answers every external token with match or err.
type fakeTrust struct {
	match federation.TrustMatch
	err   error
}

func (f *fakeTrust) VerifyParsed(context.Context, *federation.SubjectToken) (federation.TrustMatch, error) {
	return f.match, f.err
}

// externalToken signs a JWT with iss (the fakes do not check signatures).
func externalToken(t *testing.T, f *fixture, iss string, claims map[string]any) string {
	t.Helper()
	c := map[string]any{"iss": iss, "sub": "alice", "aud": "native-app", "exp": f.now.Add(time.Hour).Unix(), "iat": f.now.Unix()}
	for k, v := range claims {
		c[k] = v
	}
	raw, err := f.keys.Sign(t.Context(), c, map[string]any{"typ": "JWT"})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func exchangeForm(subject, typ string, more ...string) url.Values {
	q := url.Values{"grant_type": {GrantTypeTokenExchange}, "subject_token": {subject}, "subject_token_type": {typ}}
	for i := 0; i+1 < len(more); i += 2 {
		q.Set(more[i], more[i+1])
	}
	return q
}

func TestExchangeKeywardToken(t *testing.T) {
	f := newFixture(t)
	b := newTestBroker(t, f, nil)
	_, cc := post(t, b.tokenHandler(t), url.Values{"grant_type": {"client_credentials"}, "scope": {"api"}}, "svc", "svc-secret")
	at, _ := cc["access_token"].(string)
	if at == "" {
		t.Fatalf("client_credentials: %v", cc)
	}
	status, body := post(t, b.tokenHandler(t), exchangeForm(at, TokenTypeAccessToken, "audience", "api", "requested_token_type", TokenTypeJWT), "svc", "svc-secret")
	if status != 200 || body["issued_token_type"] != TokenTypeJWT {
		t.Fatalf("exchange: %d %v", status, body)
	}
	claims := decodeJWT(t, body["access_token"].(string))
	if claims["sub"] != "svc" || claims["aud"] == nil || !strings.Contains(strings.Join(claimStrings(claims["aud"]), " "), "api") {
		t.Errorf("exchanged token claims %v, want sub svc, aud api", claims)
	}
	for _, tt := range []struct {
		name, want, desc string
		form             url.Values
	}{
		{"no subject token", "invalid_request", "subject_token and subject_token_type are required", url.Values{"grant_type": {GrantTypeTokenExchange}}},
		{"bad requested type", "invalid_request", "requested_token_type", exchangeForm(at, TokenTypeAccessToken, "requested_token_type", "saml")},
		{"not a JWT", "invalid_grant", "not a JWT", exchangeForm("abc", TokenTypeAccessToken)},
		{"Keyward token as id_token", "invalid_request", "exchanged as subject_token_type access_token", exchangeForm(at, TokenTypeIDToken)},
		{"audience not allowed", "invalid_target", "not allowed", exchangeForm(at, TokenTypeAccessToken, "audience", "elsewhere")},
		{"scope not allowed", "invalid_scope", "not allowed", exchangeForm(at, TokenTypeAccessToken, "scope", "openid")},
		{"untrusted issuer", "invalid_grant", "issuer is not trusted", exchangeForm(externalToken(t, f, "https://evil.example.com", nil), TokenTypeJWT)},
		{"bad actor type", "invalid_request", "actor_token_type", exchangeForm(at, TokenTypeAccessToken, "actor_token", at, "actor_token_type", "saml")},
	} {
		status, body := post(t, b.tokenHandler(t), tt.form, "svc", "svc-secret")
		desc, _ := body["error_description"].(string)
		if status/100 != 4 || body["error"] != tt.want || !strings.Contains(desc, tt.desc) {
			t.Errorf("%s: %d %v, want %s (%s)", tt.name, status, body, tt.want, tt.desc)
		}
	}
	// A token issued to another client is not this client's to exchange.
	up := b.upstreams[0].(*fakeUpstream)
	up.identity = aliceIdentity()
	code, _ := signInCode(t, b, up, nil)
	userAT := redeem(t, b, code)["access_token"].(string)
	if _, body := post(t, b.tokenHandler(t), exchangeForm(userAT, TokenTypeAccessToken), "svc", "svc-secret"); body["error"] != "invalid_grant" ||
		!strings.Contains(body["error_description"].(string), "not issued to this client") {
		t.Errorf("exchange of another client's token: %v", body)
	}
	// A public client may not exchange it either (no rule allows that).
	if _, body := post(t, b.tokenHandler(t), exchangeForm(userAT, TokenTypeAccessToken, "client_id", "app")); body["error"] != "unauthorized_client" {
		t.Errorf("public exchange of a Keyward token: %v, want unauthorized_client", body)
	}
}

func TestExchangeNativeSignIn(t *testing.T) {
	f := newFixture(t)
	up := &fakeUpstream{id: "corp", name: "Corp", issuer: "https://idp.example.com", authURL: "https://idp.example.com/auth", nativePublic: true}
	b := newTestBroker(t, f, nil, up)
	id := aliceIdentity()
	id.Claims = map[string]any{"exp": float64(f.now.Add(time.Hour).Unix()), "iat": float64(f.now.Unix())}
	up.nativeIdentity = id
	raw := externalToken(t, f, up.issuer, nil)

	status, body := post(t, b.tokenHandler(t), exchangeForm(raw, TokenTypeIDToken, "client_id", "app", "scope", "openid email"))
	if status != 200 {
		t.Fatalf("native sign-in: %d %v", status, body)
	}
	claims := decodeJWT(t, body["access_token"].(string))
	if claims["sub"] != SubjectID("corp", "alice") || claims["email"] != "alice@example.com" || claims["idp"] != "corp" || claims["sid"] != nil {
		t.Errorf("native sign-in claims %v, want the subject, email, idp and no sid", claims)
	}
	if _, err := b.admin.Subject(t.Context(), SubjectID("corp", "alice")); err != nil {
		t.Errorf("native sign-in did not record the subject: %v", err)
	}
	for _, tt := range []struct {
		name, want string
		set        func()
	}{
		{"issuer unavailable", "temporarily_unavailable", func() { up.nativeErr = federation.ErrIssuerUnavailable }},
		{"not allowed", "invalid_grant", func() {
			up.nativeErr = &federation.NotAllowedError{Upstream: "corp", Subject: "alice", Rule: "allow.groups", Message: "Only engineers."}
		}},
		{"invalid token", "invalid_grant", func() { up.nativeErr = errors.New("expired") }},
		{"audience not accepted", "invalid_grant", func() { up.nativeErr = federation.ErrNativeNotAccepted }},
		{"public clients not allowed", "unauthorized_client", func() { up.nativePublic = false }},
	} {
		up.nativeErr, up.nativePublic = nil, true
		tt.set()
		if _, body := post(t, b.tokenHandler(t), exchangeForm(raw, TokenTypeIDToken, "client_id", "app")); body["error"] != tt.want {
			t.Errorf("%s: %v, want %s", tt.name, body, tt.want)
		}
	}
}

func TestExchangeTrustRule(t *testing.T) {
	f := newFixture(t)
	rule := &federation.TrustRule{Name: "ci", Audiences: []string{"api"}, Scopes: []string{"api"}, MaxTTL: config.Duration(time.Minute), SingleUse: true}
	trust := &fakeTrust{match: federation.TrustMatch{Rule: rule, Subject: "repo:acme/app", Expiry: f.now.Add(time.Hour), JTI: "j1", Issuer: "https://ci.example.com"}}
	b := newTestBroker(t, f, func(c *Config) { c.Trust = trust })
	raw := externalToken(t, f, "https://ci.example.com", nil)
	status, body := post(t, b.tokenHandler(t), exchangeForm(raw, TokenTypeJWT, "audience", "api"), "svc", "svc-secret")
	if status != 200 {
		t.Fatalf("workload exchange: %d %v", status, body)
	}
	claims := decodeJWT(t, body["access_token"].(string))
	if claims["sub"] != "repo:acme/app" || claims["idp"] != "trust:ci" {
		t.Errorf("workload token claims %v", claims)
	}
	if _, body := post(t, b.tokenHandler(t), exchangeForm(raw, TokenTypeJWT, "audience", "api"), "svc", "svc-secret"); body["error"] != "invalid_grant" ||
		!strings.Contains(body["error_description"].(string), "single use") {
		t.Errorf("second use: %v, want invalid_grant (single use)", body)
	}
	for _, tt := range []struct {
		name, want string
		err        error
	}{
		{"untrusted", "invalid_grant", federation.ErrUntrustedIssuer},
		{"issuer down", "temporarily_unavailable", federation.ErrIssuerUnavailable},
		{"invalid", "invalid_grant", errors.New("bad signature")},
	} {
		trust.err = tt.err
		if _, body := post(t, b.tokenHandler(t), exchangeForm(raw, TokenTypeJWT), "svc", "svc-secret"); body["error"] != tt.want {
			t.Errorf("%s: %v, want %s", tt.name, body, tt.want)
		}
	}
}
