package demoapp

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Config configures the demo application. It is a relying party of Keyward.
type Config struct {
	// Issuer is Keyward's issuer URL; discovery is fetched from it lazily.
	Issuer string
	// ClientID is the app's client at Keyward.
	ClientID string
	// ClientSecret is empty for a public client (PKCE alone).
	ClientSecret string
	// RedirectURL is the app's absolute callback URL, e.g.
	// http://127.0.0.1:5557/callback. The app serves the callback at its path.
	RedirectURL string
	// Scopes requested at sign-in; "openid" is added when missing.
	// Default: openid, profile, email, offline_access.
	Scopes []string
	// HTTPClient makes the discovery, JWKS and token requests.
	// Default: a client with a 10s timeout.
	HTTPClient *http.Client
	// Logger receives one line per sign-in, refresh and failure; never tokens.
	// Default: discard.
	Logger *slog.Logger
	// Title names the app on its pages. Default: "Keyward demo app".
	Title string
	// GatewayHeaders shows the X-Auth-Request-* headers a gateway in front
	// (keyward verify) sent with the request. Set it only behind a gateway
	// that replaces a client's copies of those headers.
	GatewayHeaders bool
}

// App is the demo application. Create it with New and serve Handler.
type App struct {
	cfg          Config
	callbackPath string
	log          *slog.Logger
	now          func() time.Time
	tmpl         *template.Template
	sessions     *sessionStore

	discMu sync.Mutex
	disc   *discovered // nil until discovery has succeeded

	// refreshMu serialises refreshes so a double-clicked "Refresh tokens"
	// never presents a rotated (already used) refresh token.
	refreshMu sync.Mutex
}

// discovered is what the app learns from the issuer's discovery document.
type discovered struct {
	oauth2   oauth2.Config
	verifier *oidc.IDTokenVerifier
}

// sessionLifetime bounds a local session, whatever the tokens say.
const sessionLifetime = 8 * time.Hour

// New checks cfg and builds the app. It does no network I/O: discovery
// happens on the first sign-in and is retried until it succeeds, so the app
// may start before Keyward.
func New(cfg Config) (*App, error) {
	var errs []error
	if cfg.Issuer == "" {
		errs = append(errs, errors.New("issuer is required"))
	} else if u, err := url.Parse(cfg.Issuer); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		errs = append(errs, fmt.Errorf("issuer %q is not an absolute http(s) URL", cfg.Issuer))
	}
	if cfg.ClientID == "" {
		errs = append(errs, errors.New("client id is required"))
	}
	var callbackPath string
	if cfg.RedirectURL == "" {
		errs = append(errs, errors.New("redirect url is required"))
	} else if u, err := url.Parse(cfg.RedirectURL); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		errs = append(errs, fmt.Errorf("redirect url %q is not an absolute http(s) URL", cfg.RedirectURL))
	} else {
		callbackPath = u.Path
		switch {
		case callbackPath == "" || callbackPath == "/":
			errs = append(errs, fmt.Errorf("redirect url %q needs a path such as /callback", cfg.RedirectURL))
		case slices.Contains([]string{"/login", "/refresh", "/logout"}, callbackPath) || strings.HasPrefix(callbackPath, "/static/"):
			errs = append(errs, fmt.Errorf("redirect url path %q clashes with the app's own routes", callbackPath))
		case strings.ContainsAny(callbackPath, "{} \t"):
			errs = append(errs, fmt.Errorf("redirect url path %q has characters the app cannot route", callbackPath))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("demoapp config: %w", err)
	}

	if len(cfg.Scopes) == 0 {
		cfg.Scopes = []string{oidc.ScopeOpenID, "profile", "email", oidc.ScopeOfflineAccess}
	} else if !slices.Contains(cfg.Scopes, oidc.ScopeOpenID) {
		cfg.Scopes = append([]string{oidc.ScopeOpenID}, cfg.Scopes...)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Title == "" {
		cfg.Title = "Keyward demo app"
	}
	tmpl, err := parseTemplates()
	if err != nil {
		return nil, err
	}
	return &App{
		cfg:          cfg,
		callbackPath: callbackPath,
		log:          cfg.Logger.With("component", "demoapp"),
		now:          time.Now,
		tmpl:         tmpl,
		sessions:     &sessionStore{m: map[string]session{}},
	}, nil
}

// Handler serves the app:
//
//	GET  /           signed out: a sign-in button; signed in: identity and decoded tokens
//	GET  /login      starts the code flow (PKCE S256, state, nonce)
//	GET  /callback   finishes it (the path of Config.RedirectURL)
//	POST /refresh    refresh grant (CSRF-protected)
//	POST /logout     ends the local session (CSRF-protected)
//	GET  /static/demoapp.css
func (a *App) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.home)
	mux.HandleFunc("GET /login", a.login)
	mux.HandleFunc("GET "+a.callbackPath, a.callback)
	mux.HandleFunc("POST /refresh", a.refresh)
	mux.HandleFunc("POST /logout", a.logout)
	mux.HandleFunc("GET /static/demoapp.css", serveCSS)
	return securityHeaders(mux)
}

// securityHeaders sets the headers every response of the app carries. The
// pages use no inline style or script, so the policy can be this strict.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer") // the callback URL holds the code
		next.ServeHTTP(w, r)
	})
}

// discover returns the issuer's endpoints and an ID token verifier, fetching
// discovery on first use. A failure is not cached, so the next call retries.
func (a *App) discover(ctx context.Context) (*discovered, error) {
	a.discMu.Lock()
	defer a.discMu.Unlock()
	if a.disc != nil {
		return a.disc, nil
	}
	ctx = oidc.ClientContext(ctx, a.cfg.HTTPClient)
	p, err := oidc.NewProvider(ctx, a.cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("discover issuer %s: %w", a.cfg.Issuer, err)
	}
	a.disc = &discovered{
		oauth2: oauth2.Config{
			ClientID:     a.cfg.ClientID,
			ClientSecret: a.cfg.ClientSecret,
			Endpoint:     p.Endpoint(),
			RedirectURL:  a.cfg.RedirectURL,
			Scopes:       a.cfg.Scopes,
		},
		// The verifier keeps the HTTP client, not the cancellation, of ctx.
		verifier: p.VerifierContext(ctx, &oidc.Config{ClientID: a.cfg.ClientID, Now: a.now}),
	}
	a.log.InfoContext(ctx, "discovered issuer", "issuer", a.cfg.Issuer)
	return a.disc, nil
}

// clientContext makes x/oauth2 use the configured HTTP client.
func (a *App) clientContext(ctx context.Context) context.Context {
	return oidc.ClientContext(ctx, a.cfg.HTTPClient)
}
