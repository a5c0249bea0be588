package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/keyward/keyward/cmd/config"
	"github.com/keyward/keyward/keys"
)

func jwksKids(t *testing.T, e *env) map[string]bool {
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
	kids := map[string]bool{}
	for _, k := range set.Keys {
		kids[k.KeyID] = true
	}
	return kids
}

func tokenKid(t *testing.T, raw string) string {
	t.Helper()
	tok, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA})
	if err != nil {
		t.Fatalf("parse token: %v", err)
	}
	return tok.Signatures[0].Header.KeyID
}

// TestKeyRotation drives rotation with the injected clock: the next key is
// published before it signs; a token signed by the old key keeps verifying
// (offline and by introspection) until it expires; then the old key is gone.
func TestKeyRotation(t *testing.T) {
	e := newEnv(t, envOptions{keys: keys.Config{RotationPeriod: config.Duration(time.Hour), JWKSMaxAge: config.Duration(10 * time.Minute)}})
	c := e.client(appID, appSecret, appRedir, nil)

	tok1, _ := c.signIn()
	kid1 := tokenKid(t, tok1.AccessToken)
	before := jwksKids(t, e)
	if len(before) != 2 || !before[kid1] {
		t.Fatalf("JWKS before rotation = %v, want the current key %s and the next", before, kid1)
	}

	e.clock.Advance(time.Hour + time.Second)
	rotated, err := e.keys.Rotate(t.Context())
	if err != nil || !rotated {
		t.Fatalf("Rotate = %v, %v; want a rotation", rotated, err)
	}
	tok2, _ := c.signIn()
	kid2 := tokenKid(t, tok2.AccessToken)
	if kid2 == kid1 {
		t.Fatalf("after rotation the token is still signed by %s", kid1)
	}
	if !before[kid2] {
		t.Errorf("new signing key %s was not in the JWKS before it signed (JWKS was %v)", kid2, before)
	}
	// The old key is retired but still published: its token verifies offline
	// and still introspects (the signer is kid-aware).
	after := jwksKids(t, e)
	if !after[kid1] || !after[kid2] || len(after) != 3 {
		t.Errorf("JWKS after rotation = %v, want retired %s, current %s and a new next key", after, kid1, kid2)
	}
	verifyAccessToken(t, e, tok1.AccessToken, appID)
	if got := c.introspect(tok1.AccessToken); got["active"] != true {
		t.Errorf("introspect a token signed by the retired key = %v, want active", got)
	}
	// ID tokens signed by the retired key still serve as id_token_hint:
	// a refresh (which re-signs) works with the rotated family.
	if status, m := c.refresh(tok1.RefreshToken); status != http.StatusOK {
		t.Errorf("refresh across rotation = %d %v", status, m)
	} else if kid := tokenKid(t, m["access_token"].(string)); kid != kid2 {
		t.Errorf("refreshed token signed by %s, want the current key %s", kid, kid2)
	}

	// Once every token the old key signed has expired, it leaves the JWKS.
	e.clock.Advance(20 * time.Minute)
	if _, err := e.keys.Rotate(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := jwksKids(t, e); got[kid1] {
		t.Errorf("JWKS after the retired key expired = %v, still has %s", got, kid1)
	}
	// Cache-Control max-age never exceeds the configured bound.
	resp, err := http.Get(e.issuer + "/keys")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if cc := resp.Header.Get("Cache-Control"); !strings.HasPrefix(cc, "public, max-age=") || cc > "public, max-age=600" && len(cc) >= len("public, max-age=600") {
		t.Errorf("JWKS Cache-Control = %q, want max-age ≤ 600", cc)
	}
}
