package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/keys"
	"github.com/keyward/keyward/test/brokertest"
	"github.com/keyward/keyward/web/verify"
)

// headerAlg is the alg of a compact JWS.
func headerAlg(t *testing.T, raw string) string {
	t.Helper()
	tok, _, err := jwt.NewParser().ParseUnverified(raw, jwt.MapClaims{})
	if err != nil {
		t.Fatalf("parse %q: %v", raw, err)
	}
	alg, _ := tok.Header["alg"].(string)
	return alg
}

// discoveredAlgs is the discovery document's id_token_signing_alg_values_supported.
func discoveredAlgs(t *testing.T, e *env) []string {
	t.Helper()
	resp, err := http.Get(e.issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Algs []string `json:"id_token_signing_alg_values_supported"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	return doc.Algs
}

// checkIDToken verifies an ID token with go-oidc, accepting only alg, and
// its at_hash for accessToken.
func checkIDToken(t *testing.T, c *rp, raw, alg, accessToken string) {
	t.Helper()
	p, err := oidc.NewProvider(oidc.ClientContext(t.Context(), http.DefaultClient), c.e.issuer)
	if err != nil {
		t.Fatal(err)
	}
	if got := headerAlg(t, raw); got != alg {
		t.Errorf("%s's ID token is signed %s, want %s", c.oauth.ClientID, got, alg)
	}
	idt, err := p.Verifier(&oidc.Config{ClientID: c.oauth.ClientID, SupportedSigningAlgs: []string{alg}}).Verify(t.Context(), raw)
	if err != nil {
		t.Fatalf("go-oidc (%s only) refuses %s's ID token: %v", alg, c.oauth.ClientID, err)
	}
	if err := idt.VerifyAccessToken(accessToken); err != nil {
		t.Errorf("%s's at_hash: %v", c.oauth.ClientID, err)
	}
	// The verifier a client builds from discovery alone accepts it too.
	if _, err := c.verifier.Verify(t.Context(), raw); err != nil {
		t.Errorf("go-oidc with the discovered algorithms refuses %s's ID token: %v", c.oauth.ClientID, err)
	}
}

// TestAccessAndIDTokenAlgorithms: access tokens signed as
// keys.accessTokenAlgorithm, ID tokens as each client's
// idTokenSignedResponseAlg (default keys.algorithm), all in the one JWKS.
// go-oidc verifies the ID tokens (with at_hash, EdDSA's being SHA-512),
// web/verify with its default algorithms the access tokens; refresh and
// back-channel logout tokens keep the client's algorithm.
func TestAccessAndIDTokenAlgorithms(t *testing.T) {
	tests := []struct {
		name       string
		keys       keys.Config
		app2Alg    string // app2's idTokenSignedResponseAlg
		wantAccess string
		wantAlgs   []string // discovery
	}{
		{name: "ES256 access, RS256 ID tokens, one client ES256", keys: keys.Config{AccessTokenAlgorithm: keys.ES256},
			app2Alg: keys.ES256, wantAccess: keys.ES256, wantAlgs: []string{keys.RS256, keys.ES256}},
		{name: "EdDSA access and one client's ID tokens", keys: keys.Config{AccessTokenAlgorithm: keys.EdDSA},
			app2Alg: keys.EdDSA, wantAccess: keys.EdDSA, wantAlgs: []string{keys.RS256, keys.EdDSA}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOptions{keys: tt.keys, broker: func(bc *broker.Config) {
				bc.Clients[1].IDTokenSignedResponseAlg = tt.app2Alg
			}})
			if diff := cmp.Diff(tt.wantAlgs, discoveredAlgs(t, e)); diff != "" {
				t.Errorf("id_token_signing_alg_values_supported (-want +got):\n%s", diff)
			}
			v, err := verify.New(t.Context(), verify.Config{Issuer: e.issuer, Audiences: []string{appID, app2ID}})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				rp     *rp
				idAlg  string
				client string
			}{
				{e.client(appID, appSecret, appRedir, nil), keys.RS256, appID},
				{e.client(app2ID, app2Secret, app2Redir, nil), tt.app2Alg, app2ID},
			} {
				tok, _ := c.rp.signIn()
				rawID, _ := tok.Extra("id_token").(string)
				checkIDToken(t, c.rp, rawID, c.idAlg, tok.AccessToken)
				if got := headerAlg(t, tok.AccessToken); got != tt.wantAccess {
					t.Errorf("%s's access token is signed %s, want %s", c.client, got, tt.wantAccess)
				}
				if _, err := v.Verify(t.Context(), tok.AccessToken); err != nil {
					t.Errorf("web/verify (default algorithms) refuses %s's access token: %v", c.client, err)
				}

				status, r := c.rp.refresh(tok.RefreshToken)
				if status != http.StatusOK {
					t.Fatalf("%s refresh = %d %v", c.client, status, r)
				}
				at, _ := r["access_token"].(string)
				id, _ := r["id_token"].(string)
				checkIDToken(t, c.rp, id, c.idAlg, at)
				if got := headerAlg(t, at); got != tt.wantAccess {
					t.Errorf("%s's refreshed access token is signed %s, want %s", c.client, got, tt.wantAccess)
				}
			}
			// A verifier configured for RS256 only refuses the access
			// token: what an operator must change (docs/gateways).
			rsOnly, err := verify.New(t.Context(), verify.Config{Issuer: e.issuer, Audiences: []string{appID}, Algorithms: []string{keys.RS256}})
			if err != nil {
				t.Fatal(err)
			}
			tok, _ := e.client(appID, appSecret, appRedir, nil).signIn()
			if _, err := rsOnly.Verify(t.Context(), tok.AccessToken); err == nil || !strings.Contains(err.Error(), "algorithm not allowed") {
				t.Errorf("web/verify with algorithms [RS256] on a %s access token = %v, want a refusal: algorithm not allowed", tt.wantAccess, err)
			}
		})
	}
}

// TestAccessTokenAlgorithmAddedOnUpgrade: a broker that signed everything
// RS256 restarts with keys.accessTokenAlgorithm set, and app2 asking for its
// ID tokens in that algorithm. Until the new algorithm's first key has been
// published for one JWKS max-age, access tokens and app2's ID tokens stay
// RS256 (with a SHA-256 at_hash); then they switch (EdDSA: SHA-512). app's
// ID tokens stay RS256 throughout, and every token verifies against /keys.
func TestAccessTokenAlgorithmAddedOnUpgrade(t *testing.T) {
	for _, alg := range []string{keys.ES256, keys.EdDSA} {
		t.Run(alg, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			tok, _ := e.client(appID, appSecret, appRedir, nil).signIn()
			if got := headerAlg(t, tok.AccessToken); got != keys.RS256 {
				t.Fatalf("access token before the upgrade signed %s, want RS256", got)
			}
			err := e.b.RestartWith(t.Context(), func(o *brokertest.Options) {
				o.Keys.AccessTokenAlgorithm = alg
				o.Broker = func(bc *broker.Config) { bc.Clients[1].IDTokenSignedResponseAlg = alg }
			})
			if err != nil {
				t.Fatal(err)
			}
			e.store, e.keys = e.b.Store, e.b.Keys
			app, app2 := e.client(appID, appSecret, appRedir, nil), e.client(app2ID, app2Secret, app2Redir, nil)
			for _, step := range []struct {
				advance time.Duration
				want    string
			}{
				{0, keys.RS256},
				{keys.DefaultJWKSMaxAge - time.Minute, keys.RS256},
				{2 * time.Minute, alg},
			} {
				e.clock.Advance(step.advance)
				if _, err := e.keys.Rotate(t.Context()); err != nil {
					t.Fatal(err)
				}
				tok, _ := app.signIn()
				if got := headerAlg(t, tok.AccessToken); got != step.want {
					t.Errorf("%v after the upgrade the access token is signed %s, want %s", step.advance, got, step.want)
				}
				verifyAtClock(t, e, tok.AccessToken)
				rawID, _ := tok.Extra("id_token").(string)
				checkIDToken(t, app, rawID, keys.RS256, tok.AccessToken)

				tok2, _ := app2.signIn()
				rawID2, _ := tok2.Extra("id_token").(string)
				checkIDToken(t, app2, rawID2, step.want, tok2.AccessToken)
				verifyAtClock(t, e, rawID2)
			}
		})
	}
}

// verifyAtClock checks raw's signature against /keys (not its times:
// fosite sets exp from the real clock, the env's runs ahead).
func verifyAtClock(t *testing.T, e *env, raw string) {
	t.Helper()
	resp, err := http.Get(e.issuer + "/keys")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	_, err = jwt.Parse(raw, func(tok *jwt.Token) (any, error) {
		kid, _ := tok.Header["kid"].(string)
		ks := set.Key(kid)
		if len(ks) != 1 || ks[0].Algorithm != tok.Method.Alg() {
			t.Fatalf("kid %q (%s) not in the JWKS with that algorithm", kid, tok.Method.Alg())
		}
		return ks[0].Key, nil
	}, jwt.WithValidMethods(keys.SupportedAlgorithms()), jwt.WithoutClaimsValidation())
	if err != nil {
		t.Errorf("token does not verify against /keys: %v", err)
	}
}
