package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/cmd/config"
	"github.com/keyward/keyward/federation"
	"github.com/keyward/keyward/store"
	"github.com/keyward/keyward/test/fakeidp"
)

// Clients of the exchange tests.
const (
	ciID        = "ci" // public: the CI token is its only credential
	botID       = "deploy-bot"
	botSecret   = "deploy-bot-secret-0123456789-0123456789"
	gwID        = "gateway"
	gwSecret    = "gateway-secret-0123456789-0123456789-abc"
	tokenTypeAT = "urn:ietf:params:oauth:token-type:access_token"
	tokenTypeJW = "urn:ietf:params:oauth:token-type:jwt"
)

// exchangeEnv is a broker that trusts a fake CI issuer for the "deploy"
// rule, with clients that exchange and act.
type exchangeEnv struct {
	*env
	ci         *fakeidp.Server
	untrusted  *fakeidp.Server
	trustClock *clock
}

func newExchangeEnv(t *testing.T) *exchangeEnv {
	t.Helper()
	return newExchangeEnvWith(t, nil)
}

// newExchangeEnvWith is newExchangeEnv on st (nil: a bbolt file).
func newExchangeEnvWith(t *testing.T, st store.Store) *exchangeEnv {
	t.Helper()
	ci := fakeidp.NewTest(t, fakeidp.Config{Users: fakeidp.DemoUsers()})
	untrusted := fakeidp.NewTest(t, fakeidp.Config{Users: fakeidp.DemoUsers()})
	x := &exchangeEnv{ci: ci, untrusted: untrusted, trustClock: &clock{}}
	x.env = newEnv(t, envOptions{store: st, broker: func(bc *broker.Config) {
		tr, err := federation.NewTrust(federation.TrustConfig{
			Rules: []federation.TrustRule{{
				Name: "deploy", Issuer: ci.URL(), Audience: "keyward",
				Claims:    map[string]string{"repository": "example/app", "ref": "refs/heads/*"},
				Subject:   "ci:{repository}:{ref}",
				Audiences: []string{"deploy-api"}, Scopes: []string{"deploy"},
				MaxTTL: config.Duration(2 * time.Minute), PublicClient: true, SingleUse: true,
			}},
			HTTPClient: http.DefaultClient,
			Now:        x.trustClock.Now,
		})
		if err != nil {
			t.Fatalf("NewTrust: %v", err)
		}
		bc.Trust = tr
		// Tokens of the app are also meant for the gateway in front of its
		// API: the gateway may exchange them (narrowing, delegation).
		for i := range bc.Clients {
			if bc.Clients[i].ID == appID {
				bc.Clients[i].Audiences = []string{appID, gwID}
			}
		}
		te := broker.GrantTypeTokenExchange
		bc.Clients = append(bc.Clients,
			broker.Client{ID: ciID, Public: true, GrantTypes: []string{te}, Audiences: []string{"deploy-api"}, Scopes: []string{"deploy"}},
			broker.Client{ID: botID, Secret: botSecret, GrantTypes: []string{"client_credentials", te}, Audiences: []string{"deploy-api", "orders-api"}, Scopes: []string{"deploy", "orders:read"}},
			broker.Client{ID: gwID, Secret: gwSecret, GrantTypes: []string{"client_credentials", te},
				Audiences: []string{"orders-api", "inventory-api", "gateway"},
				Scopes:    []string{"openid", "email", "profile", "groups", "orders:read"},
				MayAct:    []string{botID, gwID}},
		)
	}})
	return x
}

// ciToken mints a CI token; extra overrides claims.
func (x *exchangeEnv) ciToken(extra map[string]any) string {
	claims := map[string]any{
		"aud": "keyward", "sub": "repo:example/app:ref:refs/heads/main",
		"repository": "example/app", "ref": "refs/heads/main", "jti": randomString(),
	}
	for k, v := range extra {
		claims[k] = v
	}
	return x.ci.MintJWT(claims)
}

