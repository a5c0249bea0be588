package main

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestValidateConsole(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		want    []string
		wantMsg string
	}{
		{"enabled without a group", "console:\n  enabled: true\n", []string{"console.adminGroups"}, "name at least one upstream group"},
		{"repeated group", "console:\n  enabled: true\n  adminGroups: [admins, admins]\n", []string{"console.adminGroups[1]"}, "listed twice"},
		{"idle timeout too long", "console:\n  enabled: true\n  adminGroups: [admins]\n  idleTimeout: 2h\n", []string{"console.idleTimeout"}, "outside 1m…1h"},
		{"client id taken", "console:\n  enabled: true\n  adminGroups: [admins]\n  clientID: grafana\n", []string{"console.clientID"}, `"grafana" is also clients[0].id`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustParse(t, validYAML+tt.yaml)
			err := c.Validate()
			if diff := cmp.Diff(tt.want, errorPaths(t, err)); diff != "" {
				t.Fatalf("Validate() problem paths (-want +got):\n%s", diff)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("Validate() = %q, want it to say %q", err, tt.wantMsg)
			}
		})
	}
	// Enabled with a group: valid, and the console's client is registered.
	c := mustParse(t, validYAML+"console:\n  enabled: true\n  adminGroups: [admins]\n")
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate() = %v, want nil", err)
	}
	cl := consoleClient(c)
	if len(cl) != 1 || cl[0].ID != "keyward-console" || !cl[0].Public || cl[0].RedirectURIs[0] != c.Issuer+"/console/callback" {
		t.Errorf("consoleClient() = %+v, want the public keyward-console client with the issuer's /console/callback", cl)
	}
}
