package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/keyward/keyward/store"
)

// refreshSignature is the store key of a refresh token: fosite's HMAC
// strategy keys it by the part after the dot.
func refreshSignature(t *testing.T, rt string) string {
	t.Helper()
	i := strings.LastIndexByte(rt, '.')
	if i < 0 {
		t.Fatalf("refresh token %.8q… has no signature part", rt)
	}
	return rt[i+1:]
}

// TestRotatedRefreshTokensAreStubs: a refresh family holds O(1) full
// requests however often it is rotated (issue 15, item 2). After N
// refreshes the family's records hold the request of the current refresh
// token and of the used code only; each rotated token is a stub that
// keeps what reuse detection and the grace window need. The stubs still
// do their work: the last rotated token's grace use works (its request
// comes from the family's current record), a second use revokes the
// family, and the access tokens issued from it are then refused.
func TestRotatedRefreshTokensAreStubs(t *testing.T) {
	const n = 30
	for _, be := range storeBackends {
		t.Run(be.name, func(t *testing.T) {
			st := be.open(t)
			e := newEnv(t, envOptions{store: st})
			c := e.client(appID, appSecret, appRedir, nil)
			tok, _ := c.signIn()
			first, err := st.GetGrant(t.Context(), store.GrantRefreshToken, refreshSignature(t, tok.RefreshToken))
			if err != nil {
				t.Fatalf("GetGrant(first refresh token) = %v", err)
			}
			family := first.RequestID

			rt, prev := tok.RefreshToken, ""
			var access []string
			for i := range n {
				status, m := c.refresh(rt)
				if status != http.StatusOK {
					t.Fatalf("refresh %d = %d %v", i, status, m)
				}
				prev, rt = rt, m["refresh_token"].(string)
				access = append(access, m["access_token"].(string))
			}

			grants, err := st.GrantsByRequest(t.Context(), family)
			if err != nil {
				t.Fatalf("GrantsByRequest = %v", err)
			}
			var full, bytes, largest, refresh int
			for _, g := range grants {
				if len(g.Data) > 0 {
					full++
					bytes += len(g.Data)
					largest = max(largest, len(g.Data))
				}
				if g.Kind != store.GrantRefreshToken {
					continue
				}
				refresh++
				if g.Active {
					continue
				}
				if len(g.Data) != 0 || g.AccessSignature != "" {
					t.Errorf("rotated refresh token %.8s… keeps %d bytes of request and an access signature of %d, want a stub", g.Signature, len(g.Data), len(g.AccessSignature))
				}
				if g.RotatedAt.IsZero() || g.ExpiresAt.IsZero() || g.AccessTokenID == "" || g.AccessExpiresAt.IsZero() || g.ClientID == "" || g.Subject == "" {
					t.Errorf("rotated refresh token %.8s… lost what reuse detection needs: %+v", g.Signature, g)
				}
			}
			if refresh != n+1 {
				t.Fatalf("the family holds %d refresh tokens after %d refreshes, want %d", refresh, n, n+1)
			}
			// The current refresh token and the used code (kept until it
			// expires, for code reuse) are the only full requests.
			if full > 2 || bytes > 2*largest {
				t.Errorf("after %d refreshes the family holds %d full requests, %d bytes of requests (largest %d), want at most 2", n, full, bytes, largest)
			}
			t.Logf("%d refreshes: %d records, %d full requests, %d bytes of requests", n, len(grants), full, bytes)

			// The last rotated token, within the grace window: one use
			// works, and the family lives on.
			status, m := c.refresh(prev)
			if status != http.StatusOK {
				t.Fatalf("grace use of the last rotated token = %d %v, want 200", status, m)
			}
			graced := m["refresh_token"].(string)
			if got := c.introspect(m["access_token"].(string)); got["active"] != true || got["sub"] == nil {
				t.Errorf("access token of the grace use = %v, want active with a subject", got)
			}
			if status, m := c.refresh(graced); status != http.StatusOK {
				t.Fatalf("refresh with the grace use's token = %d %v, want 200", status, m)
			}
			// A second use of the stub is reuse: the family is revoked.
			if status, m := c.refresh(prev); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
				t.Fatalf("second use of the rotated token = %d %v, want 400 invalid_grant", status, m)
			}
			if status, m := c.refresh(rt); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
				t.Errorf("the current refresh token after the reuse = %d %v, want 400 invalid_grant (family revoked)", status, m)
			}
			if got := c.introspect(access[n-1]); got["active"] != false {
				t.Errorf("the last access token after the reuse = %v, want inactive", got)
			}
		})
	}
}
