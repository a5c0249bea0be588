package helmchart

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/keyward/keyward/test/internal/program"
)

const alertRules = "../../deploy/prometheus/keyward-alerts.yaml"

// TestAlertRulesPassPromtool checks the shipped alert rules with
// Prometheus's own checker (syntax, PromQL, templates). That the rules
// name only series Keyward exports is cmd/keyward's
// TestAlertsAndDashboardNameExportedSeries.
func TestAlertRulesPassPromtool(t *testing.T) {
	promtool := program.Find(t, "promtool", "apt-get install --no-install-recommends prometheus")
	program.Reads(t, alertRules)
	out, err := exec.CommandContext(t.Context(), promtool, "check", "rules", alertRules).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules %s: %v\n%s", alertRules, err, out)
	}
	if !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("promtool check rules: no SUCCESS in\n%s", out)
	}
}
