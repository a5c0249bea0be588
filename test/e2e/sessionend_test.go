package e2e

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/keyward/keyward/web"
)

const adminToken = "admin-token-0123456789-0123456789-abc"

// TestExchangedTokensEndWithTheirSession: a token exchanged from a person's
// access token carries that token's sid, and once the session ends (an
// admin revokes it, or the person signs out) neither it nor a token
// exchanged from it is exchanged again, introspected as active or answered
// at /userinfo, although their own records were never deleted (ending a
// session deletes the session's grants; exchanged tokens are not among
// them). Deprovisioning the person, which ends every session of theirs,
// does the same. Tokens without a session (client credentials, workload
// exchange) are not touched.
func TestExchangedTokensEndWithTheirSession(t *testing.T) {
	ends := []struct {
		name string
		end  func(t *testing.T, x *exchangeEnv, c *rp, idToken, sid, sub string)
	}{
		{"admin revoke", func(t *testing.T, x *exchangeEnv, _ *rp, _, sid, _ string) {
			adminRequest(t, x, http.MethodDelete, "/admin/v1/sessions/"+url.PathEscape(sid))
		}},
		{"logout", func(t *testing.T, _ *exchangeEnv, c *rp, idToken, _, _ string) {
			resp := c.endSession(url.Values{"id_token_hint": {idToken}})
			if resp.StatusCode != http.StatusOK || c.sessionCookie() {
				t.Fatalf("end_session = %d (session cookie kept: %v), want the signed-out page", resp.StatusCode, c.sessionCookie())
			}
		}},
		{"deprovision", func(t *testing.T, x *exchangeEnv, _ *rp, _, _, sub string) {
			adminRequest(t, x, http.MethodPost, "/admin/v1/subjects/"+url.PathEscape(sub)+"/deprovision")
		}},
	}
	for _, tc := range ends {
		t.Run(tc.name, func(t *testing.T) {
			x := newExchangeEnv(t)
			c := x.client(appID, appSecret, appRedir, nil)
			// The exchanged tokens are the gateway's: only it (or their
			// audience) may introspect them.
			gw := x.client(gwID, gwSecret, appRedir, nil)
			user, _ := c.signIn()
			_, orig := verifyAccessToken(t, x.env, user.AccessToken, appID)
			sid, _ := orig["sid"].(string)
			if sid == "" {
				t.Fatalf("access token has no sid: %v", orig)
			}
			exchange := func(subject string) (int, map[string]any) {
				return x.exchange(t, gwID, gwSecret, url.Values{
					"subject_token": {subject}, "subject_token_type": {tokenTypeAT},
					"audience": {"orders-api"}, "scope": {"openid email"},
				})
			}
			status, m := exchange(user.AccessToken)
			if status != http.StatusOK {
				t.Fatalf("exchange = %d %v", status, m)
			}
			derived := m["access_token"].(string)
			if _, dt := verifyAccessToken(t, x.env, derived, "orders-api"); dt["sid"] != sid {
				t.Fatalf("exchanged token sid = %v, want the subject token's %q", dt["sid"], sid)
			}
			status, m = exchange(derived)
			if status != http.StatusOK {
				t.Fatalf("second exchange = %d %v", status, m)
			}
			derived2 := m["access_token"].(string)
			bot := x.clientCredentials(t, botID, botSecret, url.Values{"audience": {"orders-api"}})
			status, m = x.exchange(t, ciID, "", url.Values{"subject_token": {x.ciToken(nil)}, "subject_token_type": {tokenTypeJW}, "audience": {"deploy-api"}})
			if status != http.StatusOK {
				t.Fatalf("workload exchange = %d %v", status, m)
			}
			workload := m["access_token"].(string)
			for name, tok := range map[string]string{"exchanged": derived, "exchanged twice": derived2} {
				if m := gw.introspect(tok); m["active"] != true {
					t.Fatalf("%s token before the session ended: introspection %v, want active", name, m)
				}
				if status, _, m := userinfo(t, x.env, "Bearer "+tok); status != http.StatusOK {
					t.Fatalf("%s token before the session ended: userinfo = %d %v, want 200", name, status, m)
				}
			}

			tc.end(t, x, c, idTokenOf(t, user), sid, orig["sub"].(string))

			for name, tok := range map[string]string{"exchanged": derived, "exchanged twice": derived2} {
				if status, m := exchange(tok); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
					t.Errorf("%s token after the session ended: exchange = %d %v, want 400 invalid_grant", name, status, m)
				}
				if m := gw.introspect(tok); m["active"] != false {
					t.Errorf("%s token after the session ended: introspection %v, want active false", name, m)
				}
				if status, _, m := userinfo(t, x.env, "Bearer "+tok); status != http.StatusUnauthorized || m["error"] != "invalid_token" {
					t.Errorf("%s token after the session ended: userinfo = %d %v, want 401 invalid_token", name, status, m)
				}
			}
			// As an actor token it is refused as well.
			status, m = x.exchange(t, gwID, gwSecret, url.Values{
				"subject_token": {bot}, "subject_token_type": {tokenTypeAT}, "audience": {"orders-api"},
				"actor_token": {derived}, "actor_token_type": {tokenTypeAT},
			})
			if status != http.StatusBadRequest || m["error"] != "invalid_grant" {
				t.Errorf("actor token of an ended session: exchange = %d %v, want 400 invalid_grant", status, m)
			}
			// Tokens without a session are not affected: the bot's own token
			// introspects active to the bot (only it or its audience may ask),
			// and the workload token (a public client's) still exchanges.
			if m := x.client(botID, botSecret, appRedir, nil).introspect(bot); m["active"] != true {
				t.Errorf("client credentials token after an unrelated session ended: introspection %v, want active", m)
			}
			if status, m := x.exchange(t, botID, botSecret, url.Values{"subject_token": {workload}, "subject_token_type": {tokenTypeAT}, "audience": {"deploy-api"}}); status != http.StatusOK {
				t.Errorf("re-exchange of a workload token = %d %v, want 200", status, m)
			}
		})
	}
}

