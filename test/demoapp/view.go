package demoapp

import (
	"bytes"
	"embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static/demoapp.css
var demoCSS []byte

func parseTemplates() (*template.Template, error) {
	t, err := template.New("demoapp").ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("parse demoapp templates: %w", err)
	}
	return t, nil
}

func serveCSS(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(demoCSS))
}

// pageView is what the layout needs.
type pageView struct {
	AppTitle  string
	PageTitle string
	Wide      bool
}

type homeView struct {
	pageView
	Issuer, ClientID, Scopes string
	SignedOutNotice          bool

	SignedIn                bool
	Name, Email, Subject    string
	Groups                  []string
	SignedInAt, RefreshedAt string
	Refreshes               int
	GrantedScope, TokenType string
	HasRefreshToken         bool
	IDToken, AccessToken    tokenView
	CSRF                    string
	// Gateway: the identity headers the gateway sent (Config.GatewayHeaders).
	Gateway []gatewayHeader
}

type gatewayHeader struct{ Name, Value string }

// gatewayHeaders lists the X-Auth-Request-* headers of r, when shown.
func (a *App) gatewayHeaders(r *http.Request) []gatewayHeader {
	if !a.cfg.GatewayHeaders {
		return nil
	}
	var out []gatewayHeader
	for _, name := range []string{
		"X-Auth-Request-User", "X-Auth-Request-Preferred-Username", "X-Auth-Request-Email", "X-Auth-Request-Groups", "X-Auth-Request-Subject",
	} {
		if v := r.Header.Get(name); v != "" {
			out = append(out, gatewayHeader{name, v})
		}
	}
	return out
}

type errorView struct {
	pageView
	Status           int
	Title, Message   string
	ErrorCode        string // OAuth "error"
	ErrorDescription string // OAuth "error_description"
	Detail           string // technical detail, e.g. a Go error
	RetryURL         string
	RetryLabel       string // Default: "Try again"
	BackURL          string // Default: "/"
}

// tokenView is one token, decoded for display.
type tokenView struct {
	ID, Label      string
	Present, IsJWT bool
	Alg, Typ, Kid  string
	Header, Claims string // indented JSON
	Raw            string
	IssuedAt       string
	ExpiresAt      string
	ExpiresIn      string
	Expired        bool
	Note           string
	claims         map[string]any
}

func (a *App) page(title string, wide bool) pageView {
	return pageView{AppTitle: a.cfg.Title, PageTitle: title, Wide: wide}
}