// exchange posts a token exchange as clientID (public when secret is "").
func (x *exchangeEnv) exchange(t *testing.T, clientID, secret string, form url.Values) (int, map[string]any) {
	t.Helper()
	form.Set("grant_type", broker.GrantTypeTokenExchange)
	if secret == "" {
		form.Set("client_id", clientID)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, x.issuer+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if secret != "" {
		req.SetBasicAuth(clientID, secret)
	}
	return do(t, req)
}

func (x *exchangeEnv) clientCredentials(t *testing.T, id, secret string, form url.Values) string {
	t.Helper()
	form.Set("grant_type", "client_credentials")
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, x.issuer+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	status, m := do(t, req)
	if status != http.StatusOK {
		t.Fatalf("client_credentials for %s = %d %v", id, status, m)
	}
	return m["access_token"].(string)
}

func TestWorkloadFederation(t *testing.T) {
	x := newExchangeEnv(t)
	status, m := x.exchange(t, ciID, "", url.Values{
		"subject_token": {x.ciToken(nil)}, "subject_token_type": {tokenTypeJW}, "audience": {"deploy-api"},
	})
	if status != http.StatusOK {
		t.Fatalf("exchange = %d %v", status, m)
	}
	if m["issued_token_type"] != tokenTypeAT || m["refresh_token"] != nil {
		t.Errorf("response = %v, want issued_token_type access_token and no refresh token", m)
	}
	hdr, at := verifyAccessToken(t, x.env, m["access_token"].(string), "deploy-api")
	if hdr["typ"] != "at+jwt" || at["sub"] != "ci:example/app:refs/heads/main" || at["scope"] != "deploy" || at["client_id"] != ciID || at["idp"] != "trust:deploy" {
		t.Errorf("issued token = %v %v", hdr, at)
	}
	if ttl := at["exp"].(float64) - at["iat"].(float64); ttl > 121 {
		t.Errorf("issued token lives %vs, want at most the rule's maxTTL of 120s", ttl)
	}
}

func TestWorkloadFederationRefusals(t *testing.T) {
	x := newExchangeEnv(t)
	replayed := x.ciToken(nil)
	if status, m := x.exchange(t, ciID, "", url.Values{"subject_token": {replayed}, "subject_token_type": {tokenTypeJW}}); status != http.StatusOK {
		t.Fatalf("first exchange = %d %v", status, m)
	}
	short := x.ciToken(map[string]any{"exp": time.Now().Add(40 * time.Second).Unix()})
	tests := []struct {
		name      string
		client    string
		secret    string
		form      url.Values
		status    int
		wantError string
	}{
		{"wrong branch", ciID, "", url.Values{"subject_token": {x.ciToken(map[string]any{"ref": "refs/tags/v1"})}}, 400, "invalid_grant"},
		{"other repository", ciID, "", url.Values{"subject_token": {x.ciToken(map[string]any{"repository": "evil/app"})}}, 400, "invalid_grant"},
		{"missing pinned claim", ciID, "", url.Values{"subject_token": {x.ciToken(map[string]any{"ref": nil})}}, 400, "invalid_grant"},
		{"wrong audience", ciID, "", url.Values{"subject_token": {x.ciToken(map[string]any{"aud": "someone-else"})}}, 400, "invalid_grant"},
		{"expired", ciID, "", url.Values{"subject_token": {x.ciToken(map[string]any{"exp": time.Now().Add(-5 * time.Minute).Unix()})}}, 400, "invalid_grant"},
		{"not yet valid", ciID, "", url.Values{"subject_token": {x.ciToken(map[string]any{"nbf": time.Now().Add(5 * time.Minute).Unix()})}}, 400, "invalid_grant"},
		{"tampered", ciID, "", url.Values{"subject_token": {tamper(x.ciToken(nil))}}, 400, "invalid_grant"},
		{"replayed jti", ciID, "", url.Values{"subject_token": {replayed}}, 400, "invalid_grant"},
		{"no jti on a single-use rule", ciID, "", url.Values{"subject_token": {x.ciToken(map[string]any{"jti": nil})}}, 400, "invalid_grant"},
		{"audience the rule does not allow", botID, botSecret, url.Values{"subject_token": {x.ciToken(nil)}, "audience": {"orders-api"}}, 400, "invalid_target"},
		{"resource the client does not allow", ciID, "", url.Values{"subject_token": {x.ciToken(nil)}, "resource": {"https://elsewhere.example"}}, 400, "invalid_target"},
		{"scope the rule does not allow", botID, botSecret, url.Values{"subject_token": {x.ciToken(nil)}, "scope": {"orders:read"}}, 400, "invalid_scope"},
		{"public client not allowed the grant", appID, "", url.Values{"subject_token": {x.ciToken(nil)}}, 401, "invalid_client"},
		{"no subject_token_type", ciID, "", url.Values{"subject_token": {x.ciToken(nil)}, "subject_token_type": {""}}, 400, "invalid_request"},
		{"unsupported requested_token_type", ciID, "", url.Values{"subject_token": {x.ciToken(nil)}, "requested_token_type": {"urn:ietf:params:oauth:token-type:saml2"}}, 400, "invalid_request"},
		{"not a JWT", ciID, "", url.Values{"subject_token": {"opaque-token"}}, 400, "invalid_grant"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, ok := tt.form["subject_token_type"]; !ok {
				tt.form.Set("subject_token_type", tokenTypeJW)
			}
			status, m := x.exchange(t, tt.client, tt.secret, tt.form)
			if status != tt.status || m["error"] != tt.wantError {
				t.Errorf("exchange = %d %v, want %d %s", status, m, tt.status, tt.wantError)
			}
		})
	}
	// The issued token never outlives the subject token.
	status, m := x.exchange(t, ciID, "", url.Values{"subject_token": {short}, "subject_token_type": {tokenTypeJW}})
	if status != http.StatusOK {
		t.Fatalf("exchange of a short-lived token = %d %v", status, m)
	}
	if _, at := verifyAccessToken(t, x.env, m["access_token"].(string), "deploy-api"); at["exp"].(float64) > float64(time.Now().Add(41*time.Second).Unix()) {
		t.Errorf("issued exp %v outlives the subject token (40s)", at["exp"])
	}
}

