package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/federation"
	"github.com/keyward/keyward/keys"
	"github.com/keyward/keyward/store"
	"github.com/keyward/keyward/store/bolt"
	"github.com/keyward/keyward/store/postgres"
	"github.com/keyward/keyward/web"
	"github.com/keyward/keyward/web/console"
	"github.com/keyward/keyward/web/httpserver"
	"github.com/keyward/keyward/web/loopback"
)

// gcInterval is how often expired records are collected.
const gcInterval = 5 * time.Minute

// instance is one assembled broker, ready to serve.
type instance struct {
	log     *slog.Logger
	store   store.Store
	keys    *keys.Manager
	broker  *broker.Broker
	handler http.Handler
	metrics *prometheus.Registry
	// admin is the admin API handler and adminLn its listener; nil when
	// admin.tokenFile is unset.
	admin   http.Handler
	adminLn net.Listener
	// metricsLn is the metrics server's listener; nil when metrics.listen
	// is unset.
	metricsLn net.Listener
	// metricsHandler is what metricsLn serves (MetricsConfig.handler).
	metricsHandler http.Handler
	// discovery are the upstreams whose discovery run drives.
	discovery []discoverer
	// signals is the Shared Signals receiver (nil without an ssf section);
	// run polls its poll-delivery streams.
	signals *broker.Signals
}

// discoverer is an upstream whose discovery runs in the background
// (*federation.LazyUpstream): Run discovers and retries, Attempted is
// closed when the first attempt (at most federation.FirstDiscoveryTimeout)
// has ended.
type discoverer interface {
	Run(ctx context.Context) error
	Attempted() <-chan struct{}
}

var _ discoverer = (*federation.LazyUpstream)(nil)

// serve runs the broker until ctx is cancelled.
func serve(ctx context.Context, cfg *Config, sec Secrets, logOut io.Writer) error {
	log, err := buildLogger(cfg.Logging, logOut)
	if err != nil {
		return err
	}
	logExposedSecretFiles(ctx, log, cfg.secretFiles())
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w (is another keyward running? change listen: in the config)", err)
	}
	tp, stopTracing, err := buildTracing(ctx, log)
	if err != nil {
		_ = ln.Close()
		return err
	}
	defer flushTracing(ctx, log, stopTracing)
	inst, err := build(ctx, cfg, sec, log, upstreamTransport(), tp)
	if err != nil {
		_ = ln.Close()
		return err
	}
	defer inst.close()
	if err := inst.listenAdmin(ctx, cfg); err != nil {
		_ = ln.Close()
		return err
	}
	if err := inst.listenMetrics(ctx, cfg); err != nil {
		_ = ln.Close()
		return err
	}
	return inst.run(ctx, ln, cfg)
}

// upstreamTransport is the HTTP transport to upstream identity providers
// and trusted issuers. http.DefaultTransport keeps two idle connections per
// host, so a burst of sign-ins would open (and TLS-handshake) a connection
// per code exchange.
func upstreamTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	t.IdleConnTimeout = 90 * time.Second
	return t
}

