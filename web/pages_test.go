package web

import (
	"html/template"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func pagesTestNew(t *testing.T) *pages {
	t.Helper()
	p, err := newPages()
	if err != nil {
		t.Fatalf("newPages() = %v", err)
	}
	return p
}

// pagesCheckResponse checks what every rendered page has in common: the status,
// exactly the two headers pages set, and an accessible, CSP-safe document.
func pagesCheckResponse(t *testing.T, rec *httptest.ResponseRecorder, wantStatus int) string {
	t.Helper()
	if rec.Code != wantStatus {
		t.Errorf("status = %d, want %d", rec.Code, wantStatus)
	}
	wantHeader := http.Header{
		"Content-Type":  {"text/html; charset=utf-8"},
		"Cache-Control": {"no-store"},
	}
	if diff := cmp.Diff(wantHeader, rec.Header()); diff != "" {
		t.Errorf("headers mismatch (-want +got):\n%s", diff)
	}
	body := rec.Body.String()
	for _, want := range []string{
		`<html lang="en">`,
		`<main class="kw-card" aria-labelledby="kw-title">`,
		`<h1 id="kw-title">`,
		`<link rel="stylesheet" href="/static/keyward.css">`,
		`<span class="kw-wordmark">Keyward</span>`,
		`name="viewport"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	// The CSP forbids inline styles and scripts.
	for _, bad := range []string{"<script", "<style", " style=", "javascript:"} {
		if strings.Contains(strings.ToLower(body), bad) {
			t.Errorf("page contains %q:\n%s", bad, body)
		}
	}
	return body
}

func TestPagesRenderChooser(t *testing.T) {
	p := pagesTestNew(t)
	tests := []struct {
		name       string
		status     int
		data       chooserData
		wantStatus int
		want       []string
		notWant    []string
	}{
		{
			name:   "two upstreams, one unavailable",
			status: http.StatusOK,
			data: chooserData{
				ClientName: "Grafana",
				RequestID:  "req-123",
				Upstreams: []chooserUpstream{
					{ID: "google", Name: "Google", URL: "/authorize/upstream?id=google&state=abc"},
					{ID: "okta", Name: "Okta", Unavailable: true, Reason: "Okta is not responding."},
				},
			},
			wantStatus: http.StatusOK,
			want: []string{
				"<title>Sign in to Grafana · Keyward</title>",
				`Sign in to <span class="kw-client">Grafana</span>`,
				`<a class="kw-button" href="/authorize/upstream?id=google&amp;state=abc" data-upstream="google">Continue with Google</a>`,
				`<button class="kw-button" type="button" disabled aria-describedby="kw-upstream-1-reason" data-upstream="okta">Continue with Okta</button>`,
				`<p class="kw-reason" id="kw-upstream-1-reason">Okta is not responding.</p>`,
				"Reference: <code>req-123</code>",
			},
		},
		{
			name:   "hostile names are escaped",
			status: 0,
			data: chooserData{
				ClientName: "<script>alert(1)</script>",
				RequestID:  `"><script>x</script>`,
				Upstreams: []chooserUpstream{
					{ID: `x" onclick="y`, Name: "<script>alert(2)</script>", URL: "javascript:alert(3)"},
					{ID: "b", Name: "B", Unavailable: true, Reason: "<b>down</b>"},
				},
			},
			wantStatus: http.StatusOK,
			want: []string{
				"Sign in to &lt;script&gt;alert(1)&lt;/script&gt;",
				"Continue with &lt;script&gt;alert(2)&lt;/script&gt;",
				`href="#ZgotmplZ"`,
				`data-upstream="x&#34; onclick=&#34;y"`,
				"&lt;b&gt;down&lt;/b&gt;",
				"Reference: <code>&#34;&gt;&lt;script&gt;x&lt;/script&gt;</code>",
			},
			notWant: []string{`" onclick="`},
		},
		{
			name:       "no upstreams",
			status:     http.StatusServiceUnavailable,
			data:       chooserData{ClientName: "Wiki"},
			wantStatus: http.StatusServiceUnavailable,
			want:       []string{"No sign-in method is available right now."},
			notWant:    []string{"Continue with", "Reference:"},
		},
		{
			name:       "unavailable without reason",
			status:     http.StatusOK,
			data:       chooserData{Upstreams: []chooserUpstream{{ID: "a", Name: "A", URL: "/a", Unavailable: true}}},
			wantStatus: http.StatusOK,
			want:       []string{"<title>Sign in · Keyward</title>", "Currently unavailable.", " disabled "},
			notWant:    []string{`href="/a"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			p.renderChooser(rec, tt.status, tt.data)
			body := pagesCheckResponse(t, rec, tt.wantStatus)
			for _, want := range tt.want {
				if !strings.Contains(body, want) {
					t.Errorf("renderChooser(%+v) lacks %q:\n%s", tt.data, want, body)
				}
			}
			for _, bad := range tt.notWant {
				if strings.Contains(body, bad) {
					t.Errorf("renderChooser(%+v) contains %q", tt.data, bad)
				}
			}
		})
	}
}

func TestPagesRenderError(t *testing.T) {
	p := pagesTestNew(t)
	tests := []struct {
		name       string
		data       errorPageData
		wantStatus int
		want       []string
		notWant    []string
	}{
		{
			name: "full",
			data: errorPageData{
				Title:     "Sign-in failed",
				Message:   "Your account is not allowed to use this application.",
				RequestID: "req-42",
				RetryURL:  "/authorize?client_id=a&state=b",
				Status:    http.StatusForbidden,
			},
			wantStatus: http.StatusForbidden,
			want: []string{
				"<title>Sign-in failed · Keyward</title>",
				`<h1 id="kw-title">Sign-in failed</h1>`,
				"Your account is not allowed to use this application.",
				`<a class="kw-button kw-button-primary" href="/authorize?client_id=a&amp;state=b">Try again</a>`,
				`<p class="kw-ref">Reference: <code>req-42</code></p>`,
				"Error 403",
			},
		},
		{
			name:       "defaults",
			data:       errorPageData{},
			wantStatus: http.StatusInternalServerError,
			want:       []string{"<h1 id=\"kw-title\">Internal Server Error</h1>", "Something went wrong.", "Error 500"},
			notWant:    []string{"Try again", "Reference:"},
		},
		{
			name:       "non-error status becomes 500",
			data:       errorPageData{Title: "Oops", Status: http.StatusOK},
			wantStatus: http.StatusInternalServerError,
		},
		{
			name: "escaped",
			data: errorPageData{
				Title:    "<script>t</script>",
				Message:  "<img src=x onerror=alert(1)>",
				RetryURL: "javascript:alert(1)",
				Status:   http.StatusBadRequest,
			},
			wantStatus: http.StatusBadRequest,
			want:       []string{"&lt;script&gt;t&lt;/script&gt;", "&lt;img src=x onerror=alert(1)&gt;", `href="#ZgotmplZ"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			p.renderError(rec, tt.data)
			body := pagesCheckResponse(t, rec, tt.wantStatus)
			for _, want := range tt.want {
				if !strings.Contains(body, want) {
					t.Errorf("renderError(%+v) lacks %q:\n%s", tt.data, want, body)
				}
			}
			for _, bad := range tt.notWant {
				if strings.Contains(body, bad) {
					t.Errorf("renderError(%+v) contains %q", tt.data, bad)
				}
			}
		})
	}
}

