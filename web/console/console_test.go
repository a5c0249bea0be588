package console_test

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/store"
	"github.com/keyward/keyward/test/brokertest"
	"github.com/keyward/keyward/web"
	"github.com/keyward/keyward/web/console"
)

// consoleEnv is a broker with the console mounted, through brokertest (the
// fake upstream's users: alice in staff and admins, bob in staff).
func consoleEnv(t *testing.T, cfg console.Config) *brokertest.Env {
	t.Helper()
	return consoleEnvAt(t, cfg, time.Now)
}

// consoleEnvAt is consoleEnv with the console's clock now.
func consoleEnvAt(t *testing.T, cfg console.Config, now func() time.Time) *brokertest.Env {
	t.Helper()
	return consoleEnvWith(t, cfg, envOptions{now: now})
}

// envOptions are consoleEnvWith's extras.
type envOptions struct {
	now func() time.Time
	// reg, when set, is web's metrics registry and the console's Metrics.
	reg *prometheus.Registry
	// readers are confidential clients registered as revocation-feed
	// readers, each with the secret readerSecret.
	readers []string
	// handler, when set, receives the console (for benchmarks that call
	// it directly).
	handler *http.Handler
}

const readerSecret = "reader-secret-0123456789"

func consoleEnvWith(t testing.TB, cfg console.Config, o envOptions) *brokertest.Env {
	t.Helper()
	cfg.Enabled = true
	cfg.SetDefaults()
	if o.now == nil {
		o.now = time.Now
	}
	var e *brokertest.Env
	issuer := make(chan string, 1)
	e = brokertest.New(t, brokertest.Options{
		NoSync: true,
		Broker: func(bc *broker.Config) {
			issuer <- bc.Issuer
			bc.Clients = append(bc.Clients, cfg.Client(bc.Issuer))
			for _, id := range o.readers {
				bc.Clients = append(bc.Clients, broker.Client{ID: id, Secret: readerSecret, RedirectURIs: []string{"https://" + id + ".example/cb"}})
				bc.RevocationReaders = append(bc.RevocationReaders, id)
			}
		},
		Web: func(wc *web.Config) {
			opts := console.Options{
				Config: cfg, Issuer: <-issuer, Admin: wc.Broker, Keys: wc.Keys.(console.Keys),
				Secret: []byte("console-secret-0123456789-0123456789-0123456789"), Version: "test", Now: o.now,
			}
			if o.reg != nil {
				wc.Registerer, opts.Metrics = o.reg, o.reg
			}
			c, err := console.New(opts)
			if err != nil {
				t.Fatalf("console.New() = %v", err)
			}
			if o.handler != nil {
				*o.handler = c
			}
			wc.Console = c
		},
	})
	return e
}

var (
	formToken  = regexp.MustCompile(`name="form_token" value="([^"]+)"`)
	formAction = regexp.MustCompile(`<form method="post" action="([^"]+)"`)
	csrfField  = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
)

// browser is a cookie-keeping client.
func browser(t testing.TB) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 10 * time.Second}
}

// signIn signs user in to the console through the upstream's login form
// and returns the browser and the page it lands on.
func signIn(t testing.TB, e *brokertest.Env, user, password string) (*http.Client, int, string) {
	t.Helper()
	b := browser(t)
	status, body, u := get(t, b, e.Issuer+"/console/")
	tok, act := formToken.FindStringSubmatch(body), formAction.FindStringSubmatch(body)
	if status != http.StatusOK || tok == nil || act == nil {
		t.Fatalf("GET /console/ signed out = %d at %s, want the upstream's login form:\n%.400s", status, u, body)
	}
	action, err := u.Parse(strings.ReplaceAll(act[1], "&amp;", "&"))
	if err != nil {
		t.Fatal(err)
	}
	status, body, _ = post(t, b, action.String(), url.Values{"form_token": {tok[1]}, "username": {user}, "password": {password}})
	return b, status, body
}

func get(t testing.TB, b *http.Client, u string) (int, string, *url.URL) {
	t.Helper()
	resp, err := b.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Request.URL
}

