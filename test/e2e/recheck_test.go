package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/federation"
	"github.com/keyward/keyward/store"
	"github.com/keyward/keyward/test/brokertest"
)

const recheckInterval = time.Minute

// tokenRecorder remembers the refresh tokens the upstream hands out.
type tokenRecorder struct {
	mu     sync.Mutex
	tokens []string
}

func (r *tokenRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil || !strings.HasSuffix(req.URL.Path, "/token") {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	var m struct {
		RefreshToken string `json:"refresh_token"`
	}
	if json.Unmarshal(body, &m) == nil && m.RefreshToken != "" {
		r.mu.Lock()
		r.tokens = append(r.tokens, m.RefreshToken)
		r.mu.Unlock()
	}
	return resp, nil
}

func (r *tokenRecorder) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.tokens...)
}

// newRecheckEnv is a broker whose upstream corp asks for offline_access
// and is re-checked every recheckInterval; dir holds the bbolt file.
func newRecheckEnv(t *testing.T, rec *tokenRecorder) (e *env, dir string) {
	t.Helper()
	e, dir = &env{t: t, clock: &clock{}}, t.TempDir()
	e.b = brokertest.New(t, brokertest.Options{
		Dir:       dir,
		NoSync:    true,
		AutoLogin: "alice",
		Clients:   []broker.Client{{ID: appID, Name: "The App", Secret: appSecret, RedirectURIs: []string{appRedir}}},
		Now:       e.clock.Now,
		Broker: func(bc *broker.Config) {
			old := bc.Upstreams[0]
			up, err := federation.Config{
				ID: old.ID(), Name: old.Name(), Issuer: old.Issuer(),
				ClientID: brokertest.UpstreamClientID, ClientSecret: brokertest.UpstreamSecret,
				RedirectURL:     bc.Issuer + "/callback",
				Scopes:          []string{"openid", "email", "profile", "groups", "offline_access"},
				RecheckInterval: recheckInterval,
			}.Open(t.Context(), &http.Client{Transport: rec, Timeout: 10 * time.Second}, testLogger(t))
			if err != nil {
				t.Fatalf("open upstream: %v", err)
			}
			bc.Upstreams[0] = up
			bc.UpstreamTokenKey = bytes.Repeat([]byte{7}, 32)
		},
	})
	e.idps, e.issuer = e.b.IdPs, e.b.Issuer
	e.store, e.keys = e.b.Store, e.b.Keys
	return e, dir
}

func onlySession(t *testing.T, e *env) store.Session {
	t.Helper()
	list, err := e.store.ListSessions(t.Context(), "")
	if err != nil || len(list) != 1 {
		t.Fatalf("ListSessions = %d sessions, %v; want 1", len(list), err)
	}
	return list[0]
}

