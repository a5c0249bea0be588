package broker

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyward/keyward/cmd/config"
)

// keyward.yaml's tokens section, with its defaults, gives a Config the same
// lifetimes and claims as Config's own defaults: one set of defaults.
func TestTokensConfigDefaultsAgreeWithConfig(t *testing.T) {
	var tc TokensConfig
	tc.SetDefaults()
	var fromFile Config
	tc.Apply(&fromFile)
	var own Config
	own.withDefaults()
	got := []any{fromFile.AccessTokenTTL, fromFile.IDTokenTTL, fromFile.AuthCodeTTL, fromFile.RefreshTokenIdleTTL,
		fromFile.RefreshTokenMaxTTL, fromFile.RefreshGracePeriod, fromFile.SessionTTL, fromFile.AccessTokenClaims}
	want := []any{own.AccessTokenTTL, own.IDTokenTTL, own.AuthCodeTTL, own.RefreshTokenIdleTTL,
		own.RefreshTokenMaxTTL, own.RefreshGracePeriod, own.SessionTTL, own.AccessTokenClaims}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tokens section defaults (-Config's +file's):\n%s", diff)
	}
	if err := tc.Validate(); err != nil {
		t.Errorf("Validate(defaults) = %v", err)
	}
	if got := tc.MaxSignedTTL(); got != 15*time.Minute {
		t.Errorf("MaxSignedTTL() = %s, want 15m", got)
	}
}

func TestTokensConfigValidatePaths(t *testing.T) {
	tc := TokensConfig{AccessTokenTTL: config.Duration(2 * time.Hour), RefreshTokenIdleTTL: config.Duration(800 * time.Hour)}
	tc.SetDefaults()
	var got []string
	for _, e := range config.Split(tc.Validate()) {
		got = append(got, e.Error())
	}
	want := []string{
		"accessTokenTTL: 2h is too long; use at most 1h",
		"refreshTokenIdleTTL: 800h is longer than tokens.refreshTokenMaxTTL (720h); lower it or raise refreshTokenMaxTTL",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Validate() (-want +got):\n%s", diff)
	}
}
