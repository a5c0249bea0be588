package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/cmd/config"
	"github.com/keyward/keyward/federation"
	"github.com/keyward/keyward/keys"
	"github.com/keyward/keyward/store"
	"github.com/keyward/keyward/test/brokertest"
	"github.com/keyward/keyward/test/fakeidp"
	"github.com/keyward/keyward/web"
)

// The relying party registered at the broker. Its redirect URI is never
// followed: the sign-in client stops at the redirect and reads the code.
const (
	ClientID       = "bench-app"
	ClientSecret   = "bench-app-secret-0123456789-0123456789-abcdef"
	ClientRedirect = "http://127.0.0.1:1/app/callback"
)

// Token exchange (RFC 8693) with workload federation: a public client whose
// only credential is a JWT from the fake CI issuer (Env.CIURL), accepted by
// the trust rule "bench-ci". The rule is not single use, so one minted token
// can be exchanged any number of times (no jti record per exchange).
const (
	ExchangeClientID = "bench-ci"
	ExchangeAudience = "deploy-api"
	ExchangeScope    = "deploy"
	ciAudience       = "keyward"
)

// Options configures an Env.
type Options struct {
	// Dir holds the bbolt file and the log. Required.
	Dir string
	// NoSync skips bbolt's fsync (not production; shows the fsync cost).
	NoSync bool
	// Algorithm signs Keyward's tokens. Default: RS256 (production default).
	Algorithm string
	// AccessTokenAlgorithm signs access tokens (keys.accessTokenAlgorithm).
	// Default: Algorithm.
	AccessTokenAlgorithm string
	// Log, when non-nil, receives the broker's JSON log at info level, as
	// cmd/keyward writes it by default. Nil discards it.
	Log io.Writer
	// Postgres, when set, is the DSN of the PostgreSQL database the broker
	// stores in (instead of the bbolt file in Dir).
	Postgres string
	// MaxConns is each replica's PostgreSQL pool size (0: the default).
	MaxConns int32
	// Replicas is how many brokers serve the issuer (default 1); more than
	// one needs Postgres. RoundRobin spreads a client's requests over them.
	Replicas int
}

// Env is a bare net/http handler, a fake upstream IdP and a broker, each on
// its own 127.0.0.1 listener in this process.
type Env struct {
	BareURL     string // GET / answers 200 with an empty body
	UpstreamURL string // test/fakeidp with AutoLogin
	BrokerURL   string // the issuer
	CIURL       string // a second test/fakeidp: the CI issuer that trust rule "bench-ci" names

	// Conns counts the TCP connections each server accepted.
	BareConns, UpstreamConns, BrokerConns atomic.Int64
	// StoreWrites counts the broker's store writes (write transactions).
	StoreWrites atomic.Int64

	ci      *fakeidp.Server
	broker  *brokertest.Env
	servers []*http.Server

	replicas     []*brokertest.Env // after the first (broker)
	replicaHosts []string          // every replica's own host:port, the first's first
	stores       []store.Store     // the PostgreSQL stores, one per replica
}

// MintCIToken returns a workload JWT from the CI issuer, signed RS256 as
// GitHub Actions signs them, that trust rule "bench-ci" accepts and that
// expires after ttl.
func (e *Env) MintCIToken(ttl time.Duration) string {
	return e.ci.MintJWT(map[string]any{
		"aud": ciAudience, "sub": "repo:example/app:ref:refs/heads/main",
		"repository": "example/app", "ref": "refs/heads/main", "workflow": "deploy",
		"jti": "bench-ci-token", "exp": time.Now().Add(ttl).Unix(),
	})
}

// Broker is the broker of the first replica: its store, keys, upstream
// fake IdPs and *broker.Broker (the soak deprovisions and rotates through
// it).
func (e *Env) Broker() *brokertest.Env { return e.broker }