// TestTokensOutliveAnExpiredSession: a session that simply expired (and was
// collected) has not been ended. Refreshing goes on without it (no upstream
// re-check is configured), and the access tokens that refresh issues keep
// working at /userinfo, introspection and token exchange.
func TestTokensOutliveAnExpiredSession(t *testing.T) {
	x := newExchangeEnv(t)
	c := x.client(appID, appSecret, appRedir, nil)
	user, _ := c.signIn()
	x.clock.Advance(25 * time.Hour) // past tokens.sessionTTL (24h)
	if res, err := x.store.GarbageCollect(t.Context(), x.clock.Now()); err != nil || res.Sessions != 1 {
		t.Fatalf("GarbageCollect = %+v, %v, want the expired session collected", res, err)
	}
	status, m := c.refresh(user.RefreshToken)
	if status != http.StatusOK {
		t.Fatalf("refresh after the session expired = %d %v, want 200", status, m)
	}
	at := m["access_token"].(string)
	if status, _, m := userinfo(t, x.env, "Bearer "+at); status != http.StatusOK {
		t.Errorf("userinfo = %d %v, want 200", status, m)
	}
	if m := c.introspect(at); m["active"] != true {
		t.Errorf("introspection = %v, want active", m)
	}
	if status, m := x.exchange(t, gwID, gwSecret, url.Values{"subject_token": {at}, "subject_token_type": {tokenTypeAT}, "audience": {"orders-api"}}); status != http.StatusOK {
		t.Errorf("exchange = %d %v, want 200", status, m)
	}
}

// adminRequest sends an admin API request without a body and wants 200.
func adminRequest(t *testing.T, x *exchangeEnv, method, path string) {
	t.Helper()
	admin := httptest.NewServer(web.NewAdmin(web.AdminConfig{Broker: x.b.Broker, Keys: x.b.Keys, Token: []byte(adminToken)}))
	t.Cleanup(admin.Close)
	req, _ := http.NewRequestWithContext(t.Context(), method, admin.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	if status, m := do(t, req); status != http.StatusOK {
		t.Fatalf("admin %s %s = %d %v", method, path, status, m)
	}
}