// build assembles store, keys, upstreams, broker and web from the config;
// with tp (nil: no tracing), requests, upstream calls and store calls are
// traced.
func build(ctx context.Context, cfg *Config, sec Secrets, log *slog.Logger, transport http.RoundTripper, tp trace.TracerProvider) (*instance, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// The auth events every component logs become metrics (web/metrics_events.go).
	log = slog.New(web.CountEvents(reg, log.Handler()))
	st, err := buildStore(ctx, cfg.Store, sec.StoreDSN, log)
	if err != nil {
		return nil, err
	}
	inst := &instance{log: log, store: st, metrics: reg}
	registerStoreMetrics(inst.metrics, st)
	fail := func(err error) (*instance, error) {
		inst.close()
		return nil, err
	}
	// The store the key manager and the broker write through: st itself,
	// traced when tracing is on, with kill points around its writes in the
	// crash-test build only (crashpoints*.go).
	flows := st
	if tp != nil {
		flows = traceStore(st, tp)
	}
	flows = withCrashPoints(flows)
	inst.keys, err = keys.New(keysConfig(cfg, sec, flows, log))
	if err == nil {
		err = inst.keys.Load(ctx) // signing works once it returns
	}
	if errors.Is(err, keys.ErrEncryptionKey) {
		return fail(fmt.Errorf("%w; %s", err, unreadableKeysHint))
	}
	if err != nil {
		return fail(err)
	}
	ups, err := buildUpstreams(ctx, cfg, sec, log, transport, web.NewUpstreamMetrics(reg, tp))
	if err != nil {
		return fail(err)
	}
	for _, u := range ups {
		if d, ok := u.(discoverer); ok {
			inst.discovery = append(inst.discovery, d)
		}
	}
	bc := buildBrokerConfig(cfg, sec, flows, inst.keys, ups, log)
	if len(cfg.Trust) > 0 {
		trust, err := buildTrust(cfg, log, transport)
		if err != nil {
			return fail(err)
		}
		bc.Trust = trust
	}
	b, err := broker.New(bc)
	if err != nil {
		return fail(err)
	}
	prov, scimHandler, err := buildSCIM(b, st, cfg.Issuer, sec.SCIM, log)
	if err != nil {
		return fail(err)
	}
	signals, err := buildSignals(b, st, cfg.Issuer, sec.SSF, log, transport)
	if err != nil {
		return fail(err)
	}
	loopback := &console.Loopback{}
	con, err := buildConsole(cfg, sec, b, inst.keys, st, inst.metrics, log, loopback) // config_console.go
	if err != nil {
		return fail(err)
	}
	wc := web.Config{
		Broker:         b,
		Pages:          cfg.Pages,
		Keys:           inst.keys,
		SessionSecret:  derive(sec.SessionSecret, "keyward cookies v1"),
		TrustedProxies: cfg.trustedProxies(),
		Concurrency:    cfg.Limits.concurrency(),
		Ready:          readyAll(storeReady(st)), // add further checks as arguments
		Registerer:     inst.metrics,
		TracerProvider: tp,
		Version:        version,
		Logger:         log,
	}
	if scimHandler != nil { // a nil pointer must not become a non-nil interface
		wc.SCIM = scimHandler
	}
	if signals != nil {
		wc.Signals = signals
		inst.signals = signals
	}
	if con != nil {
		wc.Console = con
	}
	srv, err := web.New(wc)
	if err != nil {
		return fail(err)
	}
	loopback.Bind(srv)
	inst.broker, inst.handler = b, srv
	if len(sec.AdminToken) > 0 {
		ac := web.AdminConfig{Broker: b, Keys: inst.keys, Token: sec.AdminToken,
			MaxConcurrent: cfg.Limits.concurrency().Admin, Logger: log, Backup: adminBackup(st)}
		if prov != nil {
			ac.SCIM = prov
		}
		inst.admin = web.NewAdmin(ac)
	}
	return inst, nil
}

// keysConfig is the key manager's config: serve and replace-keys share it.
// Private keys are sealed with keys.encryptionKeyFile's key when set, else
// with one derived from the session secret.
func keysConfig(cfg *Config, sec Secrets, st store.Store, log *slog.Logger) keys.Config {
	k := cfg.Keys // the file's settings; the rest is wiring
	k.Store, k.MaxTokenTTL, k.Logger = st, cfg.Tokens.MaxSignedTTL(), log
	k.SessionSecret, k.EncryptionKey = sec.SessionSecret, sec.EncryptionKey
	return k
}

func buildBrokerConfig(cfg *Config, sec Secrets, st store.Store, k *keys.Manager, ups []broker.Upstream, log *slog.Logger) broker.Config {
	bc := broker.Config{
		Issuer:            cfg.Issuer,
		Store:             st,
		Keys:              k,
		Upstreams:         ups,
		GlobalSecret:      derive(sec.SessionSecret, "keyward fosite hmac v1"),
		UpstreamTokenKey:  derive(sec.SessionSecret, "keyward upstream tokens v1"),
		RevocationReaders: cfg.RevocationFeed.Readers,
		LoginLimits:       cfg.Limits.loginLimits(),
		TokenLimits:       cfg.Limits.tokenLimits(),
		Logger:            log,
	}
	cfg.Tokens.Apply(&bc)
	bc.Clients = append(bc.Clients, consoleClient(cfg)...) // config_console.go
	for _, c := range cfg.Clients {
		// Public as the file says it; the secret as ResolveSecrets read it.
		c.Public = c.IsPublic()
		c.Secret, c.SecretFile = sec.ClientSecrets[c.ID], ""
		bc.Clients = append(bc.Clients, c)
	}
	return bc
}

// derive gives each use of the session secret its own key.
func derive(secret []byte, purpose string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(purpose))
	return m.Sum(nil)
}

