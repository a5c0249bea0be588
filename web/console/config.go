package console

import (
	"strings"
	"time"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/cmd/config"
)

// Config is the `console:` section of keyward.yaml; this package owns its
// fields, defaults (SetDefaults) and validation (Validate).
type Config struct {
	// Enabled serves the console under /console. Default: false.
	Enabled bool `yaml:"enabled,omitempty"`
	// AdminGroups: members of any of these upstream groups may act
	// (deprovision, reinstate, end sessions, rotate keys). Required when
	// enabled.
	AdminGroups []string `yaml:"adminGroups,omitempty"`
	// HelpdeskGroups: members may search and view, not act.
	HelpdeskGroups []string `yaml:"helpdeskGroups,omitempty"`
	// ClientID is the console's OAuth client at its own broker, which
	// Keyward registers itself (Client). Default: keyward-console.
	ClientID string `yaml:"clientID,omitempty"`
	// IdleTimeout ends a staff session unused this long. Default: 15m.
	IdleTimeout config.Duration `yaml:"idleTimeout,omitempty"`
	// MaxAge ends a staff session this long after sign-in, however used;
	// signing in again re-checks the groups. Default: 8h.
	MaxAge config.Duration `yaml:"maxAge,omitempty"`
}

// DefaultClientID is Config.ClientID's default.
const DefaultClientID = "keyward-console"

// SetDefaults fills the zero fields.
func (c *Config) SetDefaults() {
	if c.ClientID == "" {
		c.ClientID = DefaultClientID
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = config.Duration(15 * time.Minute)
	}
	if c.MaxAge == 0 {
		c.MaxAge = config.Duration(8 * time.Hour)
	}
}

// Validate reports the problems of the section (after SetDefaults), each
// a *config.FieldError named by its path in the section. No I/O.
func (c Config) Validate() error {
	if !c.Enabled {
		return nil
	}
	var p config.Problems
	if len(c.AdminGroups) == 0 {
		p.Add("adminGroups", "name at least one upstream group whose members administer Keyward (for example keyward-admins)")
	}
	p.CheckList("adminGroups", c.AdminGroups, nil)
	p.CheckList("helpdeskGroups", c.HelpdeskGroups, nil)
	if strings.TrimSpace(c.ClientID) == "" || strings.ContainsAny(c.ClientID, " \t") {
		p.Add("clientID", "%q is not a client id; remove the field for the default %s", c.ClientID, DefaultClientID)
	}
	if d := time.Duration(c.IdleTimeout); d < time.Minute || d > time.Hour {
		p.Add("idleTimeout", "%s is outside 1m…1h; an idle staff session must end soon", c.IdleTimeout)
	}
	if c.MaxAge < c.IdleTimeout || time.Duration(c.MaxAge) > 24*time.Hour {
		p.Add("maxAge", "%s must be at least idleTimeout (%s) and at most 24h", c.MaxAge, c.IdleTimeout)
	}
	return p.Err()
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
