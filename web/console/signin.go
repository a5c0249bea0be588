package console

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// signin is the console as an OIDC client of its own broker: code flow
// with PKCE S256 and a nonce, the ID token verified by go-oidc against the
// broker's discovery and keys, as any client does.
type signin struct {
	cfg    Config
	issuer string
	client *http.Client

	mu       sync.Mutex
	provider *oidc.Provider // discovered at the first sign-in
}

func newSignin(cfg Config, issuer string, transport http.RoundTripper) *signin {
	return &signin{cfg: cfg, issuer: issuer, client: &http.Client{Transport: transport, Timeout: 10 * time.Second}}
}

// ctx carries the signin's HTTP client, for x/oauth2 and go-oidc; it
// outlives the request so the provider's key set can refetch later.
func (s *signin) ctx(ctx context.Context) context.Context {
	return oidc.ClientContext(context.WithoutCancel(ctx), s.client)
}

func (s *signin) discover(ctx context.Context) (*oidc.Provider, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.provider != nil {
		return s.provider, nil
	}
	p, err := oidc.NewProvider(s.ctx(ctx), s.issuer)
	if err != nil {
		return nil, fmt.Errorf("discover the broker: %w", err)
	}
	s.provider = p
	return p, nil
}

func (s *signin) oauth2(p *oidc.Provider) oauth2.Config {
	return oauth2.Config{
		ClientID: s.cfg.ClientID, Endpoint: p.Endpoint(),
		RedirectURL: s.issuer + CallbackPath, Scopes: []string{oidc.ScopeOpenID, "email", "profile", "groups"},
	}
}

// loginState is the sign-in in flight, in the login cookie.
type loginState struct {
	State    string `json:"state"`
	Nonce    string `json:"nonce"`
	Verifier string `json:"verifier"`
}

const loginTTL = 10 * time.Minute

func random() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand never fails (Go 1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}

// login starts a staff sign-in at the broker's /authorize.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	p, err := c.signin.discover(r.Context())
	if err != nil {
		c.fail(w, r, err)
		return
	}
	st := loginState{State: random(), Nonce: random(), Verifier: oauth2.GenerateVerifier()}
	c.jar.set(w, c.jar.loginName, st, loginTTL)
	oc := c.signin.oauth2(p)
	http.Redirect(w, r, oc.AuthCodeURL(st.State, oauth2.S256ChallengeOption(st.Verifier), oidc.Nonce(st.Nonce)), http.StatusSeeOther)
}

// idClaims are the ID token claims the console reads.
type idClaims struct {
	Email  string   `json:"email"`
	Name   string   `json:"name"`
	Groups []string `json:"groups"`
}