func post(t testing.TB, b *http.Client, u string, form url.Values) (int, string, *url.URL) {
	t.Helper()
	resp, err := b.PostForm(u, form)
	if err != nil {
		t.Fatalf("POST %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Request.URL
}

func csrf(t testing.TB, body string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF field in:\n%.400s", body)
	}
	return m[1]
}

// subjectOf returns the id of the subject with email.
func subjectOf(t testing.TB, e *brokertest.Env, email string) store.Subject {
	t.Helper()
	subs, err := e.Broker.FindSubjectsByEmail(t.Context(), email)
	if err != nil || len(subs) != 1 {
		t.Fatalf("FindSubjectsByEmail(%s) = %v, %v", email, subs, err)
	}
	return subs[0]
}

func TestAdminSignsInSearchesAndDeprovisions(t *testing.T) {
	e := consoleEnv(t, console.Config{AdminGroups: []string{"admins"}})
	// bob signs in to the console once (refused, but Keyward knows him and
	// has a session of his).
	_, status, _ := signIn(t, e, "bob", "bob-demo")
	if status != http.StatusForbidden {
		t.Fatalf("bob's console sign-in = %d, want 403 (not in admins)", status)
	}
	bob := subjectOf(t, e, "bob@example.com")

	alice, status, body := signIn(t, e, "alice", "alice-demo")
	if status != http.StatusOK || !strings.Contains(body, "<title>People · Keyward console</title>") {
		t.Fatalf("alice's console sign-in = %d, want the people page:\n%.600s", status, body)
	}
	status, body, _ = get(t, alice, e.Issuer+"/console/?q=BOB%40")
	if status != http.StatusOK || !strings.Contains(body, "Bob Example") || strings.Contains(body, "Alice Example") {
		t.Fatalf("search bob@ = %d, want bob only:\n%.800s", status, body)
	}
	status, body, _ = get(t, alice, e.Issuer+"/console/people/"+url.PathEscape(bob.ID))
	if status != http.StatusOK || !strings.Contains(body, "Sessions (1)") || !strings.Contains(body, "Deprovision…") {
		t.Fatalf("bob's page = %d, want one session and the deprovision action:\n%.1200s", status, body)
	}
	act := e.Issuer + "/console/people/" + url.PathEscape(bob.ID) + "/act"
	status, body, _ = get(t, alice, e.Issuer+"/console/people/"+url.PathEscape(bob.ID)+"/confirm?action=deprovision")
	if status != http.StatusOK || !strings.Contains(body, "1 Keyward session(s) end") {
		t.Fatalf("confirmation = %d, want what will happen:\n%.1200s", status, body)
	}
	token := csrf(t, body)

	// Refused: no CSRF token, a wrong one, no confirmation, no reason.
	for _, tt := range []struct {
		name string
		form url.Values
		want int
	}{
		{"no CSRF token", url.Values{"action": {"deprovision"}, "confirm": {"yes"}, "reason": {"r"}}, http.StatusForbidden},
		{"another CSRF token", url.Values{"csrf": {token + "x"}, "action": {"deprovision"}, "confirm": {"yes"}, "reason": {"r"}}, http.StatusForbidden},
		{"not confirmed", url.Values{"csrf": {token}, "action": {"deprovision"}, "reason": {"r"}}, http.StatusBadRequest},
		{"no reason", url.Values{"csrf": {token}, "action": {"deprovision"}, "confirm": {"yes"}}, http.StatusBadRequest},
	} {
		if status, body, _ := post(t, alice, act, tt.form); status != tt.want {
			t.Errorf("POST act (%s) = %d, want %d:\n%.300s", tt.name, status, tt.want, body)
		}
	}
	if s, _ := e.Broker.Subject(t.Context(), bob.ID); s.Disabled {
		t.Fatal("bob is disabled by a refused POST")
	}

	head := func() int64 {
		h, err := e.Broker.FeedHead(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	before := head()
	status, body, _ = post(t, alice, act, url.Values{"csrf": {token}, "action": {"deprovision"}, "confirm": {"yes"}, "reason": {"left the company"}})
	if status != http.StatusOK || !strings.Contains(body, "1 session(s)") || !strings.Contains(body, `id="kc-feed-seq">`) {
		t.Fatalf("deprovision = %d, want the result with counts and feed sequence:\n%.800s", status, body)
	}
	if head() != before+1 {
		t.Errorf("feed head after deprovision = %d, want %d", head(), before+1)
	}
	s, _ := e.Broker.Subject(t.Context(), bob.ID)
	alicesID := subjectOf(t, e, "alice@example.com").ID
	if !s.Disabled || s.DisabledBy != "console:"+alicesID || s.DisabledReason != "left the company" {
		t.Errorf("bob after deprovision = %+v, want disabled by console:%s for the reason given", s, alicesID)
	}
	audit, _ := e.Broker.QueryAudit(t.Context(), store.AuditQuery{Target: bob.ID, Action: broker.ActionDeprovision})
	if len(audit.Events) != 1 || audit.Events[0].Actor != "console:"+alicesID {
		t.Errorf("audit of bob's deprovisioning = %+v, want one by alice", audit.Events)
	}
	// The person page says why, when and by whom.
	_, body, _ = get(t, alice, e.Issuer+"/console/people/"+url.PathEscape(bob.ID))
	for _, want := range []string{"deprovisioned", "left the company", "console:" + alicesID, "Reinstate…"} {
		if !strings.Contains(body, want) {
			t.Errorf("bob's page after deprovision lacks %q", want)
		}
	}
	// The audit page and its export.
	status, body, _ = get(t, alice, e.Issuer+"/console/audit?person="+url.QueryEscape(bob.ID))
	if status != http.StatusOK || !strings.Contains(body, "left the company") {
		t.Errorf("audit page for bob = %d:\n%.600s", status, body)
	}
	status, body, _ = get(t, alice, e.Issuer+"/console/audit.jsonl?action=deprovision")
	if status != http.StatusOK || strings.Count(body, "\n") != 1 || !strings.Contains(body, `"reason":"left the company"`) {
		t.Errorf("audit export = %d %q, want one JSON line", status, body)
	}
	for _, page := range []string{"/console/keys", "/console/health", "/console/keys/confirm"} {
		if status, body, _ := get(t, alice, e.Issuer+page); status != http.StatusOK {
			t.Errorf("GET %s = %d:\n%.300s", page, status, body)
		}
	}
}

func TestHelpdeskSeesButCannotAct(t *testing.T) {
	e := consoleEnv(t, console.Config{AdminGroups: []string{"admins"}, HelpdeskGroups: []string{"staff"}})
	bobBrowser, status, body := signIn(t, e, "bob", "bob-demo")
	if status != http.StatusOK || !strings.Contains(body, "help desk (read-only)") {
		t.Fatalf("bob (staff) sign-in = %d, want the people page read-only:\n%.600s", status, body)
	}
	bob := subjectOf(t, e, "bob@example.com")
	page := e.Issuer + "/console/people/" + url.PathEscape(bob.ID)
	status, body, _ = get(t, bobBrowser, page)
	if status != http.StatusOK || strings.Contains(body, "Deprovision…") || strings.Contains(body, "End all sessions") {
		t.Errorf("person page for help desk = %d, want no actions:\n%.800s", status, body)
	}
	if status, _, _ := get(t, bobBrowser, page+"/confirm?action=deprovision"); status != http.StatusForbidden {
		t.Errorf("help desk confirmation page = %d, want 403", status)
	}
	_, body, _ = get(t, bobBrowser, e.Issuer+"/console/")
	status, _, _ = post(t, bobBrowser, page+"/act", url.Values{"csrf": {csrf(t, body)}, "action": {"end-all"}, "confirm": {"yes"}})
	if status != http.StatusForbidden {
		t.Errorf("help desk POST act = %d, want 403", status)
	}
	if status, _, _ := post(t, bobBrowser, e.Issuer+"/console/keys/rotate", url.Values{"csrf": {csrf(t, body)}, "confirm": {"yes"}}); status != http.StatusForbidden {
		t.Errorf("help desk POST rotate = %d, want 403", status)
	}
	if sessions, _ := e.Broker.Sessions(t.Context(), bob.ID); len(sessions) != 1 {
		t.Errorf("bob's sessions after refused actions = %d, want 1", len(sessions))
	}
}

func TestDeprovisionedStaffLoseTheConsole(t *testing.T) {
	e := consoleEnv(t, console.Config{AdminGroups: []string{"admins"}})
	alice, status, _ := signIn(t, e, "alice", "alice-demo")
	if status != http.StatusOK {
		t.Fatalf("alice's sign-in = %d", status)
	}
	if status, _, _ := get(t, alice, e.Issuer+"/console/health"); status != http.StatusOK {
		t.Fatalf("GET /console/health = %d, want 200", status)
	}
	sub := subjectOf(t, e, "alice@example.com")
	if _, err := e.Broker.Deprovision(t.Context(), sub.ID, "test", "admin-api"); err != nil {
		t.Fatal(err)
	}
	status, body, _ := get(t, alice, e.Issuer+"/console/health")
	if status != http.StatusForbidden || !strings.Contains(body, "Access withdrawn") {
		t.Errorf("GET /console/health after deprovisioning alice = %d, want 403 Access withdrawn:\n%.300s", status, body)
	}
}

func TestSignedOutAndHeaders(t *testing.T) {
	e := consoleEnv(t, console.Config{AdminGroups: []string{"admins"}})
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(e.Issuer + "/console/people/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/login" {
		t.Errorf("GET signed out = %d Location %q, want 303 to /console/login", resp.StatusCode, resp.Header.Get("Location"))
	}
	for h, want := range map[string]string{
		"X-Frame-Options": "DENY", "Cache-Control": "no-store",
		"Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
	} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	resp, err = noRedirect.PostForm(e.Issuer+"/console/keys/rotate", url.Values{"confirm": {"yes"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST rotate signed out = %d, want 403", resp.StatusCode)
	}
	// The login cookie is __Host-, HttpOnly, Lax.
	resp, err = noRedirect.Get(e.Issuer + "/console/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	sc := resp.Header.Get("Set-Cookie")
	if !strings.HasPrefix(sc, "__Host-keyward-console-login=") || !strings.Contains(sc, "HttpOnly") || !strings.Contains(sc, "Secure") || !strings.Contains(sc, "SameSite=Lax") {
		t.Errorf("login Set-Cookie = %q, want __Host-, Secure, HttpOnly, Lax", sc)
	}
}

// A staff session unused for longer than idleTimeout has ended: the next
// page asks for a sign-in again, and a form post does nothing.
func TestIdleStaffSessionEnds(t *testing.T) {
	var clock brokertest.Clock
	e := consoleEnvAt(t, console.Config{AdminGroups: []string{"admins"}}, clock.Now)
	alice, status, body := signIn(t, e, "alice", "alice-demo")
	if status != http.StatusOK {
		t.Fatalf("alice's sign-in = %d", status)
	}
	token := csrf(t, body)
	clock.Advance(14 * time.Minute)
	if status, _, _ := get(t, alice, e.Issuer+"/console/health"); status != http.StatusOK {
		t.Fatalf("GET /console/health after 14 idle minutes = %d, want 200", status)
	}
	clock.Advance(16 * time.Minute) // 16 minutes after the last use
	noRedirect := &http.Client{Jar: alice.Jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(e.Issuer + "/console/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/login" {
		t.Errorf("GET after 16 idle minutes = %d %q, want 303 to /console/login", resp.StatusCode, resp.Header.Get("Location"))
	}
	if status, _, _ := post(t, noRedirect, e.Issuer+"/console/keys/rotate", url.Values{"csrf": {token}, "confirm": {"yes"}}); status != http.StatusForbidden {
		t.Errorf("POST rotate after 16 idle minutes = %d, want 403", status)
	}
}
