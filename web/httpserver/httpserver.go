package httpserver

import (
	"container/list"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// UpstreamTimeout bounds each HTTP request that a handler of the binary
// makes to another service and waits for: an upstream identity provider or
// GitHub (code redemption, userinfo, Graph groups, the REST API), a trusted
// issuer's discovery and keys, and keyward verify's and the demo app's calls
// to the broker. cmd/keyward builds those clients with it; the packages'
// own defaults for library use (federation, web/verify) are the same 10s.
const UpstreamTimeout = 10 * time.Second

// upstreamCallsInTurn is how many upstream calls at their full
// UpstreamTimeout one request may wait for in turn and still be answered:
// a sign-in callback redeems the code, then reads userinfo and (Entra ID
// group overage) the Graph groups; a token exchange with a trusted issuer
// seen for the first time fetches its discovery, then its keys. (A GitHub
// sign-in makes more calls, each of them normally answered in well under a
// second.)
const upstreamCallsInTurn = 3

// The defaults of Options.
const (
	// DefaultReadHeaderTimeout bounds reading a request's headers: a
	// client dribbling them is cut off after it.
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultReadTimeout bounds reading a whole request, body included
	// (bodies are at most 64 KiB: at least about 2 KB/s).
	DefaultReadTimeout = 30 * time.Second
	// DefaultWriteTimeout bounds a whole exchange from the end of the
	// request headers: reading the body, the upstream calls the handler
	// waits for, and writing the answer. It is derived from the read
	// timeout and UpstreamTimeout, so that a handler's upstream calls time
	// out before its answer can no longer be written. 60s.
	DefaultWriteTimeout = DefaultReadTimeout + upstreamCallsInTurn*UpstreamTimeout
	// DefaultIdleTimeout is how long a keep-alive connection may wait for
	// its next request.
	DefaultIdleTimeout = 2 * time.Minute
	// DefaultMaxHeaderBytes bounds the request line and headers; larger
	// requests get 431 Request Header Fields Too Large. Keyward's largest
	// header, keyward verify's browser session, is at most four cookies of
	// 3,800 bytes.
	DefaultMaxHeaderBytes = 64 << 10
	// DefaultMaxConnections caps the connections one server holds open at
	// once. At the cap, a new client takes the slot of the connection that
	// has waited longest, idle, for its next keep-alive request (HTTP/1.1
	// lets a server close an idle connection at any time); without an idle
	// one, it waits (the next client accepted, the rest in the kernel's
	// accept queue) until a connection closes. Each held connection costs
	// a file descriptor and about 28 KB (docs/performance.md), so about
	// 115 MB at the default.
	DefaultMaxConnections = 4096
)

// Options are a server's settings. A zero field takes its default; every
// server of the binary is built with the defaults except where the
// configuration sets MaxConnections. Tests shorten the timeouts.
type Options struct {
	// ReadHeaderTimeout: Default: DefaultReadHeaderTimeout (10s).
	ReadHeaderTimeout time.Duration
	// ReadTimeout: Default: DefaultReadTimeout (30s).
	ReadTimeout time.Duration
	// WriteTimeout: Default: DefaultWriteTimeout (60s).
	WriteTimeout time.Duration
	// IdleTimeout: Default: DefaultIdleTimeout (2m).
	IdleTimeout time.Duration
	// MaxHeaderBytes: Default: DefaultMaxHeaderBytes (64 KiB).
	MaxHeaderBytes int
	// MaxConnections caps the connections held open at once.
	// Default: DefaultMaxConnections (4096).
	MaxConnections int
	// ErrorLog receives the server's own errors (TLS handshakes, panics
	// in handlers). Default: the log package's standard logger.
	ErrorLog *log.Logger
}

func (o Options) withDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&o.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	def(&o.ReadTimeout, DefaultReadTimeout)
	def(&o.WriteTimeout, DefaultWriteTimeout)
	def(&o.IdleTimeout, DefaultIdleTimeout)
	if o.MaxHeaderBytes == 0 {
		o.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if o.MaxConnections == 0 {
		o.MaxConnections = DefaultMaxConnections
	}
	return o
}

// ValidateMaxConnections is the one rule for a configured connection cap:
// zero (the default) or positive.
func ValidateMaxConnections(n int) error {
	if n < 0 {
		return fmt.Errorf("%d must not be negative; omit it for the default of %d", n, DefaultMaxConnections)
	}
	return nil
}

// Server is an http.Server with Keyward's settings whose Serve methods cap
// the connections held open at once (see DefaultMaxConnections). Shutdown,
// Close and the other methods are http.Server's. Its ConnState hook tracks
// idle connections for the cap: do not replace it.
type Server struct {
	*http.Server
	maxConns int
	conns    *connTracker
}

// New builds a server for handler with o's settings (zero fields take the
// defaults). Serve it with its own Serve, ServeTLS or ListenAndServe, which
// add the connection cap.
func New(handler http.Handler, o Options) *Server {
	o = o.withDefaults()
	t := &connTracker{slots: make(chan struct{}, o.MaxConnections), wake: make(chan struct{}, 1)}
	return &Server{
		Server: &http.Server{
			ConnState:         t.connState,
			Handler:           handler,
			ReadHeaderTimeout: o.ReadHeaderTimeout,
			ReadTimeout:       o.ReadTimeout,
			WriteTimeout:      o.WriteTimeout,
			IdleTimeout:       o.IdleTimeout,
			MaxHeaderBytes:    o.MaxHeaderBytes,
			ErrorLog:          o.ErrorLog,
		},
		maxConns: o.MaxConnections,
		conns:    t,
	}
}

// MaxConnections is the server's connection cap.
func (s *Server) MaxConnections() int { return s.maxConns }

// Limit wraps ln so that at most the server's MaxConnections connections
// are open at once: at the cap, Accept closes the longest-idle keep-alive
// connection to make room, or waits while none is idle.
func (s *Server) Limit(ln net.Listener) net.Listener {
	return &limitListener{Listener: ln, t: s.conns, done: make(chan struct{})}
}

// Serve serves on ln with the connection cap. It returns
// http.ErrServerClosed after Shutdown or Close.
func (s *Server) Serve(ln net.Listener) error { return s.Server.Serve(s.Limit(ln)) }

// ServeTLS serves TLS on ln with the connection cap.
func (s *Server) ServeTLS(ln net.Listener, certFile, keyFile string) error {
	return s.Server.ServeTLS(s.Limit(ln), certFile, keyFile)
}

// ListenAndServe listens on the server's Addr and serves with the
// connection cap.
func (s *Server) ListenAndServe() error {
	if s.Addr == "" {
		return errors.New("httpserver: no address to listen on")
	}
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	return s.Serve(ln)
}

// ListenAndServeTLS is not offered: Keyward listens first, then serves
// TLS with ServeTLS.
func (s *Server) ListenAndServeTLS(string, string) error {
	return errors.New("httpserver: use ServeTLS on a listener")
}

// connTracker holds the connection slots of one Server and the idle
// keep-alive connections, which a new client may take the slot of.
type connTracker struct {
	slots chan struct{} // one element per open connection
	wake  chan struct{} // signalled when a connection becomes idle

	mu   sync.Mutex
	idle list.List // of *trackedConn, the longest idle first
}

// trackedConn is a connection holding a slot until it is closed.
type trackedConn struct {
	net.Conn
	t      *connTracker
	idle   atomic.Bool   // elem != nil, read without t.mu
	elem   *list.Element // in t.idle while idle; guarded by t.mu
	closed bool          // guarded by t.mu
}

// Read reads from the connection. The first bytes of a next request end
// its idleness at once: net/http reports StateActive only once the whole
// header is read, and a client that has begun a request keeps its slot.
func (c *trackedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 && c.idle.Load() {
		c.t.mu.Lock()
		c.t.removeIdle(c)
		c.t.mu.Unlock()
	}
	return n, err
}

// Close closes the connection and frees its slot (once).
func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.t.mu.Lock()
	first := !c.closed
	c.closed = true
	c.t.removeIdle(c)
	c.t.mu.Unlock()
	if first {
		<-c.t.slots
	}
	return err
}

