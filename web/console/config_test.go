package console

import (
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/cmd/config"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		want []string // substrings of the problems, by path
	}{
		{"disabled needs nothing", func(c *Config) { c.Enabled = false; c.AdminGroups = nil }, nil},
		{"defaults with a group", func(*Config) {}, nil},
		{"no admin group", func(c *Config) { c.AdminGroups = nil }, []string{"adminGroups: name at least one"}},
		{"blank group", func(c *Config) { c.HelpdeskGroups = []string{" "} }, []string{"helpdeskGroups[0]"}},
		{"idle too long", func(c *Config) { c.IdleTimeout = config.Duration(2 * time.Hour) }, []string{"idleTimeout: 2h"}},
		{"max age below idle", func(c *Config) { c.MaxAge = config.Duration(time.Minute) }, []string{"maxAge"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{Enabled: true, AdminGroups: []string{"admins"}}
			tt.edit(&c)
			c.SetDefaults()
			err := c.Validate()
			problems := config.Split(err)
			if len(problems) != len(tt.want) {
				t.Fatalf("Validate() = %v, want %d problems %q", err, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(problems[i].Error(), w) {
					t.Errorf("problem %d = %q, want it to contain %q", i, problems[i], w)
				}
			}
		})
	}
}