func TestUpstreamRecheck(t *testing.T) {
	rec := &tokenRecorder{}
	e, dir := newRecheckEnv(t, rec)
	idp := e.idps[0]
	c := e.client(appID, appSecret, appRedir, nil)
	tok, _ := c.signIn()
	rt := tok.RefreshToken

	sess := onlySession(t, e)
	upTokens := rec.all()
	if len(upTokens) != 1 || len(sess.UpstreamRefreshToken) == 0 || sess.UpstreamCheckedAt.IsZero() {
		t.Fatalf("after sign-in: upstream refresh tokens %d, stored sealed token %d bytes, checked at %v; want one, sealed, set",
			len(upTokens), len(sess.UpstreamRefreshToken), sess.UpstreamCheckedAt)
	}
	assertNotStored(t, dir, sess, upTokens[0])

	refresh := func(want int) map[string]any {
		t.Helper()
		status, body := c.refresh(rt)
		if status != want {
			t.Fatalf("refresh = %d %v, want %d", status, body, want)
		}
		if status == http.StatusOK {
			rt = body["refresh_token"].(string)
		}
		return body
	}
	hits := idp.Hits("token")
	wantHits := func(n int64, why string) {
		t.Helper()
		if got := idp.Hits("token") - hits; got != n {
			t.Fatalf("%s: upstream token requests = %d, want %d", why, got, n)
		}
		hits = idp.Hits("token")
	}

	// Within the interval: no upstream call.
	refresh(http.StatusOK)
	wantHits(0, "refresh within the interval")

	// After it: the upstream grant is refreshed (a refresh grant) and the
	// rotated token kept, sealed.
	e.clock.Advance(recheckInterval + time.Second)
	refresh(http.StatusOK)
	wantHits(1, "refresh after the interval")
	after := onlySession(t, e)
	if !after.UpstreamCheckedAt.After(sess.UpstreamCheckedAt) || bytes.Equal(after.UpstreamRefreshToken, sess.UpstreamRefreshToken) {
		t.Errorf("after the re-check: checked at %v (was %v), sealed token changed %v; want later and changed",
			after.UpstreamCheckedAt, sess.UpstreamCheckedAt, !bytes.Equal(after.UpstreamRefreshToken, sess.UpstreamRefreshToken))
	}
	if toks := rec.all(); len(toks) != 2 {
		t.Fatalf("upstream refresh tokens = %d, want 2 (rotated by the re-check)", len(toks))
	} else {
		assertNotStored(t, dir, after, toks[1])
	}
	refresh(http.StatusOK)
	wantHits(0, "refresh right after a re-check")

	// An upstream failure says nothing about the person: the refresh goes
	// on and the next one tries again.
	e.clock.Advance(recheckInterval + time.Second)
	idp.FailToken(http.StatusInternalServerError)
	refresh(http.StatusOK)
	wantHits(1, "refresh with the upstream failing")
	idp.FailToken(0)
	onlySession(t, e)
	refresh(http.StatusOK)
	wantHits(1, "refresh after the upstream failure")

	// The upstream disables the person: the next re-check ends the session.
	if n := idp.RevokeRefreshTokens("alice"); n == 0 {
		t.Fatal("fake IdP had no refresh token of alice")
	}
	e.clock.Advance(recheckInterval + time.Second)
	body := refresh(http.StatusBadRequest)
	wantHits(1, "refresh with the upstream refusing")
	if body["error"] != "invalid_grant" || !strings.Contains(body["error_description"].(string), "no longer accepts") {
		t.Errorf("refused refresh = %v, want invalid_grant saying the identity provider no longer accepts the person", body)
	}
	if _, err := e.store.GetSession(t.Context(), sess.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetSession after the refusal = %v, want ErrNotFound", err)
	}
	revs, _, err := e.store.ListRevocations(t.Context(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range revs {
		found = found || (r.Kind == store.RevokeSession && r.SessionID == sess.ID)
	}
	if !found {
		t.Errorf("revocation feed %+v has no session entry for %s", revs, sess.ID)
	}
	refresh(http.StatusBadRequest) // the family is gone for good
	wantHits(0, "refresh after the session ended")
}

// assertNotStored checks that the upstream refresh token is in neither the
// record nor the bbolt file, raw or base64.
func assertNotStored(t *testing.T, dir string, sess store.Session, token string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "keyward.db"))
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) == 0 {
		t.Fatal("empty bbolt file")
	}
	for _, form := range []string{token, base64.StdEncoding.EncodeToString([]byte(token)), base64.RawStdEncoding.EncodeToString([]byte(token))} {
		if bytes.Contains(raw, []byte(form)) || bytes.Contains(sess.UpstreamRefreshToken, []byte(form)) {
			t.Errorf("the upstream refresh token is stored in plaintext (%q)", form)
		}
	}
}

func TestRecheckConfigNeedsOfflineAccess(t *testing.T) {
	c := federation.Config{
		ID: "corp", Issuer: "https://idp.example.com", ClientID: "k", ClientSecret: "s",
		RedirectURL: "https://sso.example.com/callback", RecheckInterval: time.Minute,
	}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "offline_access") {
		t.Errorf("Validate without offline_access = %v, want an error naming offline_access", err)
	}
	c.Scopes = []string{"openid", "offline_access"}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate with offline_access = %v", err)
	}
}

// TestRecheckAfterSessionEnded: once the Keyward session that holds the
// upstream's refresh token is over, a re-checked upstream's grant cannot be
// re-checked, so its refresh is refused (sign in again) instead of going on
// unchecked for the rest of the family's lifetime. An upstream without
// re-checks keeps refreshing.
func TestRecheckAfterSessionEnded(t *testing.T) {
	past := 24*time.Hour + time.Minute // the default session lifetime, and then some

	e, _ := newRecheckEnv(t, &tokenRecorder{})
	c := e.client(appID, appSecret, appRedir, nil)
	tok, _ := c.signIn()
	hits := e.idps[0].Hits("token")
	e.clock.Advance(past)
	status, body := c.refresh(tok.RefreshToken)
	if status != http.StatusBadRequest || body["error"] != "invalid_grant" || !strings.Contains(fmt.Sprint(body["error_description"]), "sign in again") {
		t.Fatalf("refresh after the session ended = %d (error %v: %v), want 400 invalid_grant asking to sign in again", status, body["error"], body["error_description"])
	}
	if n := e.idps[0].Hits("token") - hits; n != 0 {
		t.Errorf("upstream token requests = %d, want 0 (nothing to re-check with)", n)
	}
	if status, _ := c.refresh(tok.RefreshToken); status != http.StatusBadRequest {
		t.Errorf("second refresh = %d, want 400: the family is revoked", status)
	}

	plain := newEnv(t, envOptions{})
	pc := plain.client(appID, appSecret, appRedir, nil)
	ptok, _ := pc.signIn()
	plain.clock.Advance(past)
	if status, body := pc.refresh(ptok.RefreshToken); status != http.StatusOK {
		t.Errorf("refresh without re-checks after the session ended = %d (error %v: %v), want 200", status, body["error"], body["error_description"])
	}
}
