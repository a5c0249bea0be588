package e2e

import (
	"net/http"
	"net/url"
	"testing"
)

// TestNarrowedExchangeFiltersIdentityClaims: a narrowed token carries only
// the identity claims its scopes allow, by the same rule as a sign-in
// (email and email_verified with email; name and preferred_username with
// profile; groups with groups), while the claims that say which session and
// upstream it comes from stay.
func TestNarrowedExchangeFiltersIdentityClaims(t *testing.T) {
	x := newExchangeEnv(t)
	user, _ := x.client(appID, appSecret, appRedir, nil).signIn()
	_, orig := verifyAccessToken(t, x.env, user.AccessToken, appID)
	for _, c := range []string{"email", "name", "preferred_username", "groups", "sid", "idp", "auth_time"} {
		if orig[c] == nil {
			t.Fatalf("the subject token has no %s claim: %v", c, orig)
		}
	}
	identity := []string{"email", "email_verified", "name", "preferred_username", "groups"}
	for _, tc := range []struct {
		scope string
		want  []string // identity claims the narrowed token carries
	}{
		{"email", []string{"email", "email_verified"}},
		{"openid profile", []string{"name", "preferred_username"}},
		{"groups", []string{"groups"}},
		{"openid", nil},
	} {
		t.Run(tc.scope, func(t *testing.T) {
			status, m := x.exchange(t, gwID, gwSecret, url.Values{
				"subject_token": {user.AccessToken}, "subject_token_type": {tokenTypeAT},
				"audience": {"orders-api"}, "scope": {tc.scope},
			})
			if status != http.StatusOK {
				t.Fatalf("exchange = %d %v", status, m)
			}
			_, nt := verifyAccessToken(t, x.env, m["access_token"].(string), "orders-api")
			if nt["scope"] != tc.scope {
				t.Errorf("scope = %v, want %q", nt["scope"], tc.scope)
			}
			for _, c := range identity {
				allowed := false
				for _, w := range tc.want {
					allowed = allowed || w == c
				}
				switch {
				case allowed && orig[c] != nil && nt[c] == nil:
					t.Errorf("scope %q: claim %s missing, want it copied from the subject token", tc.scope, c)
				case !allowed && nt[c] != nil:
					t.Errorf("scope %q: claim %s = %v, want none (its scope was not granted)", tc.scope, c, nt[c])
				}
			}
			for _, c := range []string{"sid", "idp", "auth_time"} {
				if nt[c] != orig[c] {
					t.Errorf("scope %q: %s = %v, want the subject token's %v", tc.scope, c, nt[c], orig[c])
				}
			}
		})
	}
}