func TestPagesRenderMessage(t *testing.T) {
	p := pagesTestNew(t)
	rec := httptest.NewRecorder()
	p.renderMessage(rec, 0, "Signed out", "You have been signed out of <all> applications.")
	body := pagesCheckResponse(t, rec, http.StatusOK)
	for _, want := range []string{
		"<title>Signed out · Keyward</title>",
		`<h1 id="kw-title">Signed out</h1>`,
		"You have been signed out of &lt;all&gt; applications.",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("renderMessage() lacks %q:\n%s", want, body)
		}
	}

	rec = httptest.NewRecorder()
	p.renderMessage(rec, http.StatusAccepted, "t", "m")
	pagesCheckResponse(t, rec, http.StatusAccepted)
}

func TestPagesTemplateErrorIsPlain500(t *testing.T) {
	// A template that fails halfway must not leak the half it produced.
	broken := template.Must(template.New("layout").Parse(`{{define "layout"}}<p>half a page{{.Missing}}</p>{{end}}`))
	rec := httptest.NewRecorder()
	pagesWrite(rec, http.StatusOK, broken, struct{ Other string }{})
	if rec.Code != http.StatusInternalServerError {
		t.Errorf("status = %d, want 500", rec.Code)
	}
	if got := rec.Header().Get("Content-Type"); !strings.HasPrefix(got, "text/plain") {
		t.Errorf("Content-Type = %q, want text/plain", got)
	}
	if got := rec.Header().Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}
	if strings.Contains(rec.Body.String(), "half a page") {
		t.Errorf("body = %q, want no partial page", rec.Body.String())
	}
}

