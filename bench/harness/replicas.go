package harness

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync/atomic"

	"github.com/jackc/pgx/v5"

	"github.com/keyward/keyward/store"
	"github.com/keyward/keyward/store/postgres"
	"github.com/keyward/keyward/test/fakeidp"
)

// addrListener accepts on a replica's own listener but reports the first
// replica's address, so that every replica has the same issuer URL.
type addrListener struct {
	net.Listener
	addr net.Addr
}

func (l addrListener) Addr() net.Addr { return l.addr }

// openStore opens the broker store of opts: nil for bbolt (brokertest opens
// the file), else a PostgreSQL store on opts.Postgres with its own pool,
// migrated at open as `keyward serve` does.
func openStore(ctx context.Context, opts Options) (store.Store, error) {
	if opts.Postgres == "" {
		return nil, nil
	}
	st, err := postgres.Open(ctx, postgres.Options{DSN: opts.Postgres, MaxConns: opts.MaxConns, Migrate: true})
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return st, nil
}

// startReplicas starts the replicas after the first, each with its own
// store pool, listener and trust rules, all with the first one's issuer.
func (e *Env) startReplicas(ctx context.Context, opts Options, upstream *fakeidp.Server, first net.Addr) error {
	for i := 1; i < opts.Replicas; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("listen: %w", err)
		}
		b, err := e.startBroker(ctx, opts, addrListener{Listener: ln, addr: first}, upstream)
		if err != nil {
			return fmt.Errorf("replica %d: %w", i, err)
		}
		e.replicas = append(e.replicas, b)
		e.replicaHosts = append(e.replicaHosts, ln.Addr().String())
	}
	return nil
}

// RoundRobin returns tr sending each request for the broker to the next
// replica in turn, as a load balancer without sticky sessions does; other
// hosts (the upstream) are left alone. With one replica it returns tr.
func (e *Env) RoundRobin(tr http.RoundTripper) http.RoundTripper {
	if len(e.replicaHosts) < 2 {
		return tr
	}
	u, _ := url.Parse(e.BrokerURL)
	return &roundRobin{next: tr, issuerHost: u.Host, hosts: e.replicaHosts}
}

type roundRobin struct {
	next       http.RoundTripper
	issuerHost string
	hosts      []string
	n          atomic.Uint64
}

func (r *roundRobin) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host != r.issuerHost {
		return r.next.RoundTrip(req)
	}
	out := req.Clone(req.Context())
	out.URL.Host = r.hosts[r.n.Add(1)%uint64(len(r.hosts))]
	out.Host = r.issuerHost
	return r.next.RoundTrip(out)
}

// CreateDatabase creates an empty database next to the one adminDSN (a
// postgres:// URL) names and returns its URL; drop removes it.
func CreateDatabase(ctx context.Context, adminDSN, name string) (dsn string, drop func(context.Context) error, err error) {
	u, err := url.Parse(adminDSN)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", nil, fmt.Errorf("the PostgreSQL DSN must be a postgres:// URL")
	}
	conn, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		return "", nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer conn.Close(ctx)
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident); err != nil {
		return "", nil, fmt.Errorf("drop database %s: %w", name, err)
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		return "", nil, fmt.Errorf("create database %s: %w", name, err)
	}
	u.Path = "/" + name
	drop = func(ctx context.Context) error {
		c, err := pgx.Connect(ctx, adminDSN)
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		_, err = c.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)")
		return err
	}
	return u.String(), drop, nil
}

// closeReplicas stops the replicas after the first and closes every
// PostgreSQL store.
func (e *Env) closeReplicas() {
	for _, b := range e.replicas {
		b.Close()
	}
	for _, st := range e.stores {
		_ = st.Close()
	}
}
