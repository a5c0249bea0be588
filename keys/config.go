package keys

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/keyward/keyward/cmd/config"
	"github.com/keyward/keyward/store"
)

// The supported signing algorithms.
const (
	RS256 = "RS256" // RSA 2048, PKCS #1 v1.5 with SHA-256
	ES256 = "ES256" // ECDSA P-256 with SHA-256
	EdDSA = "EdDSA" // Ed25519
)

// Store is the part of store.Store that keys uses (the package's keyStore
// boundary). store.Store satisfies it.
//
// GetKeySet returns store.ErrNotFound before the first UpdateKeySet.
// UpdateKeySet runs updater on the stored set (the zero KeySet when none is
// stored) inside one write transaction, stores its result atomically and bumps
// KeySet.Version; an error returned by updater aborts the write and is
// returned unchanged. The updater may run more than once and never calls the
// store.
type Store interface {
	GetKeySet(ctx context.Context) (store.KeySet, error)
	UpdateKeySet(ctx context.Context, updater func(store.KeySet) (store.KeySet, error)) error
}

// Config configures a Manager. Zero values take the documented defaults.
// It is also keyward.yaml's keys section: the fields with yaml tags are read
// from the file (SetDefaults and Validate in config_yaml.go); cmd sets the
// others when it builds the manager.
type Config struct {
	// Store holds the key set. Required.
	Store Store `yaml:"-"`
	// Algorithm is the key set's default algorithm: RS256, ES256 or EdDSA.
	// It signs ID tokens (and back-channel logout tokens) of clients that
	// name no idTokenSignedResponseAlg, and access tokens unless
	// AccessTokenAlgorithm names another. Default: RS256, which OpenID
	// Connect requires as the ID-token default.
	//
	// Each configured algorithm has its own chain of keys (next → current →
	// retired) in the one key set and JWKS. A change takes effect one JWKS
	// max-age later: the new algorithm's first key is published at once and
	// signs from then on; until then the keys that already sign go on.
	Algorithm string `yaml:"algorithm,omitempty"`
	// AccessTokenAlgorithm signs access tokens: RS256, ES256 or EdDSA.
	// Default: Algorithm (RS256). With another algorithm than Algorithm the
	// key set holds keys of both. Every verifier of access tokens must
	// accept it (web/verify's default algorithms accept all three).
	// Cost per token on this project's 2-core benchmark VM (go test ./keys
	// -run x -bench Sign, docs/performance.md "Signing algorithms"): RS256
	// signs in about 1 ms and verifies in about 55 µs; ES256 signs in about
	// 50 µs and verifies in about 80 µs; EdDSA signs in about 40 µs and
	// verifies in about 70 µs.
	AccessTokenAlgorithm string `yaml:"accessTokenAlgorithm,omitempty"`
	// RotationPeriod is how long a key signs. Default: 24h.
	RotationPeriod config.Duration `yaml:"rotationPeriod,omitempty"`
	// MaxTokenTTL is the longest lifetime of any token signed with these keys;
	// a retired key stays published this long, plus a leeway of
	// 1m + ReloadInterval (clock skew, and other replicas that keep signing
	// with it until they next read the store). Required. Not in YAML: cmd
	// derives it from the token lifetimes.
	MaxTokenTTL time.Duration `yaml:"-"`
	// JWKSMaxAge caps the Cache-Control max-age of the JWKS. Default: 1h; never
	// more than RotationPeriod/2.
	JWKSMaxAge config.Duration `yaml:"jwksMaxAge,omitempty"`
	// EncryptionKeyFile (keys.encryptionKeyFile) names the file holding
	// EncryptionKey: 32 raw bytes, or those bytes as base64 or hex. cmd
	// reads it (secrets resolve in one place); New does not.
	EncryptionKeyFile string `yaml:"encryptionKeyFile,omitempty"`
	// SessionSecret is the secret every replica shares (sessionSecret).
	// Private keys are always sealed at rest with AES-256-GCM (the kid as
	// additional data); unless EncryptionKey is set, the key-encryption key
	// is derived from SessionSecret with HKDF-SHA256 (info "keyward key
	// encryption v1"). Changing the secret leaves stored keys unopenable:
	// New then fails with ErrEncryptionKey (see ReplaceUnreadable). One of
	// SessionSecret and EncryptionKey is required.
	SessionSecret []byte `yaml:"-"`
	// EncryptionKey, a 32-byte AES-256-GCM key (keys.encryptionKeyFile),
	// overrides the key derived from SessionSecret. Keys found sealed with
	// the derived key, or unencrypted, are sealed with it on load.
	EncryptionKey []byte `yaml:"-"`
	// ReplaceUnreadable makes New retire current and next keys that open
	// with no configured key-encryption key (their public keys stay
	// published until the tokens they signed expire) and sign with new keys
	// at once, instead of failing with ErrEncryptionKey. For the operator's
	// explicit recovery after the session secret changed, never a default:
	// a replica with a wrong secret would replace the keys of all others.
	ReplaceUnreadable bool `yaml:"-"`
	// ReloadInterval is how often Run re-reads the store, to follow rotations
	// made by other replicas. Default: 1m.
	ReloadInterval time.Duration `yaml:"-"`
	// Logger receives rotation events. Default: slog.Default().
	Logger *slog.Logger `yaml:"-"`
	// Now is the clock. Default: time.Now.
	Now func() time.Time `yaml:"-"`
}