// callback finishes the sign-in: state, code exchange with the PKCE
// verifier, ID token (signature, issuer, audience, expiry, nonce), then
// the role from the groups. No configured group: refused.
func (c *Console) callback(w http.ResponseWriter, r *http.Request) {
	var st loginState
	if !c.jar.get(r, c.jar.loginName, &st) || st.State == "" || r.URL.Query().Get("state") != st.State {
		c.message(w, r, http.StatusBadRequest, "Sign-in expired", "This sign-in was not started here or took too long. Start again.", &link{Href: "/console/login", Text: "Sign in again"})
		return
	}
	c.jar.clear(w, c.jar.loginName)
	if e := r.URL.Query().Get("error"); e != "" {
		c.message(w, r, http.StatusForbidden, "Sign-in refused", "Keyward refused the sign-in ("+e+").", &link{Href: "/console/login", Text: "Try again"})
		return
	}
	p, err := c.signin.discover(r.Context())
	if err != nil {
		c.fail(w, r, err)
		return
	}
	oc := c.signin.oauth2(p)
	ctx := c.signin.ctx(r.Context())
	tok, err := oc.Exchange(ctx, r.URL.Query().Get("code"), oauth2.VerifierOption(st.Verifier))
	if err != nil {
		c.fail(w, r, fmt.Errorf("exchange the console's code: %w", err))
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := p.Verifier(&oidc.Config{ClientID: c.cfg.ClientID, Now: c.now}).Verify(ctx, raw)
	if err != nil || idt.Nonce != st.Nonce {
		c.fail(w, r, fmt.Errorf("verify the console's ID token: %w (or a nonce mismatch)", err))
		return
	}
	var claims idClaims
	if err := idt.Claims(&claims); err != nil {
		c.fail(w, r, fmt.Errorf("read the console's ID token claims: %w", err))
		return
	}
	role := c.role(claims.Groups)
	if role == "" {
		c.log.InfoContext(r.Context(), "console sign-in refused: no staff group", "event", "console_refused", "sub", idt.Subject)
		c.message(w, r, http.StatusForbidden, "Not a Keyward administrator",
			"You signed in, but you are not a member of a group that may use the Keyward console. Ask your identity team to add you to one of: "+groupList(c.cfg)+".", nil)
		return
	}
	now := c.now()
	sess := staffSession{SID: random(), Sub: idt.Subject, Email: claims.Email, Name: claims.Name, Role: role, IAT: now.UnixMilli(), Seen: now.UnixMilli()}
	c.jar.setSession(w, sess, c.cfg)
	c.log.InfoContext(r.Context(), "console sign-in", "event", "console_signed_in", "sub", idt.Subject, "role", role)
	http.Redirect(w, r, "/console/", http.StatusSeeOther)
}

// role is admin for a member of an admin group, else helpdesk for a member
// of a help-desk group, else "".
func (c *Console) role(groups []string) string {
	for _, g := range groups {
		if slices.Contains(c.cfg.AdminGroups, g) {
			return roleAdmin
		}
	}
	for _, g := range groups {
		if slices.Contains(c.cfg.HelpdeskGroups, g) {
			return roleHelpdesk
		}
	}
	return ""
}

func groupList(cfg Config) string {
	var b bytes.Buffer
	for i, g := range slices.Concat(cfg.AdminGroups, cfg.HelpdeskGroups) {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(g)
	}
	return b.String()
}

// logout ends the staff session (the cookie; Keyward's own session is the
// broker's business).
func (c *Console) logout(w http.ResponseWriter, r *http.Request, _ staffSession) {
	c.jar.clear(w, c.jar.sessionName)
	c.message(w, r, http.StatusOK, "Signed out", "You have left the Keyward console.", &link{Href: "/console/login", Text: "Sign in again"})
}

// Loopback is an http.RoundTripper that serves the console's requests to
// its own broker with the broker's handler, in process: the sign-in works
// whether or not the broker can reach its public URL. Bind it once the
// handler exists.
type Loopback struct {
	mu sync.RWMutex
	h  http.Handler
}

// Bind sets the handler that serves the requests.
func (l *Loopback) Bind(h http.Handler) {
	l.mu.Lock()
	l.h = h
	l.mu.Unlock()
}

// RoundTrip serves req with the bound handler.
func (l *Loopback) RoundTrip(req *http.Request) (*http.Response, error) {
	l.mu.RLock()
	h := l.h
	l.mu.RUnlock()
	if h == nil {
		return nil, fmt.Errorf("console loopback: no handler bound")
	}
	in := req.Clone(req.Context())
	in.RemoteAddr = "127.0.0.1:0"
	in.RequestURI = req.URL.RequestURI()
	if in.Body == nil {
		in.Body = http.NoBody
	}
	rec := &recorder{header: http.Header{}, status: http.StatusOK}
	h.ServeHTTP(rec, in)
	return &http.Response{
		StatusCode: rec.status, Status: fmt.Sprintf("%d %s", rec.status, http.StatusText(rec.status)),
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: rec.header, Body: io.NopCloser(&rec.body), ContentLength: int64(rec.body.Len()), Request: req,
	}, nil
}

type recorder struct {
	header      http.Header
	body        bytes.Buffer
	status      int
	wroteHeader bool
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = code, true
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(b)
}
