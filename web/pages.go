package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

// The broker's HTML pages: the provider chooser, the error page and plain
// messages such as "Signed out". Templates and assets are embedded; pages carry
// no inline style or script, so they work under the broker's CSP
// (style-src 'self') and without JavaScript.

//go:embed templates/*.html
var pagesTemplateFS embed.FS

//go:embed static
var pagesStaticFS embed.FS

// pages holds the parsed page templates. It is safe for concurrent use.
type pages struct {
	chooser   *template.Template
	errorPage *template.Template
	message   *template.Template
	confirm   *template.Template
	home      *template.Template
}

// chooserUpstream is one button on the provider chooser.
type chooserUpstream struct {
	ID   string
	Name string
	// URL is where the button goes (a GET link). Ignored when Unavailable.
	URL         string
	Unavailable bool
	// Reason says why an unavailable upstream cannot be used.
	Reason string
}

// chooserData is the provider chooser shown when several upstreams fit.
type chooserData struct {
	ClientName string
	Upstreams  []chooserUpstream
	// RequestID is set (shown as "Reference: …") only when no upstream
	// can be used: choosing is not an error.
	RequestID string
}

// errorPageData is an error shown to a person in the browser.
type errorPageData struct {
	Title   string
	Message string
	// RequestID is shown as "Reference: …" so support can find the log line.
	RequestID string
	// RetryURL, when set, adds a "Try again" link.
	RetryURL string
	// Contact, when set, is shown as "Contact: …", a link to ContactURL
	// when that is set (PagesConfig).
	Contact, ContactURL string
	// Status is the HTTP status code. Default: 500; values outside 400-599 become 500.
	Status int
}

// pagesMessageData is a plain titled message, e.g. "Signed out".
type pagesMessageData struct {
	Title   string
	Message string
}

// confirmPageData is a question answered by posting a form, e.g. "Sign
// out of Keyward?".
type confirmPageData struct {
	Title, Message string
	// Action is where the form posts; Fields its hidden fields, in order.
	Action string
	Fields []formField
	// Button labels the submit button; Note follows the form.
	Button, Note string
}

type formField struct{ Name, Value string }

// homeData is the landing page at the broker's root: public facts only.
type homeData struct {
	Issuer, DiscoveryURL, JWKSURL, Version string
}

// newPages parses the embedded templates and renders each once with sample
// data, so a broken template fails at startup instead of on a request.
func newPages() (*pages, error) {
	parse := func(name string) (*template.Template, error) {
		t, err := template.New("layout").ParseFS(pagesTemplateFS, "templates/layout.html", "templates/"+name)
		if err != nil {
			return nil, fmt.Errorf("parse page template %s: %w", name, err)
		}
		return t, nil
	}
	var p pages
	var err error
	if p.chooser, err = parse("chooser.html"); err != nil {
		return nil, err
	}
	if p.errorPage, err = parse("error.html"); err != nil {
		return nil, err
	}
	if p.message, err = parse("message.html"); err != nil {
		return nil, err
	}
	if p.confirm, err = parse("confirm.html"); err != nil {
		return nil, err
	}
	if p.home, err = parse("home.html"); err != nil {
		return nil, err
	}

	checks := []struct {
		t    *template.Template
		data any
	}{
		{p.chooser, chooserData{ClientName: "c", RequestID: "r", Upstreams: []chooserUpstream{
			{ID: "a", Name: "A", URL: "/a"}, {ID: "b", Name: "B", Unavailable: true, Reason: "r"},
		}}},
		{p.errorPage, errorPageData{Title: "t", Message: "m", RequestID: "r", RetryURL: "/", Status: 500}},
		{p.message, pagesMessageData{Title: "t", Message: "m"}},
		{p.confirm, confirmPageData{Title: "t", Message: "m", Action: "/a", Fields: []formField{{"n", "v"}}, Button: "b", Note: "n"}},
		{p.home, homeData{Issuer: "i", DiscoveryURL: "d", JWKSURL: "j", Version: "v"}},
	}
	for _, c := range checks {
		if err := c.t.ExecuteTemplate(io.Discard, "layout", c.data); err != nil {
			return nil, fmt.Errorf("check page template %s: %w", c.t.Name(), err)
		}
	}
	return &p, nil
}

// renderChooser writes the provider chooser with the given status (0 means 200).
func (p *pages) renderChooser(w http.ResponseWriter, status int, d chooserData) {
	if status == 0 {
		status = http.StatusOK
	}
	pagesWrite(w, status, p.chooser, d)
}

// renderError writes the error page with d.Status.
func (p *pages) renderError(w http.ResponseWriter, d errorPageData) {
	if d.Status < 400 || d.Status > 599 {
		d.Status = http.StatusInternalServerError
	}
	if d.Title == "" {
		d.Title = http.StatusText(d.Status)
	}
	if d.Message == "" {
		d.Message = "Something went wrong. Please try again later."
	}
	pagesWrite(w, d.Status, p.errorPage, d)
}

// renderMessage writes a titled message such as "Signed out" (status 0 means 200).
func (p *pages) renderMessage(w http.ResponseWriter, status int, title, message string) {
	if status == 0 {
		status = http.StatusOK
	}
	pagesWrite(w, status, p.message, pagesMessageData{Title: title, Message: message})
}

// renderConfirm writes a confirmation form (200).
func (p *pages) renderConfirm(w http.ResponseWriter, d confirmPageData) {
	pagesWrite(w, http.StatusOK, p.confirm, d)
}

// renderHome writes the landing page (200).
func (p *pages) renderHome(w http.ResponseWriter, d homeData) {
	pagesWrite(w, http.StatusOK, p.home, d)
}

// pagesWrite renders into a buffer first, so a template error answers a plain
// 500 instead of half a page. Security headers are the middleware's job.
func pagesWrite(w http.ResponseWriter, status int, t *template.Template, data any) {
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", data); err != nil {
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w) // the client went away; nothing left to do
}

// pagesStaticTypes fixes the content types of embedded assets, independent of
// the host's mime.types.
var pagesStaticTypes = map[string]string{
	".css":   "text/css; charset=utf-8",
	".svg":   "image/svg+xml",
	".png":   "image/png",
	".ico":   "image/x-icon",
	".woff2": "font/woff2",
	".txt":   "text/plain; charset=utf-8",
}

type pagesAsset struct {
	body  []byte
	ctype string
	etag  string
}

// staticHandler serves the embedded assets under /static/ (mount it as
// "GET /static/"; it also works behind http.StripPrefix("/static", …)).
// Responses carry Cache-Control: public, max-age=86400 and a content ETag.
func staticHandler() http.Handler {
	assets := map[string]pagesAsset{}
	walkErr := fs.WalkDir(pagesStaticFS, "static", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := pagesStaticFS.ReadFile(name)
		if err != nil {
			return err
		}
		ctype, ok := pagesStaticTypes[path.Ext(name)]
		if !ok {
			ctype = "application/octet-stream"
		}
		sum := sha256.Sum256(body)
		assets[strings.TrimPrefix(name, "static/")] = pagesAsset{
			body:  body,
			ctype: ctype,
			etag:  `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`,
		}
		return nil
	})

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
			return
		}
		if walkErr != nil { // the embedded tree is fixed at build time, so this is a build defect
			http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
			return
		}
		name, ok := strings.CutPrefix(r.URL.Path, "/static/")
		if !ok {
			name = strings.TrimPrefix(r.URL.Path, "/")
		}
		a, ok := assets[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", a.ctype)
		h.Set("Cache-Control", "public, max-age=86400")
		h.Set("ETag", a.etag)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
	})
}
