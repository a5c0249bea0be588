package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/test/brokertest"
	"github.com/keyward/keyward/web"
	"github.com/keyward/keyward/web/verify"
)

// TestPagesInChromium opens the pages a person meets around sign-in and
// sign-out in a real headless Chromium, checks what each says and keeps a
// screenshot of each (in the test's artifact directory: go test
// -artifacts -outputdir DIR keeps them under DIR; the log names each file):
//
//   - the broker's landing page at its root (issuer, discovery and JWKS
//     links, version);
//   - the gateway's callback error page for a callback this browser did not
//     start (branded, the true reason, no favicon request);
//   - the broker's sign-out confirmation page (end_session without
//     id_token_hint);
//   - the gateway's "You are signed out" page after /oauth2/sign_out;
//   - the broker's "Access removed" page for a deprovisioned person, with
//     the contact line of pages.accessRemovedContact.
func TestPagesInChromium(t *testing.T) {
	chromium := findChromium(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	appURL := "http://" + ln.Addr().String()
	b := startBroker(t, brokertest.Options{
		Clients: []broker.Client{{
			ID: shopClient, Secret: shopSecret, RedirectURIs: []string{appURL + "/oauth2/callback"},
			PostLogoutRedirectURIs: []string{appURL + "/oauth2/signed_out"},
			Scopes:                 []string{"openid", "email", "profile", "groups", "offline_access"},
			Audiences:              []string{apiAudience},
		}},
		Web: func(c *web.Config) {
			c.Pages = web.PagesConfig{AccessRemovedContact: "the IT service desk", AccessRemovedContactURL: "mailto:it@example.com"}
			c.Version = "v9.9.9-pages"
		},
	})
	gatewayPages(t, ln, b.issuer(), appURL)

	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	cctx := newChromium(t, ctx, chromium)

	// 1. The broker's landing page.
	do(t, cctx, "open the broker's root", chromedp.Navigate(b.issuer()+"/"), chromedp.WaitVisible(`#kw-title`))
	snap(t, cctx, "landing")
	checkText(t, cctx, "landing page", `#kw-title`, "Keyward")
	facts := get(t, cctx, "read the facts", chromedp.Text(`.kw-facts`))
	for _, want := range []string{b.issuer(), b.issuer() + "/.well-known/openid-configuration", b.issuer() + "/keys", "v9.9.9-pages"} {
		if !strings.Contains(facts, want) {
			t.Errorf("landing page facts %q lack %q", facts, want)
		}
	}
	links := get(t, cctx, "read the links", chromedp.Evaluate[[]string](`[...document.querySelectorAll('.kw-facts a')].map(a => a.href)`))
	if strings.Join(links, " ") != b.issuer()+"/.well-known/openid-configuration "+b.issuer()+"/keys" {
		t.Errorf("landing page links = %v, want discovery and JWKS", links)
	}

	// 2. A callback this browser did not start: the gateway's branded page
	// with the true reason (a state was sent), and no favicon request.
	do(t, cctx, "open a stray callback", chromedp.Navigate(appURL+"/oauth2/callback?code=x&state=y"), chromedp.WaitVisible(`#kw-title`))
	snap(t, cctx, "callback-error")
	checkText(t, cctx, "callback error page", `#kw-title`, "Sign-in failed")
	checkText(t, cctx, "callback error page", `.kw-status`, "Error 400")
	checkText(t, cctx, "callback error page", `.kw-message`, "This sign-in was not started in this browser, was already completed, or took too long. Start it again.")
	checkText(t, cctx, "callback error page", `a.kw-button`, "Sign in again")
	if icon := get(t, cctx, "read the icon link", chromedp.Evaluate[string](`document.querySelector('link[rel=icon]').getAttribute('href')`)); icon != "data:," {
		t.Errorf("callback error page icon = %q, want data:, (no favicon request)", icon)
	}

	// 3. Sign in through the gateway, then open the broker's sign-out
	// confirmation (no id_token_hint): a question, not a sign-out.
	signInChromium(t, cctx, appURL+"/oauth2/start?rd=%2Fapp", "alice", "alice-demo")
	if at := get(t, cctx, "location", chromedp.Location()); at != appURL+"/app" {
		t.Fatalf("after sign-in at %s, want %s/app", at, appURL)
	}
	do(t, cctx, "open end_session", chromedp.Navigate(b.issuer()+"/end_session"), chromedp.WaitVisible(`#kw-title`))
	snap(t, cctx, "signout-confirmation")
	checkText(t, cctx, "sign-out confirmation", `#kw-title`, "Sign out of Keyward?")
	checkText(t, cctx, "sign-out confirmation", `form button[type=submit]`, "Sign out")
	page := get(t, cctx, "read the page", chromedp.Text(`main`))
	for _, want := range []string{"You will have to sign in again in every application", "If you did not ask to sign out, close this page: you stay signed in."} {
		if !strings.Contains(page, want) {
			t.Errorf("sign-out confirmation %q lacks %q", page, want)
		}
	}
	if action := get(t, cctx, "read the form", chromedp.Evaluate[string](`document.querySelector('form').getAttribute('action')`)); action != "/end_session/confirm" {
		t.Errorf("confirmation form posts to %q, want /end_session/confirm", action)
	}

	// 4. Sign out at the gateway: Keyward's session ends (id_token_hint) and
	// the browser lands on the gateway's signed-out page.
	do(t, cctx, "sign out at the gateway", chromedp.Navigate(appURL+"/oauth2/sign_out"), chromedp.WaitVisible(`#kw-title`))
	snap(t, cctx, "signed-out")
	if at := get(t, cctx, "location", chromedp.Location()); at != appURL+"/oauth2/signed_out" {
		t.Errorf("after sign-out at %s, want %s/oauth2/signed_out", at, appURL)
	}
	checkText(t, cctx, "signed-out page", `#kw-title`, "You are signed out")
	checkText(t, cctx, "signed-out page", `.kw-status`, "Done")
	checkText(t, cctx, "signed-out page", `.kw-message`, "Your session on this site has ended. Signing in again asks for your password.")
	checkText(t, cctx, "signed-out page", `a.kw-button`, "Sign in again")

	// 5. alice is deprovisioned; signing in again ends on "Access removed",
	// which says whom to contact.
	if _, err := b.Broker.DeprovisionByEmail(t.Context(), "alice@example.com", "left", "pages test"); err != nil {
		t.Fatalf("DeprovisionByEmail: %v", err)
	}
	do(t, cctx, "sign in again", chromedp.Click(`a.kw-button`), chromedp.WaitVisible(`#username, .kw-contact, main h1`))
	if at := get(t, cctx, "location", chromedp.Location()); !strings.HasPrefix(at, b.issuer()) {
		signInForm(t, cctx, "alice", "alice-demo")
	}
	do(t, cctx, "reach the refusal", chromedp.WaitVisible(`#kw-title`))
	snap(t, cctx, "access-removed")
	checkText(t, cctx, "Access removed page", `#kw-title`, "Access removed")
	page = get(t, cctx, "read the page", chromedp.Text(`main`))
	if !strings.Contains(page, "Contact: the IT service desk") {
		t.Errorf("Access removed page %q lacks its contact line", page)
	}
	if href := get(t, cctx, "read the contact link", chromedp.Evaluate[string](`(document.querySelector('a[href^="mailto:"]') || {}).href || ""`)); href != "mailto:it@example.com" {
		t.Errorf("Access removed contact link = %q, want mailto:it@example.com", href)
	}
	if at := get(t, cctx, "location", chromedp.Location()); strings.HasPrefix(at, appURL) {
		t.Errorf("the refused sign-in reached the app (%s)", at)
	}
}

// gatewayPages serves on ln what a gateway in browser mode serves at appURL:
// /oauth2/ goes to keyward verify's handler (the broker at issuer, the shop
// client); /app is the app's page.
func gatewayPages(t *testing.T, ln net.Listener, issuer, appURL string) {
	t.Helper()
	v, err := verify.New(t.Context(), verify.Config{Issuer: issuer, Audiences: []string{apiAudience}})
	if err != nil {
		t.Fatalf("verify.New: %v", err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	br, err := verify.NewBrowser(v, verify.BrowserConfig{
		ClientID: shopClient, ClientSecret: shopSecret, CookieSecret: key,
		RedirectURL: appURL + "/oauth2/callback", AllowedRedirectDomains: []string{"127.0.0.1"},
	})
	if err != nil {
		t.Fatalf("verify.NewBrowser: %v", err)
	}
	h := verify.NewHandler(v, verify.Rules{{Path: "/", Browser: true}}, verify.HandlerOptions{Headers: verify.HeadersNginx, Browser: br})
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/oauth2/") {
			h.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><title>app</title><h1 id="app">The app</h1>`)
	})}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("gateway: %v", err)
		}
	}()
	t.Cleanup(func() { _ = srv.Close() })
}

// newChromium starts a headless Chromium with a fresh profile, closed when
// the test ends; if the test failed, the page is kept as a screenshot.
func newChromium(t *testing.T, ctx context.Context, chromium string) context.Context {
	t.Helper()
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
	)
	cctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() {
		if t.Failed() {
			screenshot(t, cctx)
		}
		cancelBrowser()
		cancelAlloc()
	})
	return cctx
}

// signInChromium opens start, signs in at the upstream's login form and
// waits for the app's page.
func signInChromium(t *testing.T, ctx context.Context, start, user, password string) {
	t.Helper()
	do(t, ctx, "reach the login form", chromedp.Navigate(start), chromedp.WaitVisible(`#username`))
	signInForm(t, ctx, user, password)
	do(t, ctx, "reach the app", chromedp.WaitVisible(`#app`))
}

// signInForm fills in and submits the upstream's login form.
func signInForm(t *testing.T, ctx context.Context, user, password string) {
	t.Helper()
	do(t, ctx, "sign in as "+user,
		chromedp.WaitVisible(`#username`),
		chromedp.SendKeys(`#username`, user),
		chromedp.SendKeys(`#password`, password),
		chromedp.Click(`button[type="submit"]`),
	)
}

// checkText fails the test unless the text of the element sel is want.
func checkText(t *testing.T, ctx context.Context, page, sel, want string) {
	t.Helper()
	if got := strings.TrimSpace(get(t, ctx, "read "+sel, chromedp.Text(sel))); got != want {
		t.Errorf("%s: %s = %q, want %q", page, sel, got, want)
	}
}

// snap saves a screenshot of the page as name.png in the test's artifact
// directory and logs where.
func snap(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png := get(t, ctx, "screenshot "+name, chromedp.FullScreenshot(100)) // 100: PNG, not JPEG
	if !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("screenshot %s is not a PNG", name)
	}
	p := filepath.Join(t.ArtifactDir(), name+".png")
	if err := os.WriteFile(p, png, 0o600); err != nil {
		t.Fatalf("write screenshot: %v", err)
	}
	t.Logf("screenshot of the %s page: %s", name, p)
}
