package gateway

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/keyward/keyward/test/internal/program"
	"github.com/keyward/keyward/web/verify"
)

// TestBrowserSignIn drives a real headless Chromium through a real nginx,
// configured as docs/gateways/nginx.md's browser-mode block says, in front of
// an app: the first visit goes to Keyward and the upstream's login form, the
// browser comes back signed in to the page it asked for and the app sees the
// identity headers; after /oauth2/sign_out the next visit signs in again.
func TestBrowserSignIn(t *testing.T) {
	nginx := findNginx(t)
	chromium := findChromium(t)
	listen := freeAddr(t)
	appURL := "http://" + listen
	b, verifier := startBrowserMode(t, appURL, verify.HeadersNginx)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var sb strings.Builder
		for _, h := range identityHeaders {
			fmt.Fprintf(&sb, "%s: %s\n", h, r.Header.Get(h))
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<!doctype html><title>shop</title><h1 id=\"who\">Signed in as %s</h1><pre id=\"headers\">%s</pre><p id=\"path\">%s</p>",
			html.EscapeString(r.Header.Get("X-Auth-Request-Preferred-Username")), html.EscapeString(sb.String()), html.EscapeString(r.URL.RequestURI()))
	}))
	t.Cleanup(app.Close)
	startNginx(t, nginx, docBrowserConfigMarker, listen, verifier.Listener.Addr().String(), app.Listener.Addr().String())

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
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
	defer cancelAlloc()
	cctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	defer func() {
		if t.Failed() {
			screenshot(t, cctx)
		}
	}()

	// 1. The app through nginx: no session, so the upstream's login form.
	do(t, cctx, "open the app and reach the login form",
		chromedp.Navigate(appURL+"/orders/1?view=full"),
		chromedp.WaitVisible(chromedp.CSS(`#username`)),
	)
	if at := get(t, cctx, "location", chromedp.Location()); strings.HasPrefix(at, appURL) || strings.HasPrefix(at, b.issuer()) {
		t.Errorf("login form at %s, want the upstream identity provider", at)
	}
	// 2. Sign in: back at the page asked for, with the identity headers.
	do(t, cctx, "sign in as alice",
		chromedp.SendKeys(chromedp.CSS(`#username`), "alice"),
		chromedp.SendKeys(chromedp.CSS(`#password`), "alice-demo"),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#who`)),
	)
	who := get(t, cctx, "read the page", chromedp.Text(chromedp.CSS(`#who`)))
	headers := get(t, cctx, "read the page", chromedp.Text(chromedp.CSS(`#headers`)))
	path := get(t, cctx, "read the page", chromedp.Text(chromedp.CSS(`#path`)))
	at := get(t, cctx, "location", chromedp.Location())
	if who != "Signed in as alice" || path != "/orders/1?view=full" || at != appURL+"/orders/1?view=full" {
		t.Errorf("after sign-in: %q at %s (app saw %q), want alice at %s/orders/1?view=full", who, at, path, appURL)
	}
	for _, want := range []string{"X-Auth-Request-Email: alice@example.com", "X-Auth-Request-Groups: staff,admins"} {
		if !strings.Contains(headers, want) {
			t.Errorf("the app saw headers:\n%s\nwant %q", headers, want)
		}
	}
	// The session cookie is what the docs promise, and invisible to scripts.
	res, err := chromedp.Call(cctx, network.GetCookies, network.GetCookiesParams{URLs: []string{appURL + "/"}})
	if err != nil {
		t.Fatalf("read cookies: %v", err)
	}
	found := false
	for _, c := range res.Cookies {
		if c.Name == "__Host-keyward-verify" {
			found = true
			if !c.HTTPOnly || !c.Secure || c.SameSite != network.CookieSameSiteLax || c.Path != "/" {
				t.Errorf("session cookie %+v, want HttpOnly, Secure, SameSite=Lax, Path=/", c)
			}
		}
	}
	if !found {
		t.Errorf("no __Host-keyward-verify cookie for %s", appURL)
	}
	// 3. Another page needs no sign-in.
	do(t, cctx, "open another page", chromedp.Navigate(appURL+"/cart"), chromedp.WaitVisible(chromedp.CSS(`#who`)))
	if path := get(t, cctx, "read the page", chromedp.Text(chromedp.CSS(`#path`))); path != "/cart" {
		t.Errorf("second page: the app saw %q, want /cart", path)
	}
	// 4. Sign out, then the next visit goes to sign-in again.
	do(t, cctx, "sign out and visit again",
		chromedp.Navigate(appURL+"/oauth2/sign_out?rd=/cart"),
		chromedp.WaitVisible(chromedp.CSS(`#username`)),
	)
	if at := get(t, cctx, "location", chromedp.Location()); strings.HasPrefix(at, appURL) {
		t.Errorf("after sign-out the visit ended at %s, want the login form", at)
	}
}

// do runs steps, failing the test with what was being done.
func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// get runs one action and returns its value.
func get[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// screenshot saves the page to the test's artifact directory (kept with
// go test -artifacts) and logs the path.
func screenshot(t *testing.T, ctx context.Context) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	at, _ := chromedp.Run(sctx, chromedp.Location())
	png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Logf("no screenshot: %v", err)
		return
	}
	p := filepath.Join(t.ArtifactDir(), "browser-failure.png")
	if err := os.WriteFile(p, png, 0o600); err != nil {
		t.Logf("write screenshot: %v", err)
		return
	}
	t.Logf("screenshot of %s: %s", at, p)
}

// findChromium returns the Chromium binary, or skips (fails under
// KEYWARD_TEST_REQUIRE_ALL=1) when there is none.
func findChromium(t *testing.T) string {
	t.Helper()
	return program.Find(t, "chromium", "apt-get install chromium")
}
