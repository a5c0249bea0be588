package broker

import "time"

// The defaults of Config and Client: their one home. Config.withDefaults
// and the client registry apply them, and so does keyward.yaml's loader
// (cmd/keyward) for its tokens and clients sections.
const (
	DefaultAccessTokenTTL      = 5 * time.Minute
	DefaultIDTokenTTL          = 15 * time.Minute
	DefaultAuthCodeTTL         = time.Minute
	DefaultRefreshTokenIdleTTL = 168 * time.Hour
	DefaultRefreshTokenMaxTTL  = 720 * time.Hour
	DefaultRefreshGracePeriod  = 10 * time.Second
	DefaultSessionTTL          = 24 * time.Hour
	// DefaultLoginPerMinute and DefaultLoginBurst are LoginLimits' PerMinute
	// and Burst (limits.loginAttemptsPerMinute and …Burst in keyward.yaml).
	DefaultLoginPerMinute = 60
	DefaultLoginBurst     = 30
)

// DefaultAccessTokenClaims are the identity claims copied into access
// tokens when none are configured (an empty list counts as none).
func DefaultAccessTokenClaims() []string {
	return []string{"email", "name", "groups", "preferred_username"}
}

// DefaultGrantTypes are a client's grant types when it lists none.
func DefaultGrantTypes() []string { return []string{"authorization_code", "refresh_token"} }

// DefaultClientScopes are the scopes a client may request when it lists
// none.
func DefaultClientScopes() []string {
	return []string{"openid", "email", "profile", "groups", "offline_access"}
}
