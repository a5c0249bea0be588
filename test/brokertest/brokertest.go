// Package brokertest assembles a real Keyward broker for tests and
// benchmarks: a bbolt store, a key manager, federation upstreams against
// test/fakeidp, the broker and its web handler, served on a 127.0.0.1 TCP
// listener whose URL is the issuer.
package brokertest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/federation"
	"github.com/keyward/keyward/keys"
	"github.com/keyward/keyward/store"
	"github.com/keyward/keyward/store/bolt"
	"github.com/keyward/keyward/test/fakeidp"
	"github.com/keyward/keyward/web"
)

// The broker's client at every upstream.
const (
	UpstreamClientID = "keyward"
	UpstreamSecret   = "upstream-secret"
)

// upstreamIDs names the upstreams in order.
var upstreamIDs = []string{"corp", "partner", "third"}

// TB is the part of testing.TB that New uses.
type TB interface {
	Cleanup(func())
	Helper()
	Fatalf(format string, args ...any)
	Context() context.Context
}

// Clock is the real clock plus an offset that a test advances.
type Clock struct{ off atomic.Int64 }

// Now returns the real time plus the offset.
func (c *Clock) Now() time.Time { return time.Now().Add(time.Duration(c.off.Load())) }

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) { c.off.Add(int64(d)) }

// Options configures an Env. The zero value is a broker with one upstream
// (showing its login form), no clients, and a store that fsyncs, in a
// temporary folder.
type Options struct {
	// Dir holds the bbolt file. Empty: a new temporary folder, removed by
	// Close.
	Dir string
	// NoSync skips bbolt's fsync (tests); false fsyncs as in production.
	NoSync bool
	// Store, when non-nil, is used instead of a bbolt file (Dir and NoSync
	// are then ignored, and Env.Store stays nil). The caller owns it: Close
	// and Restart leave it open.
	Store store.Store

	// Listener serves the broker; its address is the issuer. Nil: a new
	// listener on 127.0.0.1:0. The Env owns it: Close (or a failed Start)
	// closes it.
	Listener net.Listener
	// ConnState, when non-nil, is the broker server's connection hook.
	ConnState func(net.Conn, http.ConnState)
	// Handler, when non-nil, wraps the broker's web handler.
	Handler func(http.Handler) http.Handler

	// IdPs are the upstreams, named corp, partner and third in order; their
	// client UpstreamClientID must allow the issuer's /callback (so the
	// caller needs Listener). Empty: Upstreams fake IdPs are created.
	IdPs []*fakeidp.Server
	// Upstreams is how many fake IdPs to create when IdPs is empty.
	// Default 1, at most 3.
	Upstreams int
	// AutoLogin signs this user in at the created fake IdPs without their
	// login form. Empty: the form is shown.
	AutoLogin string
	// UpstreamClient talks to the upstreams. Default: http.DefaultClient.
	UpstreamClient *http.Client

	// Clients are registered at the broker.
	Clients []broker.Client
	// Keys configures the key manager (Store and Logger are set here).
	// Default MaxTokenTTL: 15m; default Now: Options.Now.
	Keys keys.Config
	// Now is the broker's (and by default the keys') clock. Nil: real time.
	Now func() time.Time
	// Upstream, when non-nil, edits upstream i's configuration before it
	// is opened (profile, claim mapping, allow rules …).
	Upstream func(i int, c *federation.Config)
	// Broker, when non-nil, edits the broker's configuration last.
	Broker func(*broker.Config)
	// Web, when non-nil, edits the web handler's configuration last.
	Web func(*web.Config)
	// Logger receives every component's log. Nil: TestLogger().
	Logger *slog.Logger
}