func buildLogger(c LoggingConfig, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.Level)); err != nil {
		return nil, fmt.Errorf("logging.level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	if strings.EqualFold(c.Format, "text") {
		h = slog.NewTextHandler(w, opts)
	} else {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(web.LogHandler(h)), nil
}

func buildStore(ctx context.Context, c StoreConfig, dsn string, log *slog.Logger) (store.Store, error) {
	switch b := c.Backend.(type) {
	case *postgres.Options:
		return openPostgres(ctx, b, dsn, log) // config_store.go
	case *bolt.Options:
		o := *b
		o.Logger = log
		st, err := bolt.Open(ctx, o)
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		return st, nil
	default:
		return nil, fmt.Errorf("store.type: %q is not available", c.Type)
	}
}

// buildUpstreams builds every upstream without I/O (federation.NewLazy,
// whose Run discovers; a GitHub upstream with Config.OpenGitHub, which
// needs no network). A configuration error stops the start with the
// upstream's id in the message. m times each upstream's requests (nil:
// not).
func buildUpstreams(ctx context.Context, cfg *Config, sec Secrets, log *slog.Logger, transport http.RoundTripper, m *web.UpstreamMetrics) ([]broker.Upstream, error) {
	var ups []broker.Upstream
	for i, u := range cfg.Upstreams {
		// One client per upstream, so that its requests are timed under its id.
		client := &http.Client{Timeout: httpserver.UpstreamTimeout, Transport: m.Transport(u.ID, transport)}
		// The secret as ResolveSecrets read it (from the file or inline),
		// and the callback every upstream shares.
		u.ClientSecret, u.ClientSecretFile = sec.UpstreamClientSecrets[u.ID], ""
		u.RedirectURL = cfg.Issuer + "/callback"
		up, err := openUpstream(ctx, u, client, log)
		if err != nil {
			return nil, fmt.Errorf("upstreams[%d] (%s): %w", i, u.ID, err)
		}
		ups = append(ups, up)
	}
	return ups, nil
}

// openUpstream builds u by its type. A GitHub upstream needs no discovery
// and is ready at once. An OpenID Provider is discovered by its Run (in
// instance.run): one whose discovery fails does not stop the start, it is
// retried in the background until shutdown and shown as unavailable
// meanwhile; a config error still stops the start.
func openUpstream(ctx context.Context, u federation.Config, client *http.Client, log *slog.Logger) (broker.Upstream, error) {
	if u.Type == federation.TypeGitHub {
		return u.OpenGitHub(ctx, client, log)
	}
	return federation.NewLazy(u, client, log)
}

// buildTrust assembles the workload-federation trust rules. It does no I/O:
// an issuer's discovery and keys are fetched on its first token.
func buildTrust(cfg *Config, log *slog.Logger, transport http.RoundTripper) (*federation.Trust, error) {
	t, err := federation.NewTrust(federation.TrustConfig{
		Rules:      cfg.Trust,
		HTTPClient: &http.Client{Timeout: httpserver.UpstreamTimeout, Transport: transport},
		Logger:     log,
	})
	if err != nil {
		return nil, fmt.Errorf("trust: %w", err)
	}
	return t, nil
}

// run serves HTTP and runs upstream discovery, key rotation, back-channel
// logout delivery, garbage collection and the metrics server until ctx
// ends, then shuts down gracefully. It starts serving once every upstream's
// first discovery attempt has ended (at most
// federation.FirstDiscoveryTimeout, all in parallel), so an upstream that is
// up takes the first sign-in and one that is down delays the start by at
// most that long; until then connections wait in the listener's queue.
func (inst *instance) run(ctx context.Context, ln net.Listener, cfg *Config) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, d := range inst.discovery {
		g.Go(func() error { return d.Run(ctx) })
	}
	awaitFirstDiscovery(ctx, inst.discovery)
	opts := serverOptions(cfg.Limits.MaxConnections, inst.log)
	srv := httpserver.New(inst.handler, opts)
	inst.log.InfoContext(ctx, "keyward serving", "issuer", cfg.Issuer, "listen", ln.Addr().String(), "version", version)
	g.Go(func() error {
		var err error
		if cfg.TLS.Enabled() {
			err = srv.ServeTLS(ln, cfg.TLS.CertFile, cfg.TLS.KeyFile)
		} else {
			err = srv.Serve(ln)
		}
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("serve: %w", err)
	})
	if mln := inst.metricsLn; mln != nil {
		msrv := httpserver.New(inst.metricsHandler, opts)
		g.Go(func() error {
			if err := msrv.Serve(mln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("metrics server: %w", err)
			}
			return nil
		})
		g.Go(func() error {
			<-ctx.Done()
			return msrv.Close()
		})
	}
	if inst.adminLn != nil {
		inst.serveAdmin(ctx, g, opts)
	}
	g.Go(func() error { return inst.keys.Run(ctx) })
	g.Go(func() error { return inst.broker.Run(ctx) }) // back-channel logout deliveries
	g.Go(func() error { return inst.collectGarbage(ctx) })
	if inst.signals != nil {
		g.Go(func() error { return inst.signals.Run(ctx) }) // Shared Signals poll delivery
	}
	g.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	err := g.Wait()
	inst.log.InfoContext(ctx, "keyward stopped")
	return err
}

