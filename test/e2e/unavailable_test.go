package e2e

import (
	"context"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/oauth2"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/federation"
	"github.com/keyward/keyward/test/brokertest"
	"github.com/keyward/keyward/test/fakeidp"
	"github.com/keyward/keyward/web"
)

// switchIdP serves a fake IdP that answers every request with 503 while
// down is true, as an identity provider in an outage does.
func switchIdP(t *testing.T, callback string) (*fakeidp.Server, *atomic.Bool) {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	idp, err := fakeidp.New(fakeidp.Config{
		Issuer:    "http://" + ts.Listener.Addr().String(),
		Users:     fakeidp.DemoUsers(),
		Clients:   []fakeidp.Client{{ID: brokertest.UpstreamClientID, Secret: brokertest.UpstreamSecret, RedirectURIs: []string{callback}}},
		AutoLogin: "alice",
	})
	if err != nil {
		t.Fatalf("fakeidp.New: %v", err)
	}
	var down atomic.Bool
	down.Store(true)
	h := idp.Handler()
	ts.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "identity provider down", http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	})
	ts.Start()
	t.Cleanup(ts.Close)
	return idp, &down
}

// unavailableEnv is a broker whose upstream "partner" is down at start
// (its discovery answers 503) and whose upstream "corp", unless alone,
// works.
type unavailableEnv struct {
	*env
	partner     *fakeidp.Server
	partnerDown *atomic.Bool
	lazy        *federation.LazyUpstream
	metrics     *prometheus.Registry
}

func newUnavailableEnv(t *testing.T, alone bool) *unavailableEnv {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String()
	callback := issuer + "/callback"
	corp := fakeidp.NewTest(t, fakeidp.Config{
		Users:     fakeidp.DemoUsers(),
		Clients:   []fakeidp.Client{{ID: brokertest.UpstreamClientID, Secret: brokertest.UpstreamSecret, RedirectURIs: []string{callback}}},
		AutoLogin: "alice",
	})
	partner, down := switchIdP(t, callback)
	lazy, err := federation.NewLazy(federation.Config{
		ID: "partner", Name: "Partner SSO", Issuer: partner.URL(),
		ClientID: brokertest.UpstreamClientID, ClientSecret: brokertest.UpstreamSecret, RedirectURL: callback,
		Scopes: []string{"openid", "email", "profile", "groups"},
	}, http.DefaultClient, testLogger(t), federation.WithRetryDelay(5*time.Millisecond, 20*time.Millisecond))
	if err != nil {
		t.Fatalf("NewLazy: %v", err)
	}
	runCtx, stop := context.WithCancel(t.Context())
	ran := make(chan error, 1)
	go func() { ran <- lazy.Run(runCtx) }() // as the binary's errgroup does
	t.Cleanup(func() {
		stop()
		if err := <-ran; err != nil {
			t.Errorf("Run() = %v", err)
		}
	})
	<-lazy.Attempted()
	if lazy.Ready() == nil {
		t.Fatal("partner is ready although its discovery answers 503")
	}
	reg := prometheus.NewRegistry()
	e := &env{t: t, clock: &clock{}}
	e.b = brokertest.New(t, brokertest.Options{
		Dir:      t.TempDir(),
		NoSync:   true,
		Listener: ln,
		IdPs:     []*fakeidp.Server{corp},
		Clients:  []broker.Client{{ID: appID, Name: "The App", Secret: appSecret, RedirectURIs: []string{appRedir}}},
		Now:      e.clock.Now,
		Broker: func(bc *broker.Config) {
			if alone {
				bc.Upstreams = nil
			}
			bc.Upstreams = append(bc.Upstreams, lazy)
		},
		Web: func(wc *web.Config) { wc.Registerer = reg },
	})
	e.idps, e.issuer = e.b.IdPs, e.b.Issuer
	e.store, e.keys = e.b.Store, e.b.Keys
	return &unavailableEnv{env: e, partner: partner, partnerDown: down, lazy: lazy, metrics: reg}
}

// bringUp ends partner's outage and waits until the broker's background
// retry has opened it.
func (u *unavailableEnv) bringUp() {
	u.t.Helper()
	u.partnerDown.Store(false)
	select {
	case <-u.lazy.Done():
	case <-time.After(10 * time.Second):
		u.t.Fatalf("partner did not become ready: %v", u.lazy.Ready())
	}
	if err := u.lazy.Ready(); err != nil {
		u.t.Fatalf("partner Ready() = %v after its outage ended", err)
	}
}