func TestPagesCSSCoversTemplateClasses(t *testing.T) {
	// Every class the templates use has a rule in keyward.css.
	css, err := pagesStaticFS.ReadFile("static/keyward.css")
	if err != nil {
		t.Fatal(err)
	}
	entries, err := pagesTemplateFS.ReadDir("templates")
	if err != nil {
		t.Fatal(err)
	}
	classAttr := regexp.MustCompile(`class="([^"{]*)"`)
	var missing []string
	for _, e := range entries {
		src, err := pagesTemplateFS.ReadFile("templates/" + e.Name())
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range classAttr.FindAllStringSubmatch(string(src), -1) {
			for _, class := range strings.Fields(m[1]) {
				if !strings.Contains(string(css), "."+class) && !slices.Contains(missing, class) {
					missing = append(missing, class)
				}
			}
		}
	}
	if len(missing) > 0 {
		t.Errorf("classes without CSS rules: %v", missing)
	}
}

func TestPagesStaticHandler(t *testing.T) {
	h := staticHandler()
	tests := []struct {
		name       string
		method     string
		path       string
		header     http.Header
		wantStatus int
		wantType   string
		wantBody   string
	}{
		{name: "css", method: http.MethodGet, path: "/static/keyward.css", wantStatus: http.StatusOK, wantType: "text/css; charset=utf-8", wantBody: "prefers-color-scheme: dark"},
		{name: "svg", method: http.MethodGet, path: "/static/favicon.svg", wantStatus: http.StatusOK, wantType: "image/svg+xml", wantBody: "<svg"},
		{name: "head", method: http.MethodHead, path: "/static/keyward.css", wantStatus: http.StatusOK, wantType: "text/css; charset=utf-8"},
		{name: "stripped prefix", method: http.MethodGet, path: "/keyward.css", wantStatus: http.StatusOK, wantType: "text/css; charset=utf-8"},
		{name: "unknown", method: http.MethodGet, path: "/static/nope.css", wantStatus: http.StatusNotFound},
		{name: "no listing", method: http.MethodGet, path: "/static/", wantStatus: http.StatusNotFound},
		{name: "no templates", method: http.MethodGet, path: "/static/../templates/layout.html", wantStatus: http.StatusNotFound},
		{name: "post", method: http.MethodPost, path: "/static/keyward.css", wantStatus: http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
			if rec.Code != tt.wantStatus {
				t.Fatalf("%s %s: status = %d, want %d", tt.method, tt.path, rec.Code, tt.wantStatus)
			}
			if tt.wantStatus != http.StatusOK {
				return
			}
			if got := rec.Header().Get("Content-Type"); got != tt.wantType {
				t.Errorf("Content-Type = %q, want %q", got, tt.wantType)
			}
			if got := rec.Header().Get("Cache-Control"); got != "public, max-age=86400" {
				t.Errorf("Cache-Control = %q, want public, max-age=86400", got)
			}
			if !strings.Contains(rec.Body.String(), tt.wantBody) {
				t.Errorf("body lacks %q", tt.wantBody)
			}
		})
	}

	t.Run("etag revalidation", func(t *testing.T) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/static/keyward.css", nil))
		etag := rec.Header().Get("ETag")
		if etag == "" {
			t.Fatal("no ETag")
		}
		req := httptest.NewRequest(http.MethodGet, "/static/keyward.css", nil)
		req.Header.Set("If-None-Match", etag)
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusNotModified {
			t.Errorf("conditional GET status = %d, want 304", rec.Code)
		}
	})
}
