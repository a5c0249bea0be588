package keys

import (
	"time"

	"github.com/keyward/keyward/cmd/config"
)

// This file holds the defaults and the operator's rules for the fields of
// Config that keyward.yaml sets (its keys section). New applies the same
// defaults and checks only what it needs to run.

// SetDefaults fills the file's fields that are zero: Algorithm RS256,
// AccessTokenAlgorithm Algorithm, RotationPeriod DefaultRotationPeriod,
// JWKSMaxAge DefaultJWKSMaxAge.
func (cfg *Config) SetDefaults() {
	if cfg.Algorithm == "" {
		cfg.Algorithm = RS256
	}
	if cfg.AccessTokenAlgorithm == "" {
		cfg.AccessTokenAlgorithm = cfg.Algorithm
	}
	if cfg.RotationPeriod == 0 {
		cfg.RotationPeriod = config.Duration(DefaultRotationPeriod)
	}
	if cfg.JWKSMaxAge == 0 {
		cfg.JWKSMaxAge = config.Duration(DefaultJWKSMaxAge)
	}
}

// minJWKSMaxAge: verifiers (keyward verify, go-oidc and most gateways)
// cache a JWKS for at least a minute whatever max-age says.
const minJWKSMaxAge = time.Minute

// Validate reports the problems of the file's fields (after SetDefaults),
// each a *config.FieldError named by its path in the keys section. It does
// no I/O.
func (cfg Config) Validate() error {
	var p config.Problems
	if !validAlgorithm(cfg.Algorithm) {
		p.Add("algorithm", "%q is not supported; use RS256, ES256 or EdDSA", cfg.Algorithm)
	}
	if cfg.AccessTokenAlgorithm != cfg.Algorithm && !validAlgorithm(cfg.AccessTokenAlgorithm) { // else reported as algorithm
		p.Add("accessTokenAlgorithm", "%q is not supported; use RS256 (every gateway accepts it), ES256 or EdDSA (both sign about 20× faster)", cfg.AccessTokenAlgorithm)
	}
	if cfg.RotationPeriod <= 0 {
		p.Add("rotationPeriod", "%s must be positive", cfg.RotationPeriod)
	}
	if cfg.JWKSMaxAge <= 0 {
		p.Add("jwksMaxAge", "%s must be positive", cfg.JWKSMaxAge)
	}
	if cfg.JWKSMaxAge > 0 && time.Duration(cfg.JWKSMaxAge) < minJWKSMaxAge {
		p.Add("jwksMaxAge", "%s is below the 1m that verifiers cache a JWKS at the least; use 1m or more", cfg.JWKSMaxAge)
	}
	if cfg.JWKSMaxAge > 0 && cfg.RotationPeriod < 2*cfg.JWKSMaxAge {
		p.Add("rotationPeriod", "%s is shorter than twice keys.jwksMaxAge (%s), so a new key could sign before caches know it; use at least %s or lower jwksMaxAge",
			cfg.RotationPeriod, cfg.JWKSMaxAge, 2*cfg.JWKSMaxAge)
	}
	return p.Err()
}