// TestUntrustedIssuerIsNeverContacted: a validly signed token from an issuer
// no rule names is refused without a single request to that issuer.
func TestUntrustedIssuerIsNeverContacted(t *testing.T) {
	x := newExchangeEnv(t)
	tok := x.untrusted.MintJWT(map[string]any{"aud": "keyward", "sub": "x", "repository": "example/app", "ref": "refs/heads/main", "jti": "j1"})
	status, m := x.exchange(t, ciID, "", url.Values{"subject_token": {tok}, "subject_token_type": {tokenTypeJW}})
	if status != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Errorf("exchange = %d %v, want 400 invalid_grant", status, m)
	}
	for _, ep := range []string{"discovery", "keys"} {
		if n := x.untrusted.Hits(ep); n != 0 {
			t.Errorf("untrusted issuer got %d %s requests, want 0", n, ep)
		}
	}
}

// TestUnknownKidRefetchLimited: tokens with an unknown kid from a trusted
// issuer cause one JWKS refetch per interval, not one per request.
func TestUnknownKidRefetchLimited(t *testing.T) {
	x := newExchangeEnv(t)
	if status, m := x.exchange(t, ciID, "", url.Values{"subject_token": {x.ciToken(nil)}, "subject_token_type": {tokenTypeJW}}); status != http.StatusOK {
		t.Fatalf("warm-up exchange = %d %v", status, m)
	}
	// Past the refetch interval of the warm-up's key fetch.
	x.trustClock.Advance(31 * time.Second)
	before := x.ci.Hits("keys")
	for i := range 10 {
		tok := x.ci.MintJWTWithKid(map[string]any{"aud": "keyward", "repository": "example/app", "ref": "refs/heads/main", "jti": randomString()}, "unknown-kid")
		if status, m := x.exchange(t, ciID, "", url.Values{"subject_token": {tok}, "subject_token_type": {tokenTypeJW}}); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
			t.Fatalf("exchange %d with an unknown kid = %d %v, want 400 invalid_grant", i, status, m)
		}
	}
	if got := x.ci.Hits("keys") - before; got != 1 {
		t.Errorf("10 unknown-kid tokens caused %d JWKS fetches, want 1", got)
	}
}