// awaitFirstDiscovery waits until the first discovery attempt of every
// upstream in ds has ended, or ctx ends. Each attempt is bounded by
// federation.FirstDiscoveryTimeout.
func awaitFirstDiscovery(ctx context.Context, ds []discoverer) {
	for _, d := range ds {
		select {
		case <-d.Attempted():
		case <-ctx.Done():
			return
		}
	}
}

// serverOptions are the settings of every server the binary starts
// (web/httpserver's defaults): maxConns is the configured connection cap
// (0: the default), and the servers' own errors go to log at Warn.
func serverOptions(maxConns int, log *slog.Logger) httpserver.Options {
	return httpserver.Options{MaxConnections: maxConns, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
}

func (inst *instance) collectGarbage(ctx context.Context) error {
	t := time.NewTicker(gcInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			res, err := inst.store.GarbageCollect(ctx, time.Now())
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				inst.log.ErrorContext(ctx, "garbage collection failed", "err", err)
				continue
			}
			if !res.IsEmpty() {
				inst.log.InfoContext(ctx, "expired records collected", "login_attempts", res.LoginAttempts, "sessions", res.Sessions, "grants", res.Grants)
			}
		}
	}
}

// listenAdmin opens the admin API's listener when the API is configured, and
// says in the log whether it is on.
func (inst *instance) listenAdmin(ctx context.Context, cfg *Config) error {
	if inst.admin == nil {
		inst.log.InfoContext(ctx, "admin API off: set admin.tokenFile to serve it (keyward admin needs it)")
		return nil
	}
	ln, err := net.Listen("tcp", cfg.Admin.Listen)
	if err != nil {
		return fmt.Errorf("admin API: listen: %w (change admin.listen in the config)", err)
	}
	inst.adminLn = ln
	inst.log.InfoContext(ctx, "admin API serving", "listen", ln.Addr().String())
	if !loopback.HostPort(cfg.Admin.Listen) {
		inst.log.WarnContext(ctx, "the admin API listens beyond loopback; restrict who can reach it", "listen", cfg.Admin.Listen)
	}
	return nil
}

// listenMetrics opens the metrics server's listener when metrics.listen is
// set, and logs its address.
func (inst *instance) listenMetrics(ctx context.Context, cfg *Config) error {
	if cfg.Metrics.Listen == "" {
		return nil
	}
	ln, err := net.Listen("tcp", cfg.Metrics.Listen)
	if err != nil {
		return fmt.Errorf("metrics: listen: %w (change metrics.listen in the config)", err)
	}
	inst.metricsLn = ln
	inst.metricsHandler = cfg.Metrics.handler(inst.metrics)
	inst.log.InfoContext(ctx, "metrics serving", "listen", ln.Addr().String())
	return nil
}

// serveAdmin serves the admin API under g with opts until ctx ends, then
// shuts it down gracefully.
func (inst *instance) serveAdmin(ctx context.Context, g *errgroup.Group, opts httpserver.Options) {
	asrv := httpserver.New(inst.admin, opts)
	ln := inst.adminLn
	g.Go(func() error {
		if err := asrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("admin API: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		return asrv.Shutdown(sctx)
	})
}

func (inst *instance) close() {
	if inst.adminLn != nil {
		_ = inst.adminLn.Close()
	}
	if inst.metricsLn != nil {
		_ = inst.metricsLn.Close()
	}
	if inst.store != nil {
		if err := inst.store.Close(); err != nil {
			inst.log.Error("close store", "err", err)
		}
	}
}
