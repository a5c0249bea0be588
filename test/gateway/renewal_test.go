package gateway

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/test/brokertest"
	"github.com/keyward/keyward/web/verify"
)

// renewalTTL is the broker's access-token lifetime in the renewal tests. The
// verifier renews a session within half of it (or its RefreshBefore, 30s,
// when shorter) of expiry.
const renewalTTL = 12 * time.Second

// TestNginxBrowserRenewal runs docs/gateways/nginx.md's browser-mode block
// with a session of several cookies whose access token comes due: the next
// page is renewed through /oauth2/start (nginx's error_page), and every
// cookie of the renewed session reaches the browser. See runRenewal.
func TestNginxBrowserRenewal(t *testing.T) {
	nginx := findNginx(t)
	listen := freeAddr(t)
	rt := startRenewal(t, "http://"+listen, verify.HeadersNginx)
	startNginx(t, nginx, docBrowserConfigMarker, listen, rt.verifier.Listener.Addr().String(), rt.app.Listener.Addr().String())
	rt.run(t)
}

// TestCaddyBrowserRenewal is TestNginxBrowserRenewal behind Caddy, with
// docs/gateways/caddy.md's browser-mode block: the verifier's 302 to
// /oauth2/start goes back through forward_auth.
func TestCaddyBrowserRenewal(t *testing.T) {
	caddy := findCaddy(t)
	listen := freeAddr(t)
	appURL := "http://" + listen
	rt := startRenewal(t, appURL, verify.HeadersForwarded)
	startCaddy(t, caddy, caddyBrowserConfigMarker, "shop.example.com", appURL, listen,
		rt.verifier.Listener.Addr().String(), rt.app.Listener.Addr().String())
	rt.run(t)
}

// renewal is browser mode with short-lived access tokens and a count of the
// broker's token requests.
type renewal struct {
	appURL        string
	b             *brokerEnv
	verifier, app *httptest.Server
	grants        *grantCounter
}

func startRenewal(t *testing.T, appURL string, headers verify.Headers) *renewal {
	t.Helper()
	grants := &grantCounter{n: map[string]int{}}
	b, verifier := startBrowserModeWith(t, appURL, headers, brokertest.Options{
		Broker:  func(c *broker.Config) { c.AccessTokenTTL = renewalTTL },
		Handler: grants.wrap,
	})
	return &renewal{appURL: appURL, b: b, verifier: verifier, app: startApp(t, identityHeaders), grants: grants}
}

