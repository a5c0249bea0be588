package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/keyward/keyward/web/httpserver"
	"github.com/keyward/keyward/web/verify"
)

func newVerifyCommand() *cobra.Command {
	var path, listen string
	var check bool
	cmd := &cobra.Command{
		Use:   "verify -c verify.yaml",
		Short: "Run the edge verifier that gateways ask about each request (forward auth)",
		Long: `Run the edge verifier: a small HTTP service that a gateway (nginx auth_request,
Traefik forwardAuth, Caddy forward_auth, Envoy ext_authz) asks about every
request. It checks the request's bearer token, a Keyward access token, offline
against the broker's signing keys (fetched once, cached, refreshed in the
background; it keeps verifying when the broker is down), then applies the
route rules of verify.yaml: the first rule matching host, path and method
decides, and a request no rule matches is denied.

Endpoints (on listen, default 127.0.0.1:4180):
  /oauth2/auth   the check. The original request is described only by the
                 headers of the configured gateway: X-Original-URI +
                 X-Original-Method (gateway: nginx, the default, or kong) or
                 X-Forwarded-Uri + X-Forwarded-Method (traefik, caddy); the
                 other family is ignored. The host is X-Forwarded-Host, else
                 Host. Not served with gateway: envoy.
  envoyPrefix    (if set) Envoy ext_authz HTTP service: envoyPrefix + the
                 original path, with the original method, Host and headers.
  /oauth2/start, /oauth2/callback (browser.redirectURL's path),
  /oauth2/sign_out
                 browser mode (with a browser: section): sign-in at Keyward,
                 the encrypted session cookie, sign-out. Rules with
                 browser: true accept the session; without one, nginx gets
                 401 (its error_page starts the sign-in), other gateways a
                 302 to /oauth2/start for requests that accept HTML. The
                 check never renews a session or sets cookies: a page load
                 whose token is due (30s before expiry, or half its
                 lifetime if shorter) gets the same answer, and
                 /oauth2/start renews it with the refresh token and
                 redirects back.
  /healthz       200 "ok".

Answers:
  200  allowed, with X-Auth-Request-User (the userClaim, default sub),
       X-Auth-Request-Preferred-Username, X-Auth-Request-Email (verified
       addresses only), X-Auth-Request-Groups (comma-joined; ',', '%' and
       control characters in a name percent-encoded), X-Auth-Request-Subject
       and, with passAccessToken, X-Auth-Request-Access-Token; no identity
       headers for an anonymous rule
  401  no or invalid token, with WWW-Authenticate: Bearer error="invalid_token"
       (also a token the revocation feed revokes)
  403  the rules deny (or none matches), with error="insufficient_scope",
       or a path they cannot judge unambiguously (dot segments, //, %2F,
       \, ;, control characters), with error="invalid_request"
  503  no signing key could be loaded yet, or (revocationFeed with onStale:
       deny) the revocation feed has not been read for maxStaleness

Metrics (metrics.listen, /metrics): keyward_verify_requests_total{result=
"allowed|unauthenticated|forbidden|unavailable"} and
keyward_verify_request_duration_seconds{result},
keyward_verify_jwks_fetch_errors_total, keyward_verify_token_cache_hits_total
and keyward_verify_token_cache_misses_total; with a revocationFeed,
keyward_verify_revocation_feed_lag_seconds, keyward_verify_revocation_entries
and keyward_verify_revocation_stale_denials_total. Logs: one line at start and
at stop, none per request. Traces: with OTEL_EXPORTER_OTLP_ENDPOINT set, a
verify.check span per check (rule, outcome, reason; never the token), as
keyward serve (docs/deployment.md, "Tracing"). Stops cleanly on SIGINT or
SIGTERM.

Gateway configurations: docs/gateways/. Every field: examples/verify.yaml.
Check a file without starting: keyward verify --check -c verify.yaml (exit 0
when it is good, 1 otherwise; every problem is listed with its field; no
network calls).`,
		Example: `  keyward verify --check -c /etc/keyward/verify.yaml
  keyward verify -c /etc/keyward/verify.yaml
  keyward verify -c verify.yaml --listen 127.0.0.1:4181`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if check {
				return checkVerifyConfig(path, cmd.OutOrStdout())
			}
			cfg, err := loadVerifyConfigFile(path)
			if err != nil {
				return err
			}
			if listen != "" {
				cfg.Listen = listen
			}
			return serveVerify(cmd.Context(), cfg, os.Stderr)
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "verify.yaml", "path of the verifier's configuration file")
	cmd.Flags().StringVar(&listen, "listen", "", "override the config's listen address (host:port)")
	cmd.Flags().BoolVar(&check, "check", false, "validate the configuration file, print the result and exit")
	return cmd
}

// serveVerify runs the verifier described by cfg until ctx is cancelled.
func serveVerify(ctx context.Context, cfg *VerifyConfig, logOut io.Writer) error {
	log, err := buildLogger(cfg.Logging, logOut)
	if err != nil {
		return err
	}
	logExposedSecretFiles(ctx, log, cfg.secretFiles())
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w (is another keyward verify running? change listen: in the config)", err)
	}
	var mln net.Listener
	if cfg.Metrics.Listen != "" {
		if mln, err = net.Listen("tcp", cfg.Metrics.Listen); err != nil {
			_ = ln.Close()
			return fmt.Errorf("metrics listen: %w", err)
		}
	}
	return runVerifier(ctx, cfg, log, ln, mln)
}

