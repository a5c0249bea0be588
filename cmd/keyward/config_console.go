package main

import (
	"log/slog"
	"net/http"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/cmd/config"
	"github.com/keyward/keyward/keys"
	"github.com/keyward/keyward/store"
	"github.com/keyward/keyward/web/console"
)

// validateConsole checks the console section (web/console owns it) and
// that no configured client takes the console's client id.
func (c *Config) validateConsole(p *config.Problems) {
	p.AddAll("console", c.Console.Validate())
	if !c.Console.Enabled {
		return
	}
	if i := slices.IndexFunc(c.Clients, func(cl broker.Client) bool { return cl.ID == c.Console.ClientID }); i >= 0 {
		p.Add("console.clientID", "%q is also clients[%d].id; Keyward registers the console's client itself: rename one of them", c.Console.ClientID, i)
	}
}

// consoleClient is the console's own client registration, or none.
func consoleClient(cfg *Config) []broker.Client {
	if !cfg.Console.Enabled {
		return nil
	}
	cl := cfg.Console.Client(cfg.Issuer)
	cl.SetDefaults()
	return []broker.Client{cl}
}

// buildConsole builds the console when enabled (nil otherwise); its
// sign-in reaches the broker through loopback, which the caller binds to
// the web handler once that exists.
func buildConsole(cfg *Config, sec Secrets, b *broker.Broker, k *keys.Manager, st store.Store, reg prometheus.Gatherer, log *slog.Logger, loopback *console.Loopback) (http.Handler, error) {
	if !cfg.Console.Enabled {
		return nil, nil
	}
	c, err := console.New(console.Options{
		Config: cfg.Console, Issuer: cfg.Issuer, Admin: b, Keys: k,
		Secret:    derive(sec.SessionSecret, "keyward console v1"),
		Transport: loopback, Ready: storeReady(st), Metrics: reg, Version: version, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}