// Env is a broker serving on its listener, with its store, keys and
// upstreams. Restart rebuilds the broker on the same bbolt file.
type Env struct {
	Issuer string
	IdPs   []*fakeidp.Server
	Server *http.Server // the broker's

	// Store, Keys and Broker are those of the current start: Restart
	// replaces them.
	Store  *bolt.Store
	Keys   *keys.Manager
	Broker *broker.Broker

	opts    Options
	path    string
	tmpDir  string
	handler atomic.Value // http.Handler
	idpSrvs []*http.Server

	// runCtx ends at Close: every broker built (Restart builds another)
	// runs its background work (broker.Run) until then; runs counts them.
	runCtx  context.Context
	stopRun context.CancelFunc
	runs    sync.WaitGroup

	mu     sync.Mutex
	closed bool
}

// TestLogger discards the log unless KEYWARD_TEST_LOG is set; then it writes
// debug-level text to stderr.
func TestLogger() *slog.Logger {
	if os.Getenv("KEYWARD_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// New is Start for a test: it fails tb on error and closes the Env when the
// test ends.
func New(tb TB, opts Options) *Env {
	tb.Helper()
	e, err := Start(tb.Context(), opts)
	if err != nil {
		tb.Fatalf("brokertest: %v", err)
		return nil
	}
	tb.Cleanup(e.Close)
	return e
}

// Start builds the broker and serves it.
func Start(ctx context.Context, opts Options) (_ *Env, err error) {
	if opts.Logger == nil {
		opts.Logger = TestLogger()
	}
	if opts.UpstreamClient == nil {
		opts.UpstreamClient = http.DefaultClient
	}
	e := &Env{opts: opts}
	e.runCtx, e.stopRun = context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	ln := opts.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return nil, fmt.Errorf("listen: %w", err)
		}
	}
	e.Server = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			e.handler.Load().(http.Handler).ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ConnState:         opts.ConnState,
	}
	e.Issuer = "http://" + ln.Addr().String()

	dir := opts.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "brokertest-"); err != nil {
			_ = ln.Close()
			return nil, err
		}
		e.tmpDir = dir
	}
	e.path = filepath.Join(dir, "keyward.db")

	e.IdPs = opts.IdPs
	if len(e.IdPs) == 0 {
		n := max(opts.Upstreams, 1)
		for range n {
			idp, err := e.startIdP()
			if err != nil {
				_ = ln.Close()
				return nil, err
			}
			e.IdPs = append(e.IdPs, idp)
		}
	}
	if len(e.IdPs) > len(upstreamIDs) {
		_ = ln.Close()
		return nil, fmt.Errorf("%d upstreams: at most %d", len(e.IdPs), len(upstreamIDs))
	}
	if err := e.build(ctx); err != nil {
		_ = ln.Close()
		return nil, err
	}
	serve(e.Server, ln)
	return e, nil
}

// startIdP serves a fake IdP that knows the broker as client
// UpstreamClientID.
func (e *Env) startIdP() (*fakeidp.Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	idp, err := fakeidp.New(fakeidp.Config{
		Issuer:    "http://" + ln.Addr().String(),
		Users:     fakeidp.DemoUsers(),
		Clients:   []fakeidp.Client{{ID: UpstreamClientID, Secret: UpstreamSecret, RedirectURIs: []string{e.Issuer + "/callback"}}},
		AutoLogin: e.opts.AutoLogin,
	})
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("fakeidp: %w", err)
	}
	srv := &http.Server{Handler: idp.Handler(), ReadHeaderTimeout: 10 * time.Second}
	e.idpSrvs = append(e.idpSrvs, srv)
	serve(srv, ln)
	return idp, nil
}

func serve(srv *http.Server, ln net.Listener) {
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintf(os.Stderr, "brokertest: serve %s: %v\n", ln.Addr(), err)
		}
	}()
}

