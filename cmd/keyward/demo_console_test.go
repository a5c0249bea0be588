package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestDemoConsoleInChromium walks the admin console of `keyward demo` in a
// real headless Chromium, as the README tells: bob signs in at the demo app
// and holds a working token; alice signs in to the console through the demo
// identity provider, finds bob, sees his session, deprovisions him through
// the confirmation page, sees the revocation feed advance, and the demo
// gateway then refuses bob's token. A screenshot of each console page is
// kept in the test's artifact directory (go test -artifacts -outputdir DIR).
func TestDemoConsoleInChromium(t *testing.T) {
	chromium := consoleChromium(t)
	appURL, out := startDemo(t)
	m := regexp.MustCompile(`The admin console: +(\S+)/console/`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("the demo's output names no console:\n%s", out.String())
	}
	brokerURL := m[1]
	_, bobPage := signInDemo(t, appURL, "bob", "bob-demo")
	bob := demoAccessToken(t, bobPage)
	if code, body := demoAPI(t, appURL, bob); code != http.StatusOK {
		t.Fatalf("bob's token before = %d %s, want 200", code, body)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	cctx := consoleBrowser(t, ctx, chromium)

	// alice signs in through the demo IdP and lands on the people search.
	cdo(t, cctx, "open the console", chromedp.Navigate(brokerURL+"/console/"), chromedp.WaitVisible(`#username`))
	cdo(t, cctx, "sign in as alice",
		chromedp.SendKeys(`#username`, "alice"), chromedp.SendKeys(`#password`, "alice-demo"),
		chromedp.Click(`button[type="submit"]`), chromedp.WaitVisible(`#kc-q`))
	consoleSnap(t, cctx, "console-people")
	if who := cget(t, cctx, "read the staff line", chromedp.Text(`.kc-who span`)); !strings.Contains(who, "alice@example.com · administrator") {
		t.Errorf("staff line = %q, want alice as administrator", who)
	}

	// The feed's head before, from the health page.
	cdo(t, cctx, "open health", chromedp.Navigate(brokerURL+"/console/health"), chromedp.WaitVisible(`#kc-feed-head`))
	consoleSnap(t, cctx, "console-health")
	before := feedHead(t, cctx)

	// Find bob and open his page: one session at least.
	cdo(t, cctx, "search bob", chromedp.Navigate(brokerURL+"/console/"), chromedp.WaitVisible(`#kc-q`),
		chromedp.SendKeys(`#kc-q`, "bob@"), chromedp.Click(`.kc-search button[type="submit"]`),
		// The people page lists everyone in a .kc-table before the search
		// too: wait for the results page itself (its input's value
		// attribute is the query the server echoes), or the screenshot
		// races the navigation.
		chromedp.WaitVisible(`#kc-q[value="bob@"]`), chromedp.WaitVisible(`.kc-table`))
	consoleSnap(t, cctx, "console-search")
	if rows := cget(t, cctx, "read the results", chromedp.Text(`.kc-table tbody`)); !strings.Contains(rows, "bob@example.com") || strings.Contains(rows, "alice@example.com") {
		t.Errorf("search bob@ rows = %q, want bob only", rows)
	}
	cdo(t, cctx, "open bob", chromedp.Click(`.kc-table tbody a`), chromedp.WaitVisible(`#kc-sessions`))
	consoleSnap(t, cctx, "console-person")
	if h := cget(t, cctx, "read the sessions heading", chromedp.Text(`#kc-sessions`)); h == "Sessions (0)" || !strings.HasPrefix(h, "Sessions (") {
		t.Errorf("bob's sessions heading = %q, want at least one session", h)
	}
	// The demo app asked for offline_access: bob has a refresh family.
	if h := cget(t, cctx, "read the families heading", chromedp.Text(`#kc-families`)); h == "Refresh families (0)" || !strings.HasPrefix(h, "Refresh families (") {
		t.Errorf("bob's refresh families heading = %q, want at least one family", h)
	}

	// Deprovision through the confirmation page.
	cdo(t, cctx, "ask to deprovision", chromedp.Click(`a[href$="action=deprovision"]`), chromedp.WaitVisible(`#kc-reason`))
	consoleSnap(t, cctx, "console-confirm")
	if what := cget(t, cctx, "read the consequences", chromedp.Text(`.kc-consequences`)); !strings.Contains(what, "revocation-feed entry") {
		t.Errorf("confirmation %q does not say the feed gets an entry", what)
	}
	cdo(t, cctx, "confirm", chromedp.SendKeys(`#kc-reason`, "console demo test"),
		chromedp.Click(`form button[type="submit"].kc-danger`), chromedp.WaitVisible(`#kc-feed-seq`))
	consoleSnap(t, cctx, "console-result")
	seq, err := strconv.ParseInt(cget(t, cctx, "read the feed sequence", chromedp.Text(`#kc-feed-seq`)), 10, 64)
	if err != nil || seq <= before {
		t.Errorf("result feed sequence = %d (%v), want above %d", seq, err, before)
	}
	cdo(t, cctx, "open health again", chromedp.Navigate(brokerURL+"/console/health"), chromedp.WaitVisible(`#kc-feed-head`))
	if after := feedHead(t, cctx); after != seq {
		t.Errorf("feed head after = %d, want %d", after, seq)
	}
	cdo(t, cctx, "open the audit log", chromedp.Navigate(brokerURL+"/console/audit?action=deprovision"), chromedp.WaitVisible(`.kc-table`))
	consoleSnap(t, cctx, "console-audit")
	if rows := cget(t, cctx, "read the audit rows", chromedp.Text(`.kc-table tbody`)); !strings.Contains(rows, "console demo test") {
		t.Errorf("audit rows %q lack the deprovisioning", rows)
	}
	cdo(t, cctx, "open keys", chromedp.Navigate(brokerURL+"/console/keys"), chromedp.WaitVisible(`.kc-table`))
	consoleSnap(t, cctx, "console-keys")

	// The gateway polls the feed every demoRevocationInterval.
	status := 0
	for range 30 {
		if status, _ = demoAPI(t, appURL, bob); status == http.StatusUnauthorized {
			break
		}
		time.Sleep(demoRevocationInterval)
	}
	if status != http.StatusUnauthorized {
		t.Fatalf("bob's token after the console's deprovisioning: still %d after 30 polls, want 401", status)
	}
}

// consoleChromium returns the Chromium binary, or skips (fails under
// KEYWARD_TEST_REQUIRE_ALL=1) when there is none.
func consoleChromium(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	if os.Getenv("KEYWARD_TEST_REQUIRE_ALL") == "1" {
		t.Fatal("chromium not found (apt-get install chromium) and KEYWARD_TEST_REQUIRE_ALL=1")
	}
	t.Skip("chromium not found; install the Debian package chromium to run this test")
	return ""
}

// consoleBrowser starts a headless Chromium with a fresh profile (the
// flags of test/gateway), closed when the test ends.
func consoleBrowser(t *testing.T, ctx context.Context, chromium string) context.Context {
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
			consoleSnap(t, cctx, "console-failure")
		}
		cancelBrowser()
		cancelAlloc()
	})
	return cctx
}

func feedHead(t *testing.T, ctx context.Context) int64 {
	t.Helper()
	n, err := strconv.ParseInt(cget(t, ctx, "read the feed head", chromedp.Text(`#kc-feed-head`)), 10, 64)
	if err != nil {
		t.Fatalf("feed head: %v", err)
	}
	return n
}

func cdo(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func cget[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// consoleSnap saves a PNG screenshot of the page as name.png in the test's
// artifact directory and logs where.
func consoleSnap(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Errorf("screenshot %s: %v", name, err)
		return
	}
	p := filepath.Join(t.ArtifactDir(), name+".png")
	if err := os.WriteFile(p, png, 0o600); err != nil {
		t.Errorf("write screenshot: %v", err)
		return
	}
	t.Logf("screenshot of the %s page: %s", name, p)
}
