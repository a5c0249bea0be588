package verify

import (
	"bytes"
	_ "embed"
	"html/template"
	"net/http"
	"strconv"
)

// page.html is browser mode's one page (sign-in errors, signed out): the
// look of web/templates, with its CSS inline so this package stays a leaf
// and the page needs nothing else from the gateway's host.
//
//go:embed page.html
var pageHTML string

var pageTemplate = template.Must(template.New("page").Parse(pageHTML))

// pageData fills page.html. Link, when set, is a button labelled LinkText.
type pageData struct {
	Status   int
	Error    bool
	Title    string
	Message  string
	Link     string
	LinkText string
}

// writePage answers with page.html; a status of 400 or more shows an error.
func writePage(w http.ResponseWriter, r *http.Request, status int, d pageData) {
	d.Status = status
	d.Error = status >= http.StatusBadRequest
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, d); err != nil {
		http.Error(w, d.Title+": "+d.Message, status)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
}

// signInFailed answers a failed sign-in with a page that offers a new one.
func signInFailed(w http.ResponseWriter, r *http.Request, status int, reason string) {
	writePage(w, r, status, pageData{
		Title: "Sign-in failed", Message: reason,
		Link: "/oauth2/start?rd=%2F", LinkText: "Sign in again",
	})
}