// build opens the store and wires keys, upstreams, broker and web as
// cmd/keyward/serve.go does, then serves the new handler.
func (e *Env) build(ctx context.Context) error {
	o, log := e.opts, e.opts.Logger
	var st store.Store = o.Store
	var bst *bolt.Store
	if st == nil {
		var err error
		if bst, err = bolt.Open(ctx, bolt.Options{Path: e.path, NoSync: o.NoSync, Logger: log}); err != nil {
			return fmt.Errorf("bolt.Open: %w", err)
		}
		st = bst
	}
	ok := false
	defer func() {
		if !ok && bst != nil {
			_ = bst.Close()
		}
	}()
	kc := o.Keys
	kc.Store, kc.Logger = st, log
	if kc.SessionSecret == nil {
		kc.SessionSecret = []byte("session-secret-0123456789-0123456789-0123456789")
	}
	if kc.MaxTokenTTL == 0 {
		kc.MaxTokenTTL = 15 * time.Minute
	}
	if kc.Now == nil {
		kc.Now = o.Now
	}
	km, err := keys.New(kc)
	if err != nil {
		return fmt.Errorf("keys.New: %w", err)
	}
	if err := km.Load(ctx); err != nil {
		return fmt.Errorf("keys.Load: %w", err)
	}
	var ups []broker.Upstream
	for i, idp := range e.IdPs {
		id := upstreamIDs[i]
		fc := federation.Config{
			ID: id, Name: strings.ToUpper(id[:1]) + id[1:] + " SSO", Issuer: idp.URL(),
			ClientID: UpstreamClientID, ClientSecret: UpstreamSecret, RedirectURL: e.Issuer + "/callback",
			Scopes: []string{"openid", "email", "profile", "groups"},
		}
		if o.Upstream != nil {
			o.Upstream(i, &fc)
		}
		up, err := fc.Open(ctx, o.UpstreamClient, log)
		if err != nil {
			return fmt.Errorf("open upstream %s: %w", id, err)
		}
		ups = append(ups, up)
	}
	bc := broker.Config{
		Issuer:       e.Issuer,
		Store:        st,
		Keys:         km,
		Upstreams:    ups,
		GlobalSecret: []byte("global-secret-0123456789-0123456789-0123456789"),
		Clients:      append([]broker.Client(nil), o.Clients...),
		Now:          o.Now,
		Logger:       log,
	}
	if o.Broker != nil {
		o.Broker(&bc)
	}
	b, err := broker.New(bc)
	if err != nil {
		return fmt.Errorf("broker.New: %w", err)
	}
	wc := web.Config{Broker: b, Keys: km, SessionSecret: []byte("cookie-secret-0123456789-0123456789-0123456789"), Logger: log}
	if o.Web != nil {
		o.Web(&wc)
	}
	w, err := web.New(wc)
	if err != nil {
		return fmt.Errorf("web.New: %w", err)
	}
	var h http.Handler = w
	if o.Handler != nil {
		h = o.Handler(h)
	}
	e.runs.Add(1)
	go func() {
		defer e.runs.Done()
		_ = b.Run(e.runCtx)
	}()
	ok = true
	e.mu.Lock()
	e.Store, e.Keys, e.Broker = bst, km, b
	e.mu.Unlock()
	e.handler.Store(h)
	return nil
}

// Restart closes the store and builds a new broker on the same file, behind
// the same listener.
func (e *Env) Restart(ctx context.Context) error {
	e.closeStore()
	return e.build(ctx)
}

// RestartWith is Restart with the options changed by edit first (a new
// configuration, as an upgrade brings), for this and later starts.
func (e *Env) RestartWith(ctx context.Context, edit func(*Options)) error {
	edit(&e.opts)
	return e.Restart(ctx)
}

func (e *Env) closeStore() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.Store != nil {
		_ = e.Store.Close()
		e.Store = nil
	}
}

// Close stops the servers, closes the store and removes the temporary
// folder. It may be called more than once.
func (e *Env) Close() {
	e.mu.Lock()
	closed := e.closed
	e.closed = true
	e.mu.Unlock()
	if closed {
		return
	}
	if e.Server != nil {
		_ = e.Server.Close()
	}
	e.stopRun()
	e.runs.Wait()
	e.closeStore()
	for _, s := range e.idpSrvs {
		_ = s.Close()
	}
	if e.tmpDir != "" {
		_ = os.RemoveAll(e.tmpDir)
	}
}
