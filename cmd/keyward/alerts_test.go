package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"
)

// TestAlertsAndDashboardNameExportedSeries reads deploy/prometheus/keyward-alerts.yaml
// and deploy/grafana/keyward-dashboard.json and checks that every keyward_
// series their expressions name is registered by the broker (as build
// assembles it) or by the verifier.
func TestAlertsAndDashboardNameExportedSeries(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "deploy", "prometheus", "keyward-alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	if err := dec.Decode(&file); err != nil {
		t.Fatalf("keyward-alerts.yaml: %v", err)
	}

	dir := t.TempDir()
	cfg, sec, err := loadConfigFile(writeFile(t, dir, "keyward.yaml", fmt.Sprintf(`issuer: http://127.0.0.1:5556
sessionSecretFile: %s
store: {path: %s}
upstreams:
  - {id: corp, issuer: %s, clientID: keyward, clientSecret: upstream-secret}
clients:
  - {id: app, secret: app-secret, redirectURIs: ["http://127.0.0.1:3000/callback"]}
`, writeFile(t, dir, "session-secret", strings.Repeat("s", 32)+"\n"), filepath.Join(dir, "keyward.db"), unreachableIssuer(t))))
	if err != nil {
		t.Fatal(err)
	}
	inst, err := build(t.Context(), cfg, sec, slog.New(slog.DiscardHandler), http.DefaultTransport, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.close()
	verifier := prometheus.NewRegistry()
	registerRevocationMetrics(verifier, nil) // reads the verifier only at scrapes
	registerVerifierMetrics(verifier, nil)   // likewise
	instrumentVerify(http.NotFoundHandler(), "", verifier)

	series := regexp.MustCompile(`\bkeyward_[a-z0-9_]+`)
	check := func(what, expr string) {
		names := series.FindAllString(expr, -1)
		if len(names) == 0 {
			t.Errorf("%s names no keyward series: %s", what, expr)
		}
		for _, name := range slices.Compact(slices.Sorted(slices.Values(names))) {
			if !registered(inst.metrics, name) && !registered(verifier, name) {
				t.Errorf("%s: %s is not a series keyward serve or keyward verify exports", what, name)
			}
		}
	}
	rules := 0
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			rules++
			check("alert "+r.Alert, r.Expr)
		}
	}
	if rules < 5 {
		t.Errorf("keyward-alerts.yaml has %d rules, want the documented set", rules)
	}

	raw, err = os.ReadFile(filepath.Join("..", "..", "deploy", "grafana", "keyward-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dashboard struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dashboard); err != nil {
		t.Fatalf("keyward-dashboard.json: %v", err)
	}
	targets := 0
	for _, p := range dashboard.Panels {
		for _, tg := range p.Targets {
			targets++
			check("dashboard panel "+p.Title, tg.Expr)
		}
	}
	if targets < 10 {
		t.Errorf("keyward-dashboard.json has %d queries, want its panels", targets)
	}
}

// registered reports whether reg has a collector exporting name (a
// histogram's _bucket, _sum and _count count as its name): registering a
// probe of that name then fails.
func registered(reg prometheus.Registerer, name string) bool {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && registered(reg, base) {
			return true
		}
	}
	probe := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: "probe"})
	if err := reg.Register(probe); err != nil {
		return true
	}
	reg.Unregister(probe)
	return false
}