// run signs alice in through the gateway with an HTTP client and a cookie
// jar, with so many groups that the session takes three cookies. Once the
// access token is due for renewal (still valid), an API request passes as
// it is; the next page ends on that page, signed in, through /oauth2/start
// only (no sign-in at the broker), with every session cookie renewed and
// exactly one refresh at the broker. The renewed session then serves pages
// and API requests without another refresh.
func (rt *renewal) run(t *testing.T) {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Jar: loopbackSecureJar{jar}, Timeout: 10 * time.Second}
	get := func(what, path string, page bool) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, rt.appURL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if page { // what a browser sends for a page (kept on redirects)
			req.Header.Set("Accept", "text/html,application/xhtml+xml")
			req.Header.Set("Sec-Fetch-Mode", "navigate")
		} else { // fetch() from a script
			req.Header.Set("Accept", "application/json")
			req.Header.Set("Sec-Fetch-Mode", "cors")
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return resp, readBody(t, resp)
	}
	alice := map[string]string{
		"X-Auth-Request-User": "*", "X-Auth-Request-Preferred-Username": "alice", "X-Auth-Request-Email": "alice@example.com",
		"X-Auth-Request-Groups": "*", "X-Auth-Request-Subject": "*",
	}

	// 1. Sign in, with many groups.
	rt.b.IdPs[0].SetNextClaims(map[string]any{"groups": manyGroups()})
	resp, body := get("open the app", "/orders/1", true)
	req := loginFormRequest(t, resp, body, "alice")
	req.Header.Set("Accept", "text/html")
	if resp, err = client.Do(req); err != nil {
		t.Fatalf("POST login form: %v", err)
	}
	signedIn := time.Now()
	checkAnswer(t, resp, readBody(t, resp), http.StatusOK, "", "/orders/1", alice)
	session := sessionCookies(jar, rt.appURL)
	if len(session) < 3 {
		t.Fatalf("session cookies after sign-in: %d, want 3 or more (the test needs a split session)", len(session))
	}
	size := 0
	for name, v := range session {
		size += len(name) + len(v) + 3
	}
	t.Logf("session: %d cookies, a Cookie header of %d bytes", len(session), size)
	rt.wantGrants(t, "after sign-in", 1, 0)

	// 2. Into the renewal window, the access token still valid: an API
	// request passes without a refresh.
	time.Sleep(time.Until(signedIn.Add(renewalTTL * 2 / 3)))
	resp, body = get("API request near expiry", "/orders/1", false)
	checkAnswer(t, resp, body, http.StatusOK, "", "/orders/1", alice)
	rt.wantGrants(t, "after an API request near expiry", 1, 0)

	// 3. A page: renewed on the way, back at the page.
	resp, body = get("open a page near expiry", "/orders/2?view=full", true)
	checkAnswer(t, resp, body, http.StatusOK, "", "/orders/2", alice)
	if at := resp.Request.URL.String(); at != rt.appURL+"/orders/2?view=full" {
		t.Errorf("the page ended at %s, want %s/orders/2?view=full", at, rt.appURL)
	}
	for _, u := range redirectChain(resp) {
		if !strings.HasPrefix(u, rt.appURL+"/") || strings.Contains(u, "/oauth2/callback") {
			t.Errorf("renewal went through %s: want the app and /oauth2/start only, no sign-in (chain %q)", u, redirectChain(resp))
		}
	}
	rt.wantGrants(t, "after the renewal", 1, 1)
	renewed := sessionCookies(jar, rt.appURL)
	if len(renewed) != len(session) {
		t.Errorf("session cookies after renewal: %d, want %d", len(renewed), len(session))
	}
	for name, v := range session {
		if renewed[name] == v {
			t.Errorf("cookie %s was not renewed", name)
		}
	}

	// 4. The renewed session keeps working, without another refresh.
	resp, body = get("open another page", "/cart", true)
	checkAnswer(t, resp, body, http.StatusOK, "", "/cart", alice)
	if resp.Request.Response != nil {
		t.Errorf("GET /cart after renewal was redirected: %q", redirectChain(resp))
	}
	resp, body = get("API request after renewal", "/orders/3", false)
	checkAnswer(t, resp, body, http.StatusOK, "", "/orders/3", alice)
	rt.wantGrants(t, "after more requests", 1, 1)
	for name, v := range sessionCookies(jar, rt.appURL) {
		if renewed[name] != v {
			t.Errorf("cookie %s changed again after the renewal", name)
		}
	}
}

// wantGrants checks how many code and refresh grants the broker served.
func (rt *renewal) wantGrants(t *testing.T, when string, codes, refreshes int) {
	t.Helper()
	if c, r := rt.grants.get("authorization_code"), rt.grants.get("refresh_token"); c != codes || r != refreshes {
		t.Errorf("%s: the broker redeemed %d codes and %d refresh tokens, want %d and %d", when, c, r, codes, refreshes)
	}
}

// manyGroups are enough groups for a session of three cookies, keeping the
// access token under the verifier's 8 KiB limit.
func manyGroups() []string {
	g := []string{"staff", "admins"}
	for i := range 130 {
		g = append(g, fmt.Sprintf("shop-department-%03d-readers", i))
	}
	return g
}

// sessionCookieRE matches the session cookie and its chunks.
var sessionCookieRE = regexp.MustCompile(`^__Host-keyward-verify(-[0-9]+)?$`)

// sessionCookies returns the jar's session cookies for u, by name.
func sessionCookies(jar *cookiejar.Jar, u string) map[string]string {
	pu, err := url.Parse(u)
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for _, c := range jar.Cookies(secureLoopback(pu)) {
		if sessionCookieRE.MatchString(c.Name) {
			out[c.Name] = c.Value
		}
	}
	return out
}

// redirectChain lists the URLs resp's request went through, first to last.
func redirectChain(resp *http.Response) []string {
	var out []string
	for r := resp.Request; r != nil; {
		out = append([]string{r.URL.String()}, out...)
		if r.Response == nil {
			break
		}
		r = r.Response.Request
	}
	return out
}

// grantCounter counts the broker's token requests by grant_type.
type grantCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (g *grantCounter) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/token" {
			body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
			r.Body = io.NopCloser(bytes.NewReader(body))
			if q, err := url.ParseQuery(string(body)); err == nil {
				g.mu.Lock()
				g.n[q.Get("grant_type")]++
				g.mu.Unlock()
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (g *grantCounter) get(grant string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n[grant]
}