// runVerifier serves the forward-auth handler on ln and, when mln is not
// nil, the metrics on mln, until ctx ends; then it shuts down gracefully. It
// closes both listeners.
func runVerifier(ctx context.Context, cfg *VerifyConfig, log *slog.Logger, ln, mln net.Listener) error {
	log = log.With("component", "verify")
	vc := cfg.Config
	vc.HTTPClient = &http.Client{Timeout: httpserver.UpstreamTimeout} // discovery, JWKS, the revocation feed
	var v *verify.Verifier
	rc, err := cfg.revocationConfig()
	vc.Revocation = rc
	if err == nil {
		v, err = verify.New(ctx, vc)
	}
	if err != nil {
		_ = ln.Close()
		if mln != nil {
			_ = mln.Close()
		}
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	registerOverloadMetrics(reg, v)
	if vc.Revocation != nil {
		registerRevocationMetrics(reg, v)
	}
	opts, err := cfg.handlerOptions(v)
	if err != nil {
		_ = ln.Close()
		if mln != nil {
			_ = mln.Close()
		}
		return err
	}
	registerVerifierMetrics(reg, v)
	tp, stopTracing, err := buildTracing(ctx, log)
	if err != nil {
		_ = ln.Close()
		if mln != nil {
			_ = mln.Close()
		}
		return err
	}
	defer flushTracing(ctx, log, stopTracing)
	var logged, spanned func(context.Context, verify.Decision)
	if log.Enabled(ctx, slog.LevelDebug) {
		logged = logDecision(log)
	}
	if tp != nil {
		spanned = spanDecision
	}
	opts.OnDecision = onDecisions(logged, spanned)
	h := traceVerify(instrumentVerify(verify.NewHandler(v, cfg.Rules, opts), cfg.EnvoyPrefix, reg), cfg.EnvoyPrefix, tp)

	sopts := serverOptions(cfg.MaxConnections, log)
	servers := []*httpserver.Server{httpserver.New(h, sopts)}
	listeners := []net.Listener{ln}
	if mln != nil {
		servers = append(servers, httpserver.New(cfg.Metrics.handler(reg), sopts))
		listeners = append(listeners, mln)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return v.Run(gctx) }) // the revocation feed's poller
	for i, srv := range servers {
		g.Go(func() error {
			if err := srv.Serve(listeners[i]); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve %s: %w", listeners[i].Addr(), err)
			}
			return nil
		})
	}
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(gctx), 10*time.Second)
		defer cancel()
		var errs []error
		for _, srv := range servers {
			if err := srv.Shutdown(sctx); err != nil {
				errs = append(errs, fmt.Errorf("shut down: %w", err))
			}
		}
		return errors.Join(errs...)
	})
	attrs := []any{"issuer", cfg.Issuer, "audience", cfg.Audiences, "listen", ln.Addr().String(),
		"gateway", cfg.Gateway, "browser", cfg.Browser != nil, "rules", len(cfg.Rules), "version", version}
	attrs = append(attrs, cfg.revocationLogAttrs()...)
	if mln != nil {
		attrs = append(attrs, "metrics_listen", mln.Addr().String())
	}
	log.InfoContext(ctx, "keyward verify serving", attrs...)
	err = g.Wait()
	log.InfoContext(ctx, "keyward verify stopped")
	return err
}

// Results of a check, the result label of the verify metrics.
const (
	resultAllowed         = "allowed"
	resultUnauthenticated = "unauthenticated"
	resultForbidden       = "forbidden"
	resultUnavailable     = "unavailable"
)

// verifyMetrics holds the series resolved once, so a check costs no label
// lookup.
type verifyMetrics struct {
	requests map[string]prometheus.Counter
	duration map[string]prometheus.Observer
}

// instrumentVerify counts and times the checks next serves (/oauth2/auth and
// the Envoy prefix), by result. It keeps web/verify free of Prometheus.
func instrumentVerify(next http.Handler, envoyPrefix string, reg prometheus.Registerer) http.Handler {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "keyward_verify_requests_total",
		Help: "Forward-auth checks answered, by result: allowed (2xx), unauthenticated (401, or 302 to sign-in), forbidden (403), unavailable (503 or another error).",
	}, []string{"result"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "keyward_verify_request_duration_seconds",
		Help:    "Time to answer a forward-auth check, by result.",
		Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
	}, []string{"result"})
	reg.MustRegister(requests, duration)
	m := &verifyMetrics{requests: map[string]prometheus.Counter{}, duration: map[string]prometheus.Observer{}}
	for _, r := range []string{resultAllowed, resultUnauthenticated, resultForbidden, resultUnavailable} {
		m.requests[r] = requests.WithLabelValues(r)
		m.duration[r] = duration.WithLabelValues(r)
	}
	envoyPrefix = strings.TrimSuffix(envoyPrefix, "/")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isCheck(r, envoyPrefix) {
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		sw := statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(&sw, r)
		result := resultOf(sw.status)
		m.requests[result].Inc()
		m.duration[result].Observe(time.Since(start).Seconds())
	})
}

func resultOf(status int) string {
	switch {
	case status < 300:
		return resultAllowed
	case status == http.StatusUnauthorized || status == http.StatusFound: // 302: browser sign-in
		return resultUnauthenticated
	case status == http.StatusForbidden:
		return resultForbidden
	default:
		return resultUnavailable
	}
}

// statusWriter records the status written through it.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(status int) {
	if !w.wrote {
		w.status, w.wrote = status, true
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// logDecision logs one line per check at level debug: the rule, the
// outcome and the reason; never the token or the query.
func logDecision(log *slog.Logger) func(context.Context, verify.Decision) {
	return func(ctx context.Context, d verify.Decision) {
		log.DebugContext(ctx, "check", "outcome", d.Outcome(), "status", d.Status, "rule", d.Rule,
			"reason", d.Reason, "method", d.Method, "host", d.Host, "path", d.Path)
	}
}