// readyz returns /readyz's status and body.
func (u *unavailableEnv) readyz() (int, string) {
	u.t.Helper()
	resp, err := http.Get(u.issuer + "/readyz")
	if err != nil {
		u.t.Fatalf("GET /readyz: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// upGauge returns keyward_upstream_up{upstream=id}, or -1 if absent.
func (u *unavailableEnv) upGauge(id string) float64 {
	u.t.Helper()
	mfs, err := u.metrics.Gather()
	if err != nil {
		u.t.Fatalf("gather metrics: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "keyward_upstream_up" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "upstream" && l.GetValue() == id {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return -1
}

var loginLinkRE = regexp.MustCompile(`href="(/login/[^"]+)"`)

// chooserLink returns the chooser's link to upstream id ("" if none).
func chooserLink(body, id string) string {
	for _, m := range loginLinkRE.FindAllStringSubmatch(body, -1) {
		link := html.UnescapeString(m[1])
		if strings.HasPrefix(link, "/login/"+id+"?") {
			return link
		}
	}
	return ""
}

// finish exchanges the code of a sign-in that ended at the client and
// returns the access token's idp claim.
func (c *rp) finish(resp *http.Response, l login) any {
	c.t.Helper()
	tok, err := c.oauth.Exchange(c.t.Context(), c.code(resp, l), oauth2.VerifierOption(l.verifier))
	if err != nil {
		c.t.Fatalf("Exchange: %v", err)
	}
	_, at := verifyAccessToken(c.t, c.e, tok.AccessToken, c.oauth.ClientID)
	return at["idp"]
}

func TestUnavailableUpstreamAmongSeveral(t *testing.T) {
	u := newUnavailableEnv(t, false)
	c := u.client(appID, appSecret, appRedir, nil)

	// The chooser lists partner, disabled, with a message.
	l := newLogin()
	resp := c.authorize(l)
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("authorize = %d, want the chooser; body: %.300s", resp.StatusCode, body)
	}
	corpLink := chooserLink(body, "corp")
	if corpLink == "" {
		t.Fatalf("chooser has no link to corp: %.1000s", body)
	}
	if link := chooserLink(body, "partner"); link != "" {
		t.Errorf("chooser links to unavailable partner (%s), want a disabled button", link)
	}
	for _, want := range []string{
		`disabled aria-describedby="kw-upstream-1-reason" data-upstream="partner"`,
		"Partner SSO sign-in is temporarily unavailable.",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("chooser lacks %q: %.1500s", want, body)
		}
	}

	// Choosing it anyway (the link of a stale page) is a 503 page.
	attempt := corpLink[strings.Index(corpLink, "?"):]
	resp = c.get(u.issuer + "/login/partner" + attempt)
	checkErrorPage(t, resp, http.StatusServiceUnavailable, "Sign-in temporarily unavailable")
	if n := u.partner.Hits("authorize"); n != 0 {
		t.Errorf("partner authorize hits = %d, want 0", n)
	}

	// Ready, since corp works; partner listed.
	if status, body := u.readyz(); status != http.StatusOK || body != "ready\nunavailable upstreams: partner\n" {
		t.Errorf("/readyz = %d %q, want 200 listing partner", status, body)
	}
	if got := u.upGauge("partner"); got != 0 {
		t.Errorf("keyward_upstream_up{upstream=partner} = %v, want 0", got)
	}
	if got := u.upGauge("corp"); got != 1 {
		t.Errorf("keyward_upstream_up{upstream=corp} = %v, want 1", got)
	}

	// A back-channel logout from partner cannot be checked yet: 503, so
	// the upstream sends it again later, rather than 400, which says never.
	resp, err := http.PostForm(u.issuer+"/backchannel_logout/partner", url.Values{"logout_token": {"eyJhbGciOiJSUzI1NiJ9.e30.c2ln"}})
	if err != nil {
		t.Fatalf("back-channel logout: %v", err)
	}
	if body := readAll(t, resp); resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, `"error":"temporarily_unavailable"`) || resp.Header.Get("Retry-After") == "" {
		t.Errorf("back-channel logout to unavailable partner = %d %s (Retry-After %q), want 503 temporarily_unavailable with Retry-After", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}

	// Sign-in through corp works meanwhile, on the same attempt.
	if idp := c.finish(c.get(u.issuer+corpLink), l); idp != "corp" {
		t.Errorf("idp = %v, want corp", idp)
	}

	// Partner comes back: no restart needed.
	u.bringUp()
	if status, body := u.readyz(); status != http.StatusOK || body != "ready\n" {
		t.Errorf("/readyz after partner is up = %d %q, want 200 \"ready\\n\"", status, body)
	}
	if got := u.upGauge("partner"); got != 1 {
		t.Errorf("keyward_upstream_up{upstream=partner} after recovery = %v, want 1", got)
	}
	c2 := u.client(appID, appSecret, appRedir, nil) // a new browser, without corp's session
	l2 := newLogin()
	body = readAll(t, c2.authorize(l2))
	link := chooserLink(body, "partner")
	if link == "" {
		t.Fatalf("chooser after recovery has no link to partner: %.1000s", body)
	}
	if idp := c2.finish(c2.get(u.issuer+link), l2); idp != "partner" {
		t.Errorf("idp = %v, want partner", idp)
	}
}

func TestUnavailableOnlyUpstream(t *testing.T) {
	u := newUnavailableEnv(t, true)
	c := u.client(appID, appSecret, appRedir, nil)

	resp := c.authorize(newLogin())
	checkErrorPage(t, resp, http.StatusServiceUnavailable, "Sign-in temporarily unavailable")
	if n := u.partner.Hits("authorize"); n != 0 {
		t.Errorf("partner authorize hits = %d, want 0", n)
	}
	if status, body := u.readyz(); status != http.StatusServiceUnavailable || body != "not ready\nunavailable upstreams: partner\n" {
		t.Errorf("/readyz with no upstream available = %d %q, want 503 listing partner", status, body)
	}

	u.bringUp()
	if status, body := u.readyz(); status != http.StatusOK || body != "ready\n" {
		t.Errorf("/readyz after partner is up = %d %q, want 200 \"ready\\n\"", status, body)
	}
	l := newLogin()
	if idp := c.finish(c.authorize(l), l); idp != "partner" {
		t.Errorf("idp = %v, want partner", idp)
	}
}