func TestNarrowingAndDelegation(t *testing.T) {
	x := newExchangeEnv(t)
	user, _ := x.client(appID, appSecret, appRedir, nil).signIn()

	// The gateway narrows alice's token to orders-api with fewer scopes.
	status, m := x.exchange(t, gwID, gwSecret, url.Values{
		"subject_token": {user.AccessToken}, "subject_token_type": {tokenTypeAT},
		"audience": {"orders-api"}, "scope": {"openid email"},
	})
	if status != http.StatusOK {
		t.Fatalf("narrowing exchange = %d %v", status, m)
	}
	_, orig := verifyAccessToken(t, x.env, user.AccessToken, appID)
	_, nt := verifyAccessToken(t, x.env, m["access_token"].(string), "orders-api")
	if nt["sub"] != orig["sub"] || nt["scope"] != "openid email" || nt["email"] != "alice@example.com" || nt["client_id"] != gwID {
		t.Errorf("narrowed token = %v", nt)
	}
	if nt["exp"].(float64) > orig["exp"].(float64) {
		t.Errorf("narrowed token exp %v outlives the subject token's %v", nt["exp"], orig["exp"])
	}

	// Escalation is refused.
	for _, tt := range []struct {
		name, scope, aud, want string
	}{
		{"wider scope than the subject token", "orders:read", "orders-api", "invalid_scope"},
		{"audience the client may not have", "openid", "deploy-api", "invalid_target"},
	} {
		status, m := x.exchange(t, gwID, gwSecret, url.Values{"subject_token": {user.AccessToken}, "subject_token_type": {tokenTypeAT}, "audience": {tt.aud}, "scope": {tt.scope}})
		if status != http.StatusBadRequest || m["error"] != tt.want {
			t.Errorf("%s: exchange = %d %v, want 400 %s", tt.name, status, m, tt.want)
		}
	}

	// Delegation: deploy-bot acts for alice through the gateway; then the
	// gateway acts on that token, and the act claims nest.
	bot := x.clientCredentials(t, botID, botSecret, url.Values{"audience": {"orders-api"}})
	status, m = x.exchange(t, gwID, gwSecret, url.Values{
		"subject_token": {user.AccessToken}, "subject_token_type": {tokenTypeAT}, "audience": {"orders-api"},
		"actor_token": {bot}, "actor_token_type": {tokenTypeAT},
	})
	if status != http.StatusOK {
		t.Fatalf("delegation = %d %v", status, m)
	}
	_, d1 := verifyAccessToken(t, x.env, m["access_token"].(string), "orders-api")
	if act, _ := d1["act"].(map[string]any); act["sub"] != botID || act["act"] != nil {
		t.Errorf("act after one exchange = %v, want {sub: %s}", d1["act"], botID)
	}
	gw := x.clientCredentials(t, gwID, gwSecret, url.Values{"audience": {"gateway"}})
	status, m = x.exchange(t, gwID, gwSecret, url.Values{
		"subject_token": {m["access_token"].(string)}, "subject_token_type": {tokenTypeAT}, "audience": {"inventory-api"},
		"actor_token": {gw}, "actor_token_type": {tokenTypeAT},
	})
	if status != http.StatusOK {
		t.Fatalf("second delegation = %d %v", status, m)
	}
	_, d2 := verifyAccessToken(t, x.env, m["access_token"].(string), "inventory-api")
	act, _ := d2["act"].(map[string]any)
	inner, _ := act["act"].(map[string]any)
	if act["sub"] != gwID || inner["sub"] != botID || d2["sub"] != orig["sub"] {
		t.Errorf("act after two exchanges = %v, want {sub: %s, act: {sub: %s}} for %v", d2["act"], gwID, botID, orig["sub"])
	}

	// An actor the client does not list in mayAct is refused.
	alice := user.AccessToken
	status, m = x.exchange(t, gwID, gwSecret, url.Values{
		"subject_token": {bot}, "subject_token_type": {tokenTypeAT}, "audience": {"orders-api"},
		"actor_token": {alice}, "actor_token_type": {tokenTypeAT},
	})
	if status != http.StatusBadRequest || m["error"] != "invalid_request" {
		t.Errorf("actor not in mayAct: exchange = %d %v, want 400 invalid_request", status, m)
	}

	// A token issued to another client cannot be exchanged by the gateway
	// (no confused deputy).
	other, _ := x.client(app2ID, app2Secret, app2Redir, nil).signIn()
	status, m = x.exchange(t, gwID, gwSecret, url.Values{"subject_token": {other.AccessToken}, "subject_token_type": {tokenTypeAT}, "audience": {"orders-api"}})
	if status != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Errorf("exchange of a token issued to another client = %d %v, want 400 invalid_grant", status, m)
	}

	// A revoked subject token cannot be exchanged.
	c := x.client(appID, appSecret, appRedir, nil)
	c.postForm("/revoke", url.Values{"token": {user.AccessToken}})
	status, m = x.exchange(t, gwID, gwSecret, url.Values{"subject_token": {user.AccessToken}, "subject_token_type": {tokenTypeAT}, "audience": {"orders-api"}})
	if status != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Errorf("exchange of a revoked token = %d %v, want 400 invalid_grant", status, m)
	}
}

