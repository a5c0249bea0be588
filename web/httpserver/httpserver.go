package httpserver

import (
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"time"

	"golang.org/x/net/netutil"
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
	// once; further clients wait in the kernel's accept queue until one
	// closes. Each held connection costs a file descriptor and about 28 KB
	// (docs/performance.md), so about 115 MB at the default.
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
// the connections held open at once. Shutdown, Close and the other methods
// are http.Server's.
type Server struct {
	*http.Server
	maxConns int
}

// New builds a server for handler with o's settings (zero fields take the
// defaults). Serve it with its own Serve, ServeTLS or ListenAndServe, which
// add the connection cap.
func New(handler http.Handler, o Options) *Server {
	o = o.withDefaults()
	return &Server{
		Server: &http.Server{
			Handler:           handler,
			ReadHeaderTimeout: o.ReadHeaderTimeout,
			ReadTimeout:       o.ReadTimeout,
			WriteTimeout:      o.WriteTimeout,
			IdleTimeout:       o.IdleTimeout,
			MaxHeaderBytes:    o.MaxHeaderBytes,
			ErrorLog:          o.ErrorLog,
		},
		maxConns: o.MaxConnections,
	}
}

// MaxConnections is the server's connection cap.
func (s *Server) MaxConnections() int { return s.maxConns }

// Limit wraps ln so that at most the server's MaxConnections connections
// are open at once; Accept waits while that many are.
func (s *Server) Limit(ln net.Listener) net.Listener {
	return netutil.LimitListener(ln, s.maxConns)
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
