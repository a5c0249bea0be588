package main

// This file is the demo's gateway: what nginx with auth_request does in
// docs/gateways/nginx.md, in-process, so the demo needs no nginx.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/keyward/keyward/web/verify"
)

// Demo names: the verifier's client at the broker and the API audience every
// demo access token carries.
const (
	demoGatewayClient = "demo-gateway"
	demoAPIAudience   = "demo-api"
	// demoRevocationInterval: how often the demo gateway reads Keyward's
	// revocation feed; short, so deprovisioning shows at once.
	demoRevocationInterval = time.Second
)

// demoRules: the API needs a bearer token for demo-api; every other path is
// the app, signed in at the edge (browser mode).
var demoRules = verify.Rules{
	{Path: "/api/", Audience: demoAPIAudience},
	{Path: "/", Browser: true},
}

var identityHeaderNames = []string{
	"X-Auth-Request-User", "X-Auth-Request-Preferred-Username", "X-Auth-Request-Email", "X-Auth-Request-Groups", "X-Auth-Request-Subject",
}

// demoGateway asks the verify handler about each request, as nginx's
// auth_request does, and proxies allowed requests to the app with the
// X-Auth-Request-* headers. It serves /api/whoami itself.
type demoGateway struct {
	verifier *verify.Verifier // Run reads the revocation feed
	verify   http.Handler
	app      *httputil.ReverseProxy
}

func newDemoGateway(ctx context.Context, brokerURL, appURL, internalAppURL string, clientSecret string, cookieKey []byte) (*demoGateway, error) {
	v, err := verify.New(ctx, verify.Config{Issuer: brokerURL, Audiences: []string{demoAPIAudience},
		Revocation: &verify.RevocationConfig{Interval: demoRevocationInterval, ClientID: demoGatewayClient, ClientSecret: clientSecret}})
	if err != nil {
		return nil, err
	}
	app, err := url.Parse(appURL)
	if err != nil {
		return nil, fmt.Errorf("demo app address: %w", err)
	}
	b, err := verify.NewBrowser(v, verify.BrowserConfig{
		ClientID: demoGatewayClient, ClientSecret: clientSecret, CookieSecret: cookieKey,
		RedirectURL: appURL + "/oauth2/callback", AllowedRedirectDomains: []string{app.Host}, // host and port
	})
	if err != nil {
		return nil, err
	}
	target, err := url.Parse(internalAppURL)
	if err != nil {
		return nil, fmt.Errorf("demo app address: %w", err)
	}
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target)
		r.Out.Host = r.In.Host // the app's redirect URL names the gateway's host
	}}
	return &demoGateway{verifier: v, verify: verify.NewHandler(v, demoRules, verify.HandlerOptions{Headers: verify.HeadersNginx, Browser: b}), app: proxy}, nil
}

func (g *demoGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// /oauth2/ goes to the verifier, as nginx sends it to keyward verify.
	// /oauth2/auth, the forward-auth check that nginx keeps internal, is
	// open here so that it can be tried with curl: it answers as keyward
	// verify does (200 with the X-Auth-Request-* headers, 401, 403) for
	// the X-Original-URI the caller names.
	if strings.HasPrefix(r.URL.Path, "/oauth2/") {
		g.verify.ServeHTTP(w, r)
		return
	}
	auth := g.check(r)
	for _, c := range auth.header.Values("Set-Cookie") { // a renewed session
		w.Header().Add("Set-Cookie", c)
	}
	switch {
	case auth.status == http.StatusUnauthorized && !strings.HasPrefix(r.URL.Path, "/api/"):
		// nginx: error_page 401 = /oauth2/start?rd=$request_uri
		http.Redirect(w, r, "/oauth2/start?rd="+url.QueryEscape(r.URL.RequestURI()), http.StatusFound)
		return
	case auth.status/100 != 2:
		if c := auth.header.Get("WWW-Authenticate"); c != "" {
			w.Header().Set("WWW-Authenticate", c)
		}
		http.Error(w, http.StatusText(auth.status), auth.status)
		return
	}
	out := r.Clone(r.Context())
	for _, h := range identityHeaderNames { // never the client's
		out.Header.Del(h)
		if v := auth.header.Get(h); v != "" {
			out.Header.Set(h, v)
		}
	}
	if r.Method == http.MethodGet && r.URL.Path == "/api/whoami" {
		whoami(w, out)
		return
	}
	g.app.ServeHTTP(w, out)
}

// authAnswer is the verify handler's answer to a check.
type authAnswer struct {
	status int
	header http.Header
}

func (a *authAnswer) Header() http.Header         { return a.header }
func (a *authAnswer) Write(b []byte) (int, error) { return len(b), nil }
func (a *authAnswer) WriteHeader(status int) {
	if a.status == 0 {
		a.status = status
	}
}

// check runs the auth_request subrequest: the client's headers, plus the
// original URI, method and host the gateway vouches for.
func (g *demoGateway) check(r *http.Request) *authAnswer {
	sub, err := http.NewRequestWithContext(r.Context(), http.MethodGet, "/oauth2/auth", nil)
	if err != nil {
		return &authAnswer{status: http.StatusInternalServerError, header: http.Header{}}
	}
	sub.Header = r.Header.Clone()
	sub.Header.Set("X-Original-URI", r.URL.RequestURI())
	sub.Header.Set("X-Original-Method", r.Method)
	sub.Header.Set("X-Forwarded-Host", r.Host)
	sub.Host = r.Host
	a := &authAnswer{header: http.Header{}}
	g.verify.ServeHTTP(a, sub)
	if a.status == 0 {
		a.status = http.StatusOK
	}
	return a
}

// whoami is the demo API: who the bearer token says the caller is.
func whoami(w http.ResponseWriter, r *http.Request) {
	body := map[string]string{}
	for _, h := range identityHeaderNames {
		body[strings.ToLower(strings.TrimPrefix(h, "X-Auth-Request-"))] = r.Header.Get(h)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(body)
}