// Start builds and serves the three servers; Close stops them.
func Start(ctx context.Context, opts Options) (_ *Env, err error) {
	e := &Env{}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	bare, err := e.listen(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
	}), &e.BareConns)
	if err != nil {
		return e, err
	}
	e.BareURL = bare

	// The upstream needs its URL before its handler exists.
	upLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return e, fmt.Errorf("listen: %w", err)
	}
	brLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = upLn.Close()
		return e, fmt.Errorf("listen: %w", err)
	}
	e.UpstreamURL = "http://" + upLn.Addr().String()
	e.BrokerURL = "http://" + brLn.Addr().String()
	idp, err := fakeidp.New(fakeidp.Config{
		Issuer:    e.UpstreamURL,
		Users:     fakeidp.DemoUsers(),
		Clients:   []fakeidp.Client{{ID: brokertest.UpstreamClientID, Secret: brokertest.UpstreamSecret, RedirectURIs: []string{e.BrokerURL + "/callback"}}},
		AutoLogin: "alice",
	})
	if err != nil {
		_, _ = upLn.Close(), brLn.Close()
		return e, fmt.Errorf("fakeidp: %w", err)
	}
	e.serve(upLn, idp.Handler(), &e.UpstreamConns)

	ciLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = brLn.Close()
		return e, fmt.Errorf("listen: %w", err)
	}
	e.CIURL = "http://" + ciLn.Addr().String()
	if e.ci, err = fakeidp.New(fakeidp.Config{Issuer: e.CIURL, Users: fakeidp.DemoUsers()}); err != nil {
		_, _ = ciLn.Close(), brLn.Close()
		return e, fmt.Errorf("fakeidp (CI issuer): %w", err)
	}
	var ciConns atomic.Int64
	e.serve(ciLn, e.ci.Handler(), &ciConns)

	first := brLn.Addr()
	if e.broker, err = e.startBroker(ctx, opts, brLn, idp); err != nil {
		return e, err
	}
	e.replicaHosts = []string{first.String()}
	if opts.Replicas > 1 {
		if opts.Postgres == "" {
			return e, errors.New("several replicas need a PostgreSQL store")
		}
		if err := e.startReplicas(ctx, opts, idp, first); err != nil {
			return e, err
		}
	}
	return e, nil
}

// startBroker serves the broker on ln, wired as cmd/keyward/serve.go wires
// it: store, keys, upstream, trust, broker and web.
func (e *Env) startBroker(ctx context.Context, opts Options, ln net.Listener, upstream *fakeidp.Server) (*brokertest.Env, error) {
	log := slog.New(slog.DiscardHandler)
	if opts.Log != nil {
		log = slog.New(web.LogHandler(slog.NewJSONHandler(opts.Log, &slog.HandlerOptions{Level: slog.LevelInfo})))
	}
	// As cmd/keyward/config_trust.go builds it: the issuer's keys are
	// fetched on the first exchange, then cached.
	trust, err := federation.NewTrust(federation.TrustConfig{
		Rules: []federation.TrustRule{{
			Name: "bench-ci", Issuer: e.CIURL, Audience: ciAudience,
			Claims:    map[string]string{"repository": "example/app", "ref": "refs/heads/*"},
			Subject:   "ci:{repository}:{ref}",
			Audiences: []string{ExchangeAudience}, Scopes: []string{ExchangeScope},
			MaxTTL: config.Duration(5 * time.Minute), PublicClient: true,
		}},
		HTTPClient: &http.Client{Timeout: 10 * time.Second},
		Logger:     log,
	})
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("trust: %w", err)
	}
	st, err := openStore(ctx, opts)
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	if st != nil {
		e.stores = append(e.stores, st)
	}
	return brokertest.Start(ctx, brokertest.Options{
		Store:    st,
		Dir:      opts.Dir,
		NoSync:   opts.NoSync,
		Listener: ln,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				e.BrokerConns.Add(1)
			}
		},
		IdPs: []*fakeidp.Server{upstream},
		// Production passes http.DefaultTransport to the upstream client.
		UpstreamClient: &http.Client{Timeout: 10 * time.Second, Transport: http.DefaultTransport},
		Keys:           keys.Config{Algorithm: opts.Algorithm, AccessTokenAlgorithm: opts.AccessTokenAlgorithm},
		Clients: []broker.Client{
			{ID: ClientID, Name: "Bench App", Secret: ClientSecret, RedirectURIs: []string{ClientRedirect}},
			{ID: ExchangeClientID, Public: true, GrantTypes: []string{broker.GrantTypeTokenExchange},
				Audiences: []string{ExchangeAudience}, Scopes: []string{ExchangeScope}},
		},
		Broker: func(bc *broker.Config) {
			bc.Trust = trust
			bc.Store = countingStore{Store: bc.Store, writes: &e.StoreWrites}
			bc.GlobalSecret = []byte("bench-global-secret-0123456789-0123456789-0123")
			bc.LoginLimits.InsecureUnlimited = true // every sign-in comes from 127.0.0.1
			bc.TokenLimits.InsecureUnlimited = true // one client drives every token request
		},
		Web: func(wc *web.Config) {
			wc.SessionSecret = []byte("bench-cookie-secret-0123456789-0123456789-0123")
			wc.Registerer = prometheus.NewRegistry()
		},
		Logger: log,
	})
}

func (e *Env) listen(h http.Handler, conns *atomic.Int64) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("listen: %w", err)
	}
	e.serve(ln, h, conns)
	return "http://" + ln.Addr().String(), nil
}

func (e *Env) serve(ln net.Listener, h http.Handler, conns *atomic.Int64) {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		},
	}
	e.servers = append(e.servers, srv)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintf(os.Stderr, "serve %s: %v\n", ln.Addr(), err)
		}
	}()
}

// Close stops the servers and closes the store.
func (e *Env) Close() {
	for _, s := range e.servers {
		_ = s.Close()
	}
	if e.broker != nil {
		e.broker.Close()
	}
	e.closeReplicas()
}