// render executes into a buffer first, so a template error is a plain 500
// rather than half a page.
func (a *App) render(w http.ResponseWriter, status int, name string, data any) {
	var buf bytes.Buffer
	if err := a.tmpl.ExecuteTemplate(&buf, name, data); err != nil {
		a.log.Error("render page", "page", name, "err", err)
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store") // the pages show tokens
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

func (a *App) renderError(w http.ResponseWriter, v errorView) {
	v.pageView = a.page(v.Title, false)
	if v.Status == 0 {
		v.Status = http.StatusInternalServerError
	}
	if v.RetryURL != "" && v.RetryLabel == "" {
		v.RetryLabel = "Try again"
	}
	if v.BackURL == "" {
		v.BackURL = "/"
	}
	a.render(w, v.Status, "error", v)
}

// home shows the sign-in button, or who is signed in and their tokens.
func (a *App) home(w http.ResponseWriter, r *http.Request) {
	v := homeView{
		pageView: a.page("", false),
		Issuer:   a.cfg.Issuer,
		ClientID: a.cfg.ClientID,
		Scopes:   strings.Join(a.cfg.Scopes, " "),
		Gateway:  a.gatewayHeaders(r),
	}
	sess, ok := a.sessionFromRequest(r)
	if !ok {
		if _, err := r.Cookie(sessionCookieName); err == nil {
			clearCookie(w, sessionCookieName) // stale, e.g. after a restart
		}
		v.SignedOutNotice = r.URL.Query().Get("signed_out") == "1"
		a.render(w, http.StatusOK, "home", v)
		return
	}

	now := a.now()
	v.pageView = a.page("Signed in", true)
	v.SignedIn = true
	v.CSRF = sess.csrf
	v.Subject = sess.subject
	v.SignedInAt = formatTime(sess.signedIn)
	if sess.refreshes > 0 {
		v.Refreshes = sess.refreshes
		v.RefreshedAt = formatTime(sess.refreshed)
	}
	v.HasRefreshToken = sess.token.RefreshToken != ""
	v.TokenType = sess.token.TokenType
	v.GrantedScope, _ = sess.token.Extra("scope").(string)

	v.IDToken = decodeToken("id", "ID token", sess.idToken, time.Time{}, now)
	v.IDToken.Note = "Verified by this app at sign-in: signature, issuer, audience, expiry and nonce."
	v.AccessToken = decodeToken("at", "Access token", sess.token.AccessToken, sess.token.Expiry, now)
	v.AccessToken.Note = "Decoded for display only. An app treats its access token as opaque; the APIs it calls verify it (for example with keyward verify)."

	for _, claims := range []map[string]any{v.IDToken.claims, v.AccessToken.claims} {
		if v.Name == "" {
			v.Name = stringClaim(claims, "name")
		}
		if v.Name == "" {
			v.Name = stringClaim(claims, "preferred_username")
		}
		if v.Email == "" {
			v.Email = stringClaim(claims, "email")
		}
		if v.Groups == nil {
			v.Groups = stringsClaim(claims, "groups")
		}
	}
	a.render(w, http.StatusOK, "home", v)
}

// decodeToken decodes a JWT's header and payload for display. It verifies
// nothing. fallbackExp (the token response's expires_in) is used when the
// token has no exp claim.
func decodeToken(id, label, raw string, fallbackExp, now time.Time) tokenView {
	v := tokenView{ID: id, Label: label, Present: raw != "", Raw: raw}
	exp := fallbackExp
	if decodeJWT(raw, &v) {
		if t, ok := numericDate(v.claims["iat"]); ok {
			v.IssuedAt = formatTime(t)
		}
		if t, ok := numericDate(v.claims["exp"]); ok {
			exp = t
		}
	}
	if !exp.IsZero() {
		v.ExpiresAt = formatTime(exp)
		v.Expired = !now.Before(exp)
		v.ExpiresIn = relative(exp, now)
	}
	return v
}

// decodeJWT fills v's JWT fields and reports whether raw is a JWS-compact JWT.
func decodeJWT(raw string, v *tokenView) bool {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return false
	}
	header, err := decodeSegment(parts[0])
	if err != nil {
		return false
	}
	payload, err := decodeSegment(parts[1])
	if err != nil {
		return false
	}
	var h map[string]any
	if err := json.Unmarshal(header, &h); err != nil {
		return false
	}
	var claims map[string]any
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&claims); err != nil {
		return false
	}
	v.IsJWT = true
	v.claims = claims
	v.Header = indentJSON(header)
	v.Claims = indentJSON(payload)
	v.Alg, _ = h["alg"].(string)
	v.Typ, _ = h["typ"].(string)
	v.Kid, _ = h["kid"].(string)
	return true
}

func decodeSegment(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

func indentJSON(b []byte) string {
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		return string(b)
	}
	return buf.String()
}

// numericDate reads a JWT NumericDate (RFC 7519 §2).
func numericDate(v any) (time.Time, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0), true
}

func stringClaim(claims map[string]any, name string) string {
	s, _ := claims[name].(string)
	return s
}

func stringsClaim(claims map[string]any, name string) []string {
	switch v := claims[name].(type) {
	case []any:
		var out []string
		for _, g := range v {
			if s, ok := g.(string); ok {
				out = append(out, s)
			}
		}
		return out
	case string:
		return []string{v}
	}
	return nil
}

func formatTime(t time.Time) string {
	return t.Local().Format("2006-01-02 15:04:05 MST")
}

func relative(t, now time.Time) string {
	d := t.Sub(now).Round(time.Second)
	if d <= 0 {
		return "expired " + (-d).String() + " ago"
	}
	return "valid for " + d.String()
}
