package gateway

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/federation"
	"github.com/keyward/keyward/keys"
	"github.com/keyward/keyward/store/bolt"
	"github.com/keyward/keyward/test/fakeidp"
	"github.com/keyward/keyward/web"
)

// The broker's client for the protected API.
const (
	clientID     = "orders"
	clientSecret = "orders-secret-0123456789-0123456789-abcdef"
	clientRedir  = "http://127.0.0.1:1/callback" // nothing listens: the browser stops there
	apiAudience  = "orders-api"
)

// brokerEnv is a real broker (bbolt in a temporary folder, rotating keys)
// federating to a fake upstream that shows its login form, as in production.
type brokerEnv struct {
	srv   *httptest.Server
	oauth oauth2.Config
}

// newBroker starts the broker with the orders client plus extra.
func newBroker(t *testing.T, extra ...broker.Client) *brokerEnv {
	t.Helper()
	ctx := t.Context()
	// The issuer must be known before the broker is built: take the address
	// first, serve once the broker exists.
	srv := httptest.NewUnstartedServer(nil)
	t.Cleanup(srv.Close)
	issuer := "http://" + srv.Listener.Addr().String()
	idp := fakeidp.NewTest(t, fakeidp.Config{
		Users:   fakeidp.DemoUsers(),
		Clients: []fakeidp.Client{{ID: "keyward", Secret: "upstream-secret", RedirectURIs: []string{issuer + "/callback"}}},
	})
	st, err := bolt.Open(ctx, bolt.Options{Path: filepath.Join(t.TempDir(), "keyward.db"), NoSync: true})
	if err != nil {
		t.Fatalf("bolt.Open: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	log := testLogger()
	km, err := keys.New(ctx, keys.Config{Store: st, MaxTokenTTL: 15 * time.Minute, Logger: log})
	if err != nil {
		t.Fatalf("keys.New: %v", err)
	}
	up, err := federation.Config{
		ID: "corp", Name: "Corp SSO", Issuer: idp.URL(), ClientID: "keyward", ClientSecret: "upstream-secret",
		RedirectURL: issuer + "/callback", Scopes: []string{"openid", "email", "profile", "groups"},
	}.Open(ctx, http.DefaultClient, log)
	if err != nil {
		t.Fatalf("open upstream: %v", err)
	}
	b, err := broker.New(broker.Config{
		Issuer:       issuer,
		Store:        st,
		Keys:         km,
		Upstreams:    []broker.Upstream{up},
		GlobalSecret: []byte("global-secret-0123456789-0123456789-0123456789"),
		Clients: append([]broker.Client{{
			ID: clientID, Secret: clientSecret, RedirectURIs: []string{clientRedir},
			Scopes:    []string{"openid", "email", "profile", "groups", "orders:read"},
			Audiences: []string{apiAudience},
		}}, extra...),
		Logger: log,
	})
	if err != nil {
		t.Fatalf("broker.New: %v", err)
	}
	w, err := web.New(web.Config{Broker: b, Keys: km, SessionSecret: []byte("cookie-secret-0123456789-0123456789-0123456789"), Logger: log})
	if err != nil {
		t.Fatalf("web.New: %v", err)
	}
	srv.Config.Handler = w
	srv.Start()
	return &brokerEnv{srv: srv, oauth: oauth2.Config{
		ClientID: clientID, ClientSecret: clientSecret, RedirectURL: clientRedir,
		Endpoint: oauth2.Endpoint{AuthURL: issuer + "/authorize", TokenURL: issuer + "/token", AuthStyle: oauth2.AuthStyleInHeader},
		Scopes:   []string{"openid", "email", "profile", "groups", "orders:read"},
	}}
}

func (e *brokerEnv) issuer() string { return e.srv.URL }

var (
	formActionRE = regexp.MustCompile(`<form method="post" action="([^"]+)"`)
	formTokenRE  = regexp.MustCompile(`name="form_token" value="([^"]+)"`)
)

// signIn signs username in through the upstream's login form (authorization
// code + PKCE) and returns the access token.
func (e *brokerEnv) signIn(t *testing.T, username string) string {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if req.URL.Host == "127.0.0.1:1" {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	verifier, state := oauth2.GenerateVerifier(), oauth2.GenerateVerifier()
	resp, err := browser.Get(e.oauth.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("nonce", oauth2.GenerateVerifier())))
	if err != nil {
		t.Fatalf("GET /authorize: %v", err)
	}
	body := readBody(t, resp)
	action, token := formActionRE.FindStringSubmatch(body), formTokenRE.FindStringSubmatch(body)
	if action == nil || token == nil {
		t.Fatalf("sign-in ended at %s (%d), want the upstream's login form:\n%.800s", resp.Request.URL, resp.StatusCode, body)
	}
	formURL, err := resp.Request.URL.Parse(strings.ReplaceAll(action[1], "&amp;", "&"))
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, formURL.String(), strings.NewReader(url.Values{
		"form_token": {token[1]}, "username": {username}, "password": {username + "-demo"},
	}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", formURL.Scheme+"://"+formURL.Host)
	resp, err = browser.Do(req)
	if err != nil {
		t.Fatalf("POST login form: %v", err)
	}
	body = readBody(t, resp)
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Host != "127.0.0.1:1" || loc.Query().Get("code") == "" || loc.Query().Get("state") != state {
		t.Fatalf("after the login form: %d, Location %q, want a code for the client:\n%.800s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	tok, err := e.oauth.Exchange(t.Context(), loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	return tok.AccessToken
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", resp.Request.URL, err)
	}
	return string(b)
}

func testLogger() *slog.Logger {
	if os.Getenv("KEYWARD_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}
