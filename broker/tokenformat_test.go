package broker

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/token/hmac"
)

// TestTokenFormat: codes and refresh tokens carry Keyward's prefixes, not
// fosite's; ID tokens carry no rat claim; a refresh token issued with
// fosite's ory_rt_ prefix (before Keyward had its own) still refreshes.
func TestTokenFormat(t *testing.T) {
	f := newFixture(t)
	up := &fakeUpstream{id: "corp", name: "Corp", issuer: "https://idp.example.com", authURL: "https://idp.example.com/auth", identity: aliceIdentity()}
	b := newTestBroker(t, f, nil, up)
	code, _ := signInCode(t, b, up, nil)
	if !strings.HasPrefix(code, "kw_ac_") {
		t.Errorf("code %.10s…, want prefix kw_ac_", code)
	}
	tok := redeem(t, b, code)
	rt := tok["refresh_token"].(string)
	if !strings.HasPrefix(rt, "kw_rt_") {
		t.Errorf("refresh token %.10s…, want prefix kw_rt_", rt)
	}
	if claims := decodeJWT(t, tok["id_token"].(string)); claims["rat"] != nil || claims["auth_time"] == nil {
		t.Errorf("ID token claims %v, want auth_time and no rat", claims)
	}

	// The token fosite's prefixed strategy (Keyward's old one) would have
	// issued for the same grant: it validates under that strategy, and
	// Keyward refreshes it.
	legacy := "ory_rt_" + strings.TrimPrefix(rt, "kw_rt_")
	fc := &fosite.Config{GlobalSecret: []byte("global-secret-0123456789-0123456789-0123456789"), RefreshTokenLifespan: time.Hour}
	old := oauth2.NewHMACSHAStrategy(&hmac.HMACStrategy{Config: fc}, fc)
	if err := old.ValidateRefreshToken(t.Context(), &fosite.Request{Session: &fosite.DefaultSession{}}, legacy); err != nil {
		t.Fatalf("the old strategy refuses %.10s…: %v", legacy, err)
	}
	status, ref := post(t, b.tokenHandler(t), url.Values{"grant_type": {"refresh_token"}, "refresh_token": {legacy}, "client_id": {"app"}})
	if status != http.StatusOK {
		t.Fatalf("refresh with an ory_rt_ token: %d %v", status, ref)
	}
	if next, _ := ref["refresh_token"].(string); !strings.HasPrefix(next, "kw_rt_") {
		t.Errorf("rotated refresh token %.10s…, want prefix kw_rt_", next)
	}
	if claims := decodeJWT(t, ref["id_token"].(string)); claims["rat"] != nil {
		t.Errorf("refreshed ID token claims %v, want no rat", claims)
	}
}
