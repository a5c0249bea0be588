package e2e

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/keys"
	"github.com/keyward/keyward/store"
	"github.com/keyward/keyward/store/bolt"
	"github.com/keyward/keyward/test/brokertest"
	"github.com/keyward/keyward/test/fakeidp"
	"github.com/keyward/keyward/web"
)

// clock is a controllable clock: real time plus an offset.
type clock = brokertest.Clock

// Test clients registered at the broker.
const (
	appID      = "app"
	appSecret  = "app-secret-0123456789-0123456789-abcdef"
	appRedir   = "http://127.0.0.1:1/app/callback"
	app2ID     = "app2"
	app2Secret = "app2-secret-0123456789-0123456789-abcdef"
	app2Redir  = "http://127.0.0.1:1/app2/callback"
)

type envOptions struct {
	upstreams int // default 1
	keys      keys.Config
	broker    func(*broker.Config)
	web       func(*web.Config)
	// store, when set, replaces the bbolt file (env.store is then nil).
	store store.Store
}

// env is one broker on a fixed URL with its fake upstreams; restart()
// rebuilds the broker on the same bbolt file.
type env struct {
	t      *testing.T
	b      *brokertest.Env
	clock  *clock
	idps   []*fakeidp.Server
	issuer string

	// Those of the current start.
	store *bolt.Store
	keys  *keys.Manager
}

func newEnv(t *testing.T, opts envOptions) *env {
	t.Helper()
	e := &env{t: t, clock: &clock{}}
	e.b = brokertest.New(t, brokertest.Options{
		Dir:       t.TempDir(),
		NoSync:    true,
		Upstreams: opts.upstreams,
		AutoLogin: "alice",
		Clients: []broker.Client{
			{ID: appID, Name: "The App", Secret: appSecret, RedirectURIs: []string{appRedir}},
			{ID: app2ID, Name: "Second App", Secret: app2Secret, RedirectURIs: []string{app2Redir}},
		},
		Keys:   opts.keys,
		Store:  opts.store,
		Now:    e.clock.Now,
		Broker: opts.broker,
		Web:    opts.web,
	})
	e.idps, e.issuer = e.b.IdPs, e.b.Issuer
	e.store, e.keys = e.b.Store, e.b.Keys
	return e
}

// restart closes the store and builds a new broker on the same file.
func (e *env) restart() {
	e.t.Helper()
	if err := e.b.Restart(e.t.Context()); err != nil {
		e.t.Fatalf("restart: %v", err)
	}
	e.store, e.keys = e.b.Store, e.b.Keys
}

func testLogger(*testing.T) *slog.Logger { return brokertest.TestLogger() }

// rp is a relying party: an x/oauth2 + go-oidc client with a browser.
type rp struct {
	t        *testing.T
	e        *env
	oauth    oauth2.Config
	verifier *oidc.IDTokenVerifier
	browser  *http.Client
}

func (e *env) client(id, secret, redirect string, browser *http.Client) *rp {
	e.t.Helper()
	ctx := oidc.ClientContext(e.t.Context(), http.DefaultClient)
	p, err := oidc.NewProvider(ctx, e.issuer)
	if err != nil {
		e.t.Fatalf("oidc.NewProvider: %v", err)
	}
	if browser == nil {
		browser = newBrowser(e.t)
	}
	return &rp{
		t: e.t, e: e, browser: browser,
		oauth: oauth2.Config{
			ClientID: id, ClientSecret: secret, RedirectURL: redirect, Endpoint: p.Endpoint(),
			Scopes: []string{oidc.ScopeOpenID, "email", "profile", "groups", oidc.ScopeOfflineAccess},
		},
		verifier: p.Verifier(&oidc.Config{ClientID: id}),
	}
}

// newBrowser is a cookie-keeping client that stops at redirects to the
// test clients' callbacks (nothing listens there).
func newBrowser(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{
		Jar:     jar,
		Timeout: 10 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Host == "127.0.0.1:1" {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}
}

// login describes one sign-in attempt's protections.
type login struct {
	state, nonce, verifier string
}

func newLogin() login {
	return login{state: randomString(), nonce: randomString(), verifier: oauth2.GenerateVerifier()}
}

// authorize runs the browser through /authorize (and the upstream, if it is
// needed) and returns the final response: normally the redirect to the client.
func (c *rp) authorize(l login, extra ...oauth2.AuthCodeOption) *http.Response {
	c.t.Helper()
	opts := append([]oauth2.AuthCodeOption{oidc.Nonce(l.nonce), oauth2.S256ChallengeOption(l.verifier)}, extra...)
	return c.get(c.oauth.AuthCodeURL(l.state, opts...))
}

func (c *rp) get(u string) *http.Response {
	c.t.Helper()
	resp, err := c.browser.Get(u)
	if err != nil {
		c.t.Fatalf("GET %s: %v", u, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(strings.NewReader(string(body)))
	return resp
}

// code returns the code from a redirect to the client, checking state and iss.
func (c *rp) code(resp *http.Response, l login) string {
	c.t.Helper()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther && resp.StatusCode != http.StatusFound {
		body, _ := io.ReadAll(resp.Body)
		c.t.Fatalf("authorize ended with %d, want a redirect to the client; body: %.500s", resp.StatusCode, body)
	}
	u, err := url.Parse(loc)
	if err != nil {
		c.t.Fatalf("parse Location %q: %v", loc, err)
	}
	q := u.Query()
	if q.Get("error") != "" {
		c.t.Fatalf("authorize error: %s: %s", q.Get("error"), q.Get("error_description"))
	}
	if got := q.Get("state"); got != l.state {
		c.t.Fatalf("state = %q, want %q", got, l.state)
	}
	if got := q.Get("iss"); got != c.e.issuer {
		c.t.Fatalf("iss = %q, want %q (RFC 9207)", got, c.e.issuer)
	}
	return q.Get("code")
}

// signIn runs a whole sign-in and returns the tokens.
func (c *rp) signIn() (*oauth2.Token, login) {
	c.t.Helper()
	l := newLogin()
	code := c.code(c.authorize(l), l)
	tok, err := c.oauth.Exchange(c.t.Context(), code, oauth2.VerifierOption(l.verifier))
	if err != nil {
		c.t.Fatalf("Exchange: %v", err)
	}
	return tok, l
}

// postForm posts to a broker endpoint, authenticated as the client.
func (c *rp) postForm(path string, form url.Values) (int, map[string]any) {
	c.t.Helper()
	req, err := http.NewRequestWithContext(c.t.Context(), http.MethodPost, c.e.issuer+path, strings.NewReader(form.Encode()))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(c.oauth.ClientID), url.QueryEscape(c.oauth.ClientSecret))
	return do(c.t, req)
}

func do(t *testing.T, req *http.Request) (int, map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	var m map[string]any
	body, _ := io.ReadAll(resp.Body)
	if len(body) > 0 {
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("%s %s: %d, body is not JSON: %.300s", req.Method, req.URL, resp.StatusCode, body)
		}
	}
	return resp.StatusCode, m
}

func (c *rp) refresh(rt string) (int, map[string]any) {
	return c.postForm("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
}

func (c *rp) introspect(token string) map[string]any {
	c.t.Helper()
	status, m := c.postForm("/introspect", url.Values{"token": {token}})
	if status != http.StatusOK {
		c.t.Fatalf("introspect: %d %v", status, m)
	}
	return m
}

func randomString() string {
	return strings.TrimRight(oauth2.GenerateVerifier()[:24], "=")
}
