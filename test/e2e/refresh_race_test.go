package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/oauth2"

	"github.com/keyward/keyward/store"
	"github.com/keyward/keyward/store/bolt"
	"github.com/keyward/keyward/store/postgres"
	"github.com/keyward/keyward/store/postgres/pgtest"
	"github.com/keyward/keyward/test/brokertest"
)

// storeBackends are the stores the concurrency tests run on: each test
// gets a fresh one.
var storeBackends = []struct {
	name string
	open func(t *testing.T) store.Store
}{
	{"bolt", func(t *testing.T) store.Store {
		st, err := bolt.Open(t.Context(), bolt.Options{Path: filepath.Join(t.TempDir(), "keyward.db"), NoSync: true})
		if err != nil {
			t.Fatalf("bolt.Open() = %v", err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return st
	}},
	{"postgres", func(t *testing.T) store.Store {
		dsn := pgtest.DSN(t) // skips (or fails under KEYWARD_TEST_REQUIRE_ALL) without a server
		st, err := postgres.Open(t.Context(), postgres.Options{DSN: dsn, Migrate: true, MaxConns: 8, Logger: brokertest.TestLogger()})
		if err != nil {
			t.Fatalf("postgres.Open() = %v", err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return st
	}},
}

// tokenAnswer is one /token answer, as a goroutine may record it.
type tokenAnswer struct {
	status        int
	code          string // error
	access, fresh string // access and refresh token
	err           error
}

// postToken posts form to /token as client app; safe in any goroutine.
func postToken(ctx context.Context, issuer string, form url.Values) tokenAnswer {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, issuer+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		return tokenAnswer{err: err}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(appID, appSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return tokenAnswer{err: err}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m struct {
		Error        string `json:"error"`
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return tokenAnswer{status: resp.StatusCode, err: fmt.Errorf("body %.200q: %w", body, err)}
	}
	return tokenAnswer{status: resp.StatusCode, code: m.Error, access: m.AccessToken, fresh: m.RefreshToken}
}

// fire posts form n times at once and returns the answers.
func fire(t *testing.T, issuer string, n int, form url.Values) []tokenAnswer {
	t.Helper()
	out := make([]tokenAnswer, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			out[i] = postToken(t.Context(), issuer, form)
		}()
	}
	close(start)
	wg.Wait()
	for i, a := range out {
		if a.err != nil {
			t.Fatalf("request %d: %v", i, a.err)
		}
	}
	return out
}

// winners splits answers into the successes and checks that every other
// answer is 400 invalid_grant.
func winners(t *testing.T, answers []tokenAnswer) []tokenAnswer {
	t.Helper()
	var won []tokenAnswer
	for i, a := range answers {
		switch {
		case a.status == http.StatusOK:
			won = append(won, a)
		case a.status != http.StatusBadRequest || a.code != "invalid_grant":
			t.Errorf("request %d = %d %s, want 200 or 400 invalid_grant", i, a.status, a.code)
		}
	}
	return won
}

// TestRefreshReuseUnderConcurrency: N parallel presentations of one
// refresh token. At most the grace allowance succeeds (the rotation and
// one grace use); with more than that, the family is revoked, the tokens
// already issued from it included, and every loser gets invalid_grant.
func TestRefreshReuseUnderConcurrency(t *testing.T) {
	for _, be := range storeBackends {
		t.Run(be.name, func(t *testing.T) {
			for _, n := range []int{2, 4, 8, 32} {
				t.Run(fmt.Sprintf("N=%d", n), func(t *testing.T) {
					e := newEnv(t, envOptions{store: be.open(t)})
					c := e.client(appID, appSecret, appRedir, nil)
					tok, _ := c.signIn()
					answers := fire(t, e.issuer, n, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}})
					won := winners(t, answers)
					if len(won) > 2 {
						t.Fatalf("%d of %d parallel refreshes succeeded, want at most 2 (the rotation and one grace use)", len(won), n)
					}
					if n == 2 {
						// Within the grace allowance: both succeed and
						// the family lives on.
						if len(won) != 2 {
							t.Fatalf("%d of 2 parallel refreshes succeeded, want 2", len(won))
						}
						for i, w := range won {
							if status, m := c.refresh(w.fresh); status != http.StatusOK {
								t.Errorf("refresh with winner %d's token = %d %v, want 200", i, status, m)
							}
						}
						return
					}
					for i, w := range won {
						if status, m := c.refresh(w.fresh); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
							t.Errorf("winner %d's refresh token after the reuse = %d %v, want 400 invalid_grant (family revoked)", i, status, m)
						}
						if got := c.introspect(w.access); got["active"] != false {
							t.Errorf("winner %d's access token after the reuse = %v, want inactive", i, got)
						}
					}
					if status, m := c.refresh(tok.RefreshToken); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
						t.Errorf("the presented refresh token afterwards = %d %v, want 400 invalid_grant", status, m)
					}
				})
			}
		})
	}
}

// TestCodeRedeemedInParallel: of parallel redemptions of one code exactly
// one succeeds; the others get invalid_grant and, as for any code used
// twice, revoke what the winner was issued.
func TestCodeRedeemedInParallel(t *testing.T) {
	for _, be := range storeBackends {
		t.Run(be.name, func(t *testing.T) {
			e := newEnv(t, envOptions{store: be.open(t)})
			c := e.client(appID, appSecret, appRedir, nil)
			l := newLogin()
			code := c.code(c.authorize(l), l)
			answers := fire(t, e.issuer, 4, url.Values{
				"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {appRedir}, "code_verifier": {l.verifier},
			})
			won := winners(t, answers)
			if len(won) != 1 {
				t.Fatalf("%d of 4 parallel redemptions of one code succeeded, want exactly 1", len(won))
			}
			if status, m := c.refresh(won[0].fresh); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
				t.Errorf("the winner's refresh token = %d %v, want 400 invalid_grant (the code was used twice)", status, m)
			}
			if got := c.introspect(won[0].access); got["active"] != false {
				t.Errorf("the winner's access token = %v, want inactive (the code was used twice)", got)
			}
			if _, err := c.oauth.Exchange(t.Context(), code, oauth2.VerifierOption(l.verifier)); err == nil {
				t.Error("the code was redeemed again afterwards")
			}
		})
	}
}
