package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyward/keyward/store"
	"github.com/keyward/keyward/store/postgres/pgtest"
)

// storeCounter is the value of the store metric name{backend} that serve's
// registry exports, or -1 when it is missing.
func storeCounter(t *testing.T, inst *instance, name, backend string) float64 {
	t.Helper()
	mfs, err := inst.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "backend" && l.GetValue() == backend {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return -1
}

// serve's /metrics registry counts the store's write transactions and
// commits, for bbolt and PostgreSQL: the key set written at start is
// counted, and one more write adds exactly one.
func TestStoreMetrics(t *testing.T) {
	tests := []struct {
		backend, store string
		synced         bool
	}{
		{"bolt", "{path: %s}", true},
		{"postgres", "{type: postgres, dsn: '%s'}", false},
	}
	for _, tt := range tests {
		t.Run(tt.backend, func(t *testing.T) {
			dir := t.TempDir()
			arg := filepath.Join(dir, "keyward.db")
			if tt.backend == "postgres" {
				arg = pgtest.SchemaDSN(t)
			}
			cfgPath := writeFile(t, dir, "keyward.yaml", fmt.Sprintf(`issuer: http://127.0.0.1:5556
sessionSecretFile: %s
store: `+tt.store+`
keys: {algorithm: ES256}
upstreams:
  - {id: corp, issuer: %s, clientID: keyward, clientSecret: upstream-secret}
clients:
  - {id: app, secret: app-secret, redirectURIs: ["http://127.0.0.1:3000/callback"]}
`, writeFile(t, dir, "session-secret", strings.Repeat("s", 32)+"\n"), arg, unreachableIssuer(t)))
			cfg, sec, err := loadConfigFile(cfgPath)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			inst, err := build(ctx, cfg, sec, slog.New(slog.DiscardHandler), http.DefaultTransport, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer inst.close()

			writes := storeCounter(t, inst, "keyward_store_write_transactions_total", tt.backend)
			commits := storeCounter(t, inst, "keyward_store_commits_total", tt.backend)
			if writes < 1 || commits < 1 {
				t.Fatalf("after start: %s write transactions %v, commits %v; want ≥ 1 each (the key set was written)", tt.backend, writes, commits)
			}
			if err := inst.store.CreateSession(ctx, store.Session{ID: "sess-1", Subject: "alice"}); err != nil {
				t.Fatal(err)
			}
			if got := storeCounter(t, inst, "keyward_store_write_transactions_total", tt.backend); got != writes+1 {
				t.Errorf("write transactions after one write = %v, want %v", got, writes+1)
			}
			if got := storeCounter(t, inst, "keyward_store_commits_total", tt.backend); got != commits+1 {
				t.Errorf("commits after one lone write = %v, want %v", got, commits+1)
			}
			synced := storeCounter(t, inst, "keyward_store_synced_commits_total", tt.backend)
			if tt.synced && synced != commits+1 {
				t.Errorf("synced commits = %v, want %v (fsync is on)", synced, commits+1)
			}
			if !tt.synced && synced != -1 {
				t.Errorf("synced commits exported for %s: %v", tt.backend, synced)
			}
		})
	}
}
