package console

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/keyward/keyward/broker"
)

// Config is the `console:` section of keyward.yaml.
type Config struct {
	// Enabled serves the console under /console. Default: false.
	Enabled bool `yaml:"enabled,omitempty"`
	// AdminGroups: members of any of these upstream groups may act
	// (deprovision, reinstate, end sessions, rotate keys). Required when
	// enabled.
	AdminGroups []string `yaml:"adminGroups,omitempty"`
	// HelpdeskGroups: members may search and view, not act.
	HelpdeskGroups []string `yaml:"helpdeskGroups,omitempty"`
	// ClientID is the console's OAuth client at its own broker, registered
	// by Keyward itself (Client). Default: keyward-console.
	ClientID string `yaml:"clientID,omitempty"`
	// IdleTimeout ends a staff session unused this long. Default: 15m.
	IdleTimeout time.Duration `yaml:"idleTimeout,omitempty"`
	// MaxAge ends a staff session this long after sign-in, whatever its
	// use; signing in again re-checks the groups. Default: 8h.
	MaxAge time.Duration `yaml:"maxAge,omitempty"`
}

// DefaultClientID is Config.ClientID's default.
const DefaultClientID = "keyward-console"

// SetDefaults fills the zero fields.
func (c *Config) SetDefaults() {
	if c.ClientID == "" {
		c.ClientID = DefaultClientID
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 15 * time.Minute
	}
	if c.MaxAge == 0 {
		c.MaxAge = 8 * time.Hour
	}
}

// Validate reports every problem, each as "path.field: what to do", path
// being where the section sits in the file (normally "console").
func (c Config) Validate(path string) []string {
	if !c.Enabled {
		return nil
	}
	var p []string
	if len(c.AdminGroups) == 0 {
		p = append(p, path+".adminGroups: name at least one upstream group whose members administer Keyward (for example keyward-admins)")
	}
	for i, g := range slices.Concat(c.AdminGroups, c.HelpdeskGroups) {
		if strings.TrimSpace(g) == "" {
			field := fmt.Sprintf("adminGroups[%d]", i)
			if i >= len(c.AdminGroups) {
				field = fmt.Sprintf("helpdeskGroups[%d]", i-len(c.AdminGroups))
			}
			p = append(p, path+"."+field+": empty group name; remove it or name a group")
		}
	}
	if c.IdleTimeout < time.Minute || c.IdleTimeout > time.Hour {
		p = append(p, fmt.Sprintf("%s.idleTimeout: %s is outside 1m…1h; a staff session left open must end soon", path, c.IdleTimeout))
	}
	if c.MaxAge < c.IdleTimeout || c.MaxAge > 24*time.Hour {
		p = append(p, fmt.Sprintf("%s.maxAge: %s must be at least idleTimeout and at most 24h", path, c.MaxAge))
	}
	return p
}

// CallbackPath is where the broker sends staff back after sign-in.
const CallbackPath = "/console/callback"

// Client is the console's registration at its own broker: a public client
// (PKCE, no secret) whose only redirect URI is issuer + CallbackPath.
func (c Config) Client(issuer string) broker.Client {
	return broker.Client{
		ID:           c.ClientID,
		Name:         "Keyward console",
		Public:       true,
		RedirectURIs: []string{strings.TrimSuffix(issuer, "/") + CallbackPath},
		GrantTypes:   []string{"authorization_code"},
		Scopes:       []string{"openid", "email", "profile", "groups"},
	}
}