// Defaults.
const (
	DefaultRotationPeriod = 24 * time.Hour
	DefaultJWKSMaxAge     = time.Hour
	DefaultReloadInterval = time.Minute
	// retireLeeway, plus ReloadInterval, is how long a retired key stays
	// published beyond MaxTokenTTL.
	retireLeeway = time.Minute
)

// withDefaults returns cfg with defaults applied, or every problem joined.
func (cfg Config) withDefaults() (Config, error) {
	var errs []error
	if cfg.Store == nil {
		errs = append(errs, errors.New("missing Store"))
	}
	cfg.SetDefaults()
	if !validAlgorithm(cfg.Algorithm) {
		errs = append(errs, fmt.Errorf("unsupported Algorithm %q (want RS256, ES256 or EdDSA)", cfg.Algorithm))
	}
	if cfg.AccessTokenAlgorithm != cfg.Algorithm && !validAlgorithm(cfg.AccessTokenAlgorithm) {
		errs = append(errs, fmt.Errorf("unsupported AccessTokenAlgorithm %q (want RS256, ES256 or EdDSA)", cfg.AccessTokenAlgorithm))
	}
	if cfg.RotationPeriod < config.Duration(2*time.Second) {
		errs = append(errs, fmt.Errorf("invalid RotationPeriod %s: below 2s", cfg.RotationPeriod))
	}
	if cfg.MaxTokenTTL <= 0 {
		errs = append(errs, fmt.Errorf("invalid MaxTokenTTL %s: must be positive", cfg.MaxTokenTTL))
	}
	if cfg.JWKSMaxAge < 0 {
		errs = append(errs, fmt.Errorf("invalid JWKSMaxAge %s: negative", cfg.JWKSMaxAge))
	}
	cfg.JWKSMaxAge = min(cfg.JWKSMaxAge, cfg.RotationPeriod/2)
	if len(cfg.SessionSecret) == 0 && len(cfg.EncryptionKey) == 0 {
		errs = append(errs, errors.New("missing SessionSecret or EncryptionKey (private keys are always encrypted at rest)"))
	}
	if n := len(cfg.EncryptionKey); n != 0 && n != 32 {
		errs = append(errs, fmt.Errorf("invalid EncryptionKey (keys.encryptionKeyFile): %d bytes, want 32", n))
	}
	if cfg.ReloadInterval == 0 {
		cfg.ReloadInterval = DefaultReloadInterval
	}
	if cfg.ReloadInterval < 0 {
		errs = append(errs, fmt.Errorf("invalid ReloadInterval %s: negative", cfg.ReloadInterval))
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := errors.Join(errs...); err != nil {
		return cfg, fmt.Errorf("keys: config: %w", err)
	}
	return cfg, nil
}

// Algorithms returns the algorithms the key set holds keys of, after
// SetDefaults: Algorithm, then AccessTokenAlgorithm when it is another.
func (cfg Config) Algorithms() []string {
	if cfg.AccessTokenAlgorithm == "" || cfg.AccessTokenAlgorithm == cfg.Algorithm {
		return []string{cfg.Algorithm}
	}
	return []string{cfg.Algorithm, cfg.AccessTokenAlgorithm}
}

// SupportedAlgorithms lists the algorithms keys can sign with.
func SupportedAlgorithms() []string { return []string{RS256, ES256, EdDSA} }

func validAlgorithm(alg string) bool { return slices.Contains(SupportedAlgorithms(), alg) }
