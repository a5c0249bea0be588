package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/keyward/keyward/store"
	"github.com/keyward/keyward/store/postgres"
)

// readyTimeout bounds the store ping of /readyz, so that an unreachable
// database fails the probe instead of hanging it (give the probe a
// timeoutSeconds of 2 or more).
const readyTimeout = time.Second

// The PostgreSQL store's settings are postgres.Options (store.dsn,
// store.dsnFile, store.maxConns). Schema migrations are embedded in the
// binary; `keyward serve` applies pending ones at start (under an advisory
// lock, so replicas starting together migrate once), and `keyward migrate`
// applies them alone, e.g. as a deployment's init step.

// resolveStoreDSN returns the PostgreSQL connection string of c (read from
// dsnFile, or the inline dsn), checking that it parses. Empty for bolt. Its
// problems never quote the string: it may hold a password.
func resolveStoreDSN(p *problems, c StoreConfig) string {
	pg, ok := c.Backend.(*postgres.Options)
	if !ok {
		return ""
	}
	path := "store.dsn"
	if pg.DSNFile != "" {
		path = "store.dsnFile"
	}
	dsn := strings.TrimSpace(readSecret(p, path, pg.DSNFile, pg.DSN))
	if dsn == "" {
		return ""
	}
	// ParseConfig does no network I/O. Its error is not quoted: the text
	// of a URL parse error holds the whole string, password included.
	pc, err := pgconn.ParseConfig(dsn)
	if err != nil {
		p.Add(path, "is not a PostgreSQL connection string; write it as %s", postgres.DSNHint)
		return ""
	}
	// No host name holds "@": it is a password's unencoded "@", and the
	// rest of the password would be shown as the host in every error.
	for _, h := range append([]*pgconn.FallbackConfig{{Host: pc.Host}}, pc.Fallbacks...) {
		if strings.Contains(h.Host, "@") {
			p.Add(path, "has an unencoded @ in its user or password; write @ as %%40 in a postgres:// URL")
			return ""
		}
	}
	return dsn
}

// openPostgres opens the PostgreSQL store of a validated config, applying
// pending schema migrations (replicas starting together migrate once; the
// others wait on the advisory lock, then find nothing to do).
func openPostgres(ctx context.Context, c *postgres.Options, dsn string, log *slog.Logger) (*postgres.Store, error) {
	o := *c // the file's settings, with the resolved connection string
	o.DSN, o.DSNFile, o.Logger, o.Migrate = dsn, "", log, true
	st, err := postgres.Open(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("store: %w%s", err, unreachableHint(err))
	}
	return st, nil
}

// unreachableHint explains a store.ErrUnavailable at start.
func unreachableHint(err error) string {
	if !errors.Is(err, store.ErrUnavailable) {
		return ""
	}
	return " (PostgreSQL cannot be reached: check store.dsn or store.dsnFile, the network, and that the server is up)"
}

// pinger is a store that can check its connection (*postgres.Store).
type pinger interface {
	Ping(ctx context.Context) error
}

// storeReady is the store's part of /readyz: a ping for PostgreSQL, nil
// (always ready) for bbolt, which lives in the process.
func storeReady(st store.Store) func(ctx context.Context) error {
	p, ok := st.(pinger)
	if !ok {
		return nil
	}
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, readyTimeout)
		defer cancel()
		if err := p.Ping(ctx); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		return nil
	}
}

// readyAll composes readiness checks for web.Config.Ready: the first error
// wins; nil checks are skipped; with no check left the result is nil
// (always ready).
func readyAll(checks ...func(ctx context.Context) error) func(ctx context.Context) error {
	var cs []func(ctx context.Context) error
	for _, c := range checks {
		if c != nil {
			cs = append(cs, c)
		}
	}
	if len(cs) == 0 {
		return nil
	}
	return func(ctx context.Context) error {
		for _, c := range cs {
			if err := c(ctx); err != nil {
				return err
			}
		}
		return nil
	}
}