// TestTrustRuleBoundSurvivesReexchange: a token obtained through a trust
// rule keeps the rule's audience bound when it is exchanged again.
func TestTrustRuleBoundSurvivesReexchange(t *testing.T) {
	x := newExchangeEnv(t)
	status, m := x.exchange(t, ciID, "", url.Values{"subject_token": {x.ciToken(nil)}, "subject_token_type": {tokenTypeJW}, "audience": {"deploy-api"}})
	if status != http.StatusOK {
		t.Fatalf("exchange = %d %v", status, m)
	}
	derived := m["access_token"].(string)
	status, m = x.exchange(t, botID, botSecret, url.Values{"subject_token": {derived}, "subject_token_type": {tokenTypeAT}, "audience": {"orders-api"}})
	if status != http.StatusBadRequest || m["error"] != "invalid_target" {
		t.Errorf("re-exchange beyond the rule's audiences = %d %v, want 400 invalid_target", status, m)
	}
	if status, m := x.exchange(t, botID, botSecret, url.Values{"subject_token": {derived}, "subject_token_type": {tokenTypeAT}, "audience": {"deploy-api"}}); status != http.StatusOK {
		t.Errorf("re-exchange within the rule's audiences = %d %v, want 200", status, m)
	}
}

func TestClientCredentials(t *testing.T) {
	x := newExchangeEnv(t)
	tok := x.clientCredentials(t, botID, botSecret, url.Values{"scope": {"deploy"}, "audience": {"deploy-api"}})
	hdr, at := verifyAccessToken(t, x.env, tok, "deploy-api")
	if hdr["typ"] != "at+jwt" || at["sub"] != botID || at["client_id"] != botID || at["scope"] != "deploy" {
		t.Errorf("client_credentials token = %v %v", hdr, at)
	}
	for _, tt := range []struct {
		name string
		form url.Values
		want string
	}{
		{"scope not allowed", url.Values{"scope": {"admin"}}, "invalid_scope"},
		{"audience not allowed", url.Values{"audience": {"inventory-api"}}, "invalid_request"},
	} {
		tt.form.Set("grant_type", "client_credentials")
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, x.issuer+"/token", strings.NewReader(tt.form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(botID, botSecret)
		if status, m := do(t, req); status != http.StatusBadRequest || m["error"] != tt.want {
			t.Errorf("%s: %d %v, want 400 %s", tt.name, status, m, tt.want)
		}
	}
}

// tamper flips a character of the payload.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	b := []byte(parts[1])
	if b[5] == 'A' {
		b[5] = 'B'
	} else {
		b[5] = 'A'
	}
	parts[1] = string(b)
	return strings.Join(parts, ".")
}

// Tokens issued before a subject's not-before are void: exchanging one does
// not launder it into a fresh token.
func TestExchangeHonoursNotBefore(t *testing.T) {
	x := newExchangeEnv(t)
	tok, _ := x.client(appID, appSecret, appRedir, nil).signIn()
	_, at := verifyAccessToken(t, x.env, tok.AccessToken, appID)
	err := x.store.UpdateSubject(t.Context(), at["sub"].(string), func(s store.Subject) (store.Subject, error) {
		s.NotBefore = time.Now().Add(time.Second)
		return s, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	status, m := x.exchange(t, gwID, gwSecret, url.Values{"subject_token": {tok.AccessToken}, "subject_token_type": {tokenTypeAT}, "audience": {"orders-api"}})
	if status != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Errorf("exchange of a token issued before not-before = %d %v, want 400 invalid_grant", status, m)
	}
}
