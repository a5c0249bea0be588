package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/keyward/keyward/broker"
)

// jwks serves the key set document.
type jwks interface {
	JWKS() (body []byte, maxAge time.Duration)
}

// Config configures the broker's HTTP handler.
type Config struct {
	Broker *broker.Broker
	// Keys serves /keys; when it also has Keys() and NextRotation() (as
	// *keys.Manager does), the key age and next rotation are exported.
	Keys jwks
	// SessionSecret seals cookies (at least 32 bytes; shared by replicas).
	SessionSecret []byte
	// Secure: the issuer is https (or loopback, where browsers treat http
	// as secure). When false, cookies lose the __Host- prefix and the
	// Secure attribute — only for tests over plain http to a non-loopback name.
	InsecureCookies bool
	// TrustedProxies are the reverse proxies whose X-Forwarded-For tells
	// the browser's address (clientip.go), which the login-attempt rate
	// limit goes by. Default: none; the TCP peer is the client.
	TrustedProxies []netip.Prefix
	// Ready reports whether the server can take traffic (nil: always).
	Ready func(ctx context.Context) error
	// Registerer receives the HTTP, key, revocation-feed and build metrics
	// (nil: none).
	Registerer prometheus.Registerer
	// Concurrency bounds the requests in flight per endpoint class
	// (overload.go). Zero fields take the defaults.
	Concurrency Concurrency
	// TracerProvider, when set, receives a server span per request
	// (tracing.go); nil: no spans, no cost.
	TracerProvider trace.TracerProvider
	// Pages is keyward.yaml's pages section (pages_config.go).
	Pages PagesConfig
	// SCIM serves SCIM 2.0 provisioning under /scim/v2/ (web/scim; nil:
	// no upstream has provisioning, and the path is not found).
	SCIM http.Handler
	// Signals receives Shared Signals SETs at /ssf/{upstream}/events
	// (*broker.Signals; nil: none configured).
	Signals SignalsReceiver
	// Console, when set, serves every path under /console (web/console).
	Console http.Handler
	// Version is shown on the landing page at / (default: "unknown").
	Version string
	Logger  *slog.Logger
	Now     func() time.Time
}

// Server is the broker's HTTP handler.
type Server struct {
	cfg     Config
	b       *broker.Broker
	log     *slog.Logger
	pages   *pages
	cookies cookieJar
	metrics *metrics
	limits  limiters
	handler http.Handler
}

// New builds the handler.
func New(cfg Config) (*Server, error) {
	if cfg.Broker == nil || cfg.Keys == nil {
		return nil, errors.New("web: broker and keys are required")
	}
	if len(cfg.SessionSecret) < 32 {
		return nil, errors.New("web: the session secret must have at least 32 bytes")
	}
	if err := cfg.Pages.Validate(); err != nil {
		return nil, fmt.Errorf("web: pages: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	p, err := newPages()
	if err != nil {
		return nil, fmt.Errorf("web: parse templates: %w", err)
	}
	s := &Server{
		cfg:     cfg,
		b:       cfg.Broker,
		log:     cfg.Logger.With("component", "web"),
		pages:   p,
		cookies: newCookieJar(cfg.SessionSecret, !cfg.InsecureCookies),
		limits:  newLimiters(cfg.Concurrency),
	}
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(shedCollector{classToken: s.limits.token, classBrowser: s.limits.browser},
			tokenLimitCollector{b: cfg.Broker})
	}
	ks, _ := cfg.Keys.(keyStatus) // *keys.Manager: the key gauges
	s.metrics = newMetrics(cfg.Registerer, cfg.Broker, ks, cfg.Version, cfg.Now)
	s.handler = s.routes()
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }
