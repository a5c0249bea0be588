package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/store"
	"github.com/keyward/keyward/store/bolt"
	"github.com/keyward/keyward/store/postgres"
	"github.com/keyward/keyward/store/postgres/pgtest"
	"github.com/keyward/keyward/test/brokertest"
	"github.com/keyward/keyward/web"
)

// outageJSON is the exact answer of the JSON endpoints while the store is
// down (RFC 6749 §5.2 temporarily_unavailable).
const outageJSON = `{"error":"temporarily_unavailable","error_description":"The server cannot handle the request now; try again later."}` + "\n"

// flakyStore is a bbolt store that fails like an unreachable database
// while down is set.
type flakyStore struct {
	*bolt.Store
	down atomic.Bool
}

func (s *flakyStore) fail() error {
	if s.down.Load() {
		return fmt.Errorf("flaky store: dial tcp 127.0.0.1:5432: connection refused: %w", store.ErrUnavailable)
	}
	return nil
}

func (s *flakyStore) CreateLoginAttempt(ctx context.Context, a store.LoginAttempt) error {
	if err := s.fail(); err != nil {
		return err
	}
	return s.Store.CreateLoginAttempt(ctx, a)
}

func (s *flakyStore) GetLoginAttemptByState(ctx context.Context, state string) (store.LoginAttempt, error) {
	if err := s.fail(); err != nil {
		return store.LoginAttempt{}, err
	}
	return s.Store.GetLoginAttemptByState(ctx, state)
}

func (s *flakyStore) GetSession(ctx context.Context, id string) (store.Session, error) {
	if err := s.fail(); err != nil {
		return store.Session{}, err
	}
	return s.Store.GetSession(ctx, id)
}

func (s *flakyStore) GetSubject(ctx context.Context, id string) (store.Subject, error) {
	if err := s.fail(); err != nil {
		return store.Subject{}, err
	}
	return s.Store.GetSubject(ctx, id)
}

func (s *flakyStore) ListSubjects(ctx context.Context) ([]store.Subject, error) {
	if err := s.fail(); err != nil {
		return nil, err
	}
	return s.Store.ListSubjects(ctx)
}

func (s *flakyStore) GetGrant(ctx context.Context, kind store.GrantKind, sig string) (store.Grant, error) {
	if err := s.fail(); err != nil {
		return store.Grant{}, err
	}
	return s.Store.GetGrant(ctx, kind, sig)
}

func (s *flakyStore) CreateGrant(ctx context.Context, g store.Grant) error {
	if err := s.fail(); err != nil {
		return err
	}
	return s.Store.CreateGrant(ctx, g)
}

func (s *flakyStore) UpdateGrant(ctx context.Context, kind store.GrantKind, sig string, updater func(store.Grant) (store.Grant, error)) error {
	if err := s.fail(); err != nil {
		return err
	}
	return s.Store.UpdateGrant(ctx, kind, sig, updater)
}

// checkOutageJSON checks a JSON endpoint's answer during an outage.
func checkOutageJSON(t *testing.T, what string, resp *http.Response) {
	t.Helper()
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || string(body) != outageJSON {
		t.Errorf("%s during an outage = %d %q, want 503 %q", what, resp.StatusCode, body, outageJSON)
	}
	if got := resp.Header.Get("Retry-After"); got != fmt.Sprint(broker.RetryAfter) {
		t.Errorf("%s: Retry-After = %q, want %d", what, got, broker.RetryAfter)
	}
	if got := resp.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("%s: Cache-Control = %q, want no-store", what, got)
	}
}

func postClient(t *testing.T, issuer, path string, form url.Values, header http.Header) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, issuer+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(appID, appSecret)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	return resp
}