// connState is the server's http.Server.ConnState hook: it keeps t.idle
// to the connections waiting for their next request.
func (t *connTracker) connState(c net.Conn, st http.ConnState) {
	if tc, ok := c.(interface{ NetConn() net.Conn }); ok { // *tls.Conn
		c = tc.NetConn()
	}
	tc, ok := c.(*trackedConn)
	if !ok {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if st != http.StateIdle {
		t.removeIdle(tc)
		return
	}
	if tc.elem == nil && !tc.closed {
		tc.elem = t.idle.PushBack(tc)
		tc.idle.Store(true)
		select {
		case t.wake <- struct{}{}:
		default:
		}
	}
}

// removeIdle takes c off the idle list; t.mu is held.
func (t *connTracker) removeIdle(c *trackedConn) {
	if c.elem != nil {
		t.idle.Remove(c.elem)
		c.elem = nil
		c.idle.Store(false)
	}
}

// acquire takes a slot for a new connection: a free one, else that of the
// longest-idle connection, which it closes, else the first to free up or
// become idle. It reports false when done is closed first.
func (t *connTracker) acquire(done <-chan struct{}) bool {
	for {
		select {
		case t.slots <- struct{}{}:
			return true
		default:
		}
		t.mu.Lock()
		var oldest *trackedConn
		if e := t.idle.Front(); e != nil {
			oldest = e.Value.(*trackedConn)
			t.removeIdle(oldest)
		}
		t.mu.Unlock()
		if oldest != nil {
			_ = oldest.Close() // frees its slot
			continue
		}
		select {
		case t.slots <- struct{}{}:
			return true
		case <-t.wake:
		case <-done:
			return false
		}
	}
}

// limitListener is a listener whose connections hold a slot of t.
type limitListener struct {
	net.Listener
	t         *connTracker
	done      chan struct{}
	closeOnce sync.Once
}

// Accept accepts the next connection, then waits for a slot for it (see
// connTracker.acquire), so that a slot is taken from an idle connection
// only for a client that is there.
func (l *limitListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if !l.t.acquire(l.done) {
		_ = c.Close()
		return nil, net.ErrClosed
	}
	return &trackedConn{Conn: c, t: l.t}, nil
}

// Close closes the listener and ends a wait for a slot.
func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}
