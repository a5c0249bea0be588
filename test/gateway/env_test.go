package gateway

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/test/brokertest"
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
	*brokertest.Env
	srv   *http.Server
	oauth oauth2.Config
}

// ordersClient is the broker's client for the protected API.
var ordersClient = broker.Client{
	ID: clientID, Secret: clientSecret, RedirectURIs: []string{clientRedir},
	Scopes:    []string{"openid", "email", "profile", "groups", "orders:read"},
	Audiences: []string{apiAudience},
}

// newBroker starts the broker with the orders client plus extra.
func newBroker(t *testing.T, extra ...broker.Client) *brokerEnv {
	t.Helper()
	return startBroker(t, brokertest.Options{Clients: append([]broker.Client{ordersClient}, extra...)})
}

// startBroker starts a broker with one upstream from opts, in a temporary
// folder, and an oauth2 configuration for the orders client.
func startBroker(t *testing.T, opts brokertest.Options) *brokerEnv {
	t.Helper()
	opts.Dir, opts.NoSync = t.TempDir(), true
	// Access tokens carry email_verified wherever they carry email (the
	// verifier passes X-Auth-Request-Email only when it is true). Set here
	// explicitly so these tests hold whether or not it is the broker's
	// default claim list.
	edit := opts.Broker
	opts.Broker = func(c *broker.Config) {
		c.AccessTokenClaims = []string{"email", "email_verified", "name", "preferred_username", "groups"}
		if edit != nil {
			edit(c)
		}
	}
	env := brokertest.New(t, opts)
	return &brokerEnv{Env: env, srv: env.Server, oauth: oauth2.Config{
		ClientID: clientID, ClientSecret: clientSecret, RedirectURL: clientRedir,
		Endpoint: oauth2.Endpoint{AuthURL: env.Issuer + "/authorize", TokenURL: env.Issuer + "/token", AuthStyle: oauth2.AuthStyleInHeader},
		Scopes:   []string{"openid", "email", "profile", "groups", "orders:read"},
	}}
}

func (e *brokerEnv) issuer() string { return e.Issuer }

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
	resp, err = browser.Do(loginFormRequest(t, resp, readBody(t, resp), username))
	if err != nil {
		t.Fatalf("POST login form: %v", err)
	}
	body := readBody(t, resp)
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

// loginFormRequest is the POST that signs username in (password
// username-demo) on the upstream's login form, which resp shows with body.
func loginFormRequest(t *testing.T, resp *http.Response, body, username string) *http.Request {
	t.Helper()
	action, token := formActionRE.FindStringSubmatch(body), formTokenRE.FindStringSubmatch(body)
	if action == nil || token == nil {
		t.Fatalf("ended at %s (%d), want the upstream's login form:\n%.800s", resp.Request.URL, resp.StatusCode, body)
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
	return req
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
