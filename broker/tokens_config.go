package broker

import (
	"time"

	"github.com/keyward/keyward/cmd/config"
)

// TokensConfig is keyward.yaml's tokens section: the lifetimes of tokens
// and sessions, and the identity claims of access tokens. SetDefaults fills
// it, Validate checks it, Apply puts it into a Config.
type TokensConfig struct {
	// AccessTokenTTL: at most 1h. Default: DefaultAccessTokenTTL.
	AccessTokenTTL config.Duration `yaml:"accessTokenTTL,omitempty"`
	// IDTokenTTL: at most 24h. Default: DefaultIDTokenTTL.
	IDTokenTTL config.Duration `yaml:"idTokenTTL,omitempty"`
	// AuthCodeTTL: at most 10m. Default: DefaultAuthCodeTTL.
	AuthCodeTTL config.Duration `yaml:"authCodeTTL,omitempty"`
	// RefreshTokenIdleTTL ends a refresh family unused this long; at most
	// RefreshTokenMaxTTL. Default: DefaultRefreshTokenIdleTTL.
	RefreshTokenIdleTTL config.Duration `yaml:"refreshTokenIdleTTL,omitempty"`
	// RefreshTokenMaxTTL ends a refresh family this long after sign-in.
	// Default: DefaultRefreshTokenMaxTTL.
	RefreshTokenMaxTTL config.Duration `yaml:"refreshTokenMaxTTL,omitempty"`
	// RefreshGracePeriod lets a just-rotated refresh token be used again by
	// a racing client; at most 1m. Default: DefaultRefreshGracePeriod.
	RefreshGracePeriod config.Duration `yaml:"refreshGracePeriod,omitempty"`
	// SessionTTL is the lifetime of the single sign-on session.
	// Default: DefaultSessionTTL.
	SessionTTL config.Duration `yaml:"sessionTTL,omitempty"`
	// Claims are the identity claims copied into access tokens: from
	// IdentityClaims, or a name an upstream's claimMapping.claims copies
	// (a rule across sections, which the file's loader checks).
	// Default: DefaultAccessTokenClaims.
	Claims []string `yaml:"claims,omitempty"`
}

// IdentityClaims are the claims Keyward copies from an identity into its
// tokens when the scopes allow.
var IdentityClaims = []string{"email", "email_verified", "name", "preferred_username", "groups"}

// SetDefaults fills the zero fields (an empty claims list counts as unset).
func (t *TokensConfig) SetDefaults() {
	def := func(d *config.Duration, v time.Duration) {
		if *d == 0 {
			*d = config.Duration(v)
		}
	}
	def(&t.AccessTokenTTL, DefaultAccessTokenTTL)
	def(&t.IDTokenTTL, DefaultIDTokenTTL)
	def(&t.AuthCodeTTL, DefaultAuthCodeTTL)
	def(&t.RefreshTokenIdleTTL, DefaultRefreshTokenIdleTTL)
	def(&t.RefreshTokenMaxTTL, DefaultRefreshTokenMaxTTL)
	def(&t.RefreshGracePeriod, DefaultRefreshGracePeriod)
	def(&t.SessionTTL, DefaultSessionTTL)
	if len(t.Claims) == 0 {
		t.Claims = DefaultAccessTokenClaims()
	}
}

// Validate reports the lifetimes that are not positive or too long, and an
// idle lifetime above the maximum, each a *config.FieldError named by its
// path in the section. It does no I/O.
func (t TokensConfig) Validate() error {
	var p config.Problems
	p.CheckDuration("accessTokenTTL", t.AccessTokenTTL, time.Hour)
	p.CheckDuration("idTokenTTL", t.IDTokenTTL, 24*time.Hour)
	p.CheckDuration("authCodeTTL", t.AuthCodeTTL, 10*time.Minute)
	p.CheckDuration("refreshTokenIdleTTL", t.RefreshTokenIdleTTL, 0)
	p.CheckDuration("refreshTokenMaxTTL", t.RefreshTokenMaxTTL, 0)
	p.CheckDuration("refreshGracePeriod", t.RefreshGracePeriod, time.Minute)
	p.CheckDuration("sessionTTL", t.SessionTTL, 0)
	if t.RefreshTokenIdleTTL > t.RefreshTokenMaxTTL {
		p.Add("refreshTokenIdleTTL", "%s is longer than tokens.refreshTokenMaxTTL (%s); lower it or raise refreshTokenMaxTTL",
			t.RefreshTokenIdleTTL, t.RefreshTokenMaxTTL)
	}
	return p.Err()
}

// MaxSignedTTL is the longest lifetime of a signed token: how long a
// retired key must stay published.
func (t TokensConfig) MaxSignedTTL() time.Duration {
	return max(time.Duration(t.AccessTokenTTL), time.Duration(t.IDTokenTTL))
}

// Apply sets c's token and session lifetimes and access-token claims from t.
func (t TokensConfig) Apply(c *Config) {
	c.AccessTokenTTL = time.Duration(t.AccessTokenTTL)
	c.IDTokenTTL = time.Duration(t.IDTokenTTL)
	c.AuthCodeTTL = time.Duration(t.AuthCodeTTL)
	c.RefreshTokenIdleTTL = time.Duration(t.RefreshTokenIdleTTL)
	c.RefreshTokenMaxTTL = time.Duration(t.RefreshTokenMaxTTL)
	c.RefreshGracePeriod = time.Duration(t.RefreshGracePeriod)
	c.SessionTTL = time.Duration(t.SessionTTL)
	c.AccessTokenClaims = t.Claims
}