func getBody(t *testing.T, u string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// signedInOn starts a broker on st with the app as its client, signs alice
// in, and returns the environment, the app, her tokens and the /keys
// document served before any outage.
func signedInOn(t *testing.T, st store.Store) (*env, *rp, *oauth2.Token, []byte) {
	t.Helper()
	e := &env{t: t, clock: &clock{}}
	e.b = brokertest.New(t, brokertest.Options{
		Store:     st,
		AutoLogin: "alice",
		Clients:   []broker.Client{{ID: appID, Name: "The App", Secret: appSecret, RedirectURIs: []string{appRedir}}},
		Now:       e.clock.Now,
	})
	e.idps, e.issuer, e.keys = e.b.IdPs, e.b.Issuer, e.b.Keys
	c := e.client(appID, appSecret, appRedir, nil)
	tok, _ := c.signIn()
	_, jwks := getBody(t, e.issuer+"/keys")
	return e, c, tok, jwks
}

// TestStoreOutageAnswers503 fails the store as an unreachable database
// does (store.ErrUnavailable) and checks every kind of answer: the OAuth
// JSON endpoints give 503 temporarily_unavailable with Retry-After, the
// sign-in pages a 503 page, the admin API a 503 JSON error; /keys and
// discovery are served from memory. Once the store is back, the same
// refresh token works: nothing was consumed.
func TestStoreOutageAnswers503(t *testing.T) {
	dir := t.TempDir()
	bst, err := bolt.Open(t.Context(), bolt.Options{Path: dir + "/keyward.db", NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bst.Close() })
	fs := &flakyStore{Store: bst}
	e, c, tok, jwksBefore := signedInOn(t, fs)

	// A browser stopped at the upstream, to reach /callback during the outage.
	pending := newBrowser(t)
	pending.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
		if req.URL.Host != strings.TrimPrefix(e.issuer, "http://") {
			return http.ErrUseLastResponse
		}
		return nil
	}
	pc := e.client(appID, appSecret, appRedir, pending)
	toUpstream := pc.authorize(newLogin())
	if toUpstream.StatusCode != http.StatusSeeOther {
		t.Fatalf("authorize = %d, want a redirect to the upstream", toUpstream.StatusCode)
	}

	admin := httptest.NewServer(web.NewAdmin(web.AdminConfig{Broker: e.b.Broker, Keys: e.b.Keys, Token: []byte("admin-token-0123456789-0123456789")}))
	t.Cleanup(admin.Close)

	fs.down.Store(true)
	checkOutageJSON(t, "refresh grant", postClient(t, e.issuer, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, nil))
	checkOutageJSON(t, "revocation", postClient(t, e.issuer, "/revoke", url.Values{"token": {tok.RefreshToken}}, nil))
	checkOutageJSON(t, "introspection", postClient(t, e.issuer, "/introspect", url.Values{"token": {tok.AccessToken}}, nil))
	checkOutageJSON(t, "userinfo", postClient(t, e.issuer, "/userinfo", nil, http.Header{"Authorization": {"Bearer " + tok.AccessToken}}))

	for name, resp := range map[string]*http.Response{
		"authorize (new browser)": e.client(appID, appSecret, appRedir, nil).authorize(newLogin()),
		"authorize (signed in)":   c.authorize(newLogin()),
		"callback":                pc.get(toUpstream.Header.Get("Location")),
	} {
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusServiceUnavailable || !bytes.Contains(body, []byte("Temporarily unavailable")) {
			t.Errorf("%s during an outage = %d, want the 503 page; body: %.300s", name, resp.StatusCode, body)
		}
	}

	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, admin.URL+"/admin/v1/subjects", nil)
	req.Header.Set("Authorization", "Bearer admin-token-0123456789-0123456789")
	status, m := do(t, req)
	if status != http.StatusServiceUnavailable || m["error"] != "unavailable" {
		t.Errorf("admin API during an outage = %d %v, want 503 unavailable", status, m)
	}

	if status, body := getBody(t, e.issuer+"/keys"); status != http.StatusOK || !bytes.Equal(body, jwksBefore) {
		t.Errorf("/keys during an outage = %d %.100s, want 200 and the same key set", status, body)
	}
	if status, _ := getBody(t, e.issuer+"/.well-known/openid-configuration"); status != http.StatusOK {
		t.Errorf("discovery during an outage = %d, want 200", status)
	}

	fs.down.Store(false)
	if status, m := c.refresh(tok.RefreshToken); status != http.StatusOK {
		t.Fatalf("refresh after the outage = %d %v, want 200: the refresh token must not be consumed by the failed attempt", status, m)
	}
}

// TestPostgresOutage stops the PostgreSQL server under a running broker:
// the token endpoint answers 503 temporarily_unavailable, /keys keeps
// answering from memory, and once the server is back the broker reconnects
// by itself. The refresh family survives: the refresh token presented during
// the outage still works, exactly once.
func TestPostgresOutage(t *testing.T) {
	cl := pgtest.StartCluster(t)
	st, err := postgres.Open(t.Context(), postgres.Options{DSN: cl.DSN(), Migrate: true, Logger: brokertest.TestLogger()})
	if err != nil {
		t.Fatalf("postgres.Open() = %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	e, c, tok, jwksBefore := signedInOn(t, st)

	if err := cl.Stop(); err != nil {
		t.Fatalf("stop PostgreSQL: %v", err)
	}
	checkOutageJSON(t, "refresh grant", postClient(t, e.issuer, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, nil))
	if status, body := getBody(t, e.issuer+"/keys"); status != http.StatusOK || !bytes.Equal(body, jwksBefore) {
		t.Errorf("/keys during the outage = %d %.100s, want 200 and the same key set", status, body)
	}
	if err := e.keys.Reload(t.Context()); err == nil {
		t.Error("keys Reload during the outage = nil, want an error")
	}
	if status, body := getBody(t, e.issuer+"/keys"); status != http.StatusOK || !bytes.Equal(body, jwksBefore) {
		t.Errorf("/keys after a failed reload = %d %.100s, want 200 and the same key set", status, body)
	}

	if err := cl.Start(); err != nil {
		t.Fatalf("start PostgreSQL again: %v", err)
	}
	status, m := c.refresh(tok.RefreshToken)
	if status != http.StatusOK {
		t.Fatalf("refresh after PostgreSQL is back = %d %v, want 200 without restarting the broker", status, m)
	}
	rt2 := m["refresh_token"].(string)
	if status, m := c.refresh(rt2); status != http.StatusOK {
		t.Fatalf("refresh with the rotated token = %d %v, want 200: the family is intact", status, m)
	}
	// The token presented during the outage was rotated once, at the
	// recovery: past the grace period, using it again is reuse.
	e.clock.Advance(11 * time.Second)
	if status, m := c.refresh(tok.RefreshToken); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Errorf("reuse of the first refresh token = %d %v, want 400 invalid_grant", status, m)
	}
}
