package keys

import (
	"cmp"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/keyward/keyward/store"
)

// Key is the public part of a published key.
type Key struct {
	ID        string // kid
	Algorithm string // RS256 | ES256 | EdDSA
	// Public is *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey.
	Public crypto.PublicKey
}

// KeyInfo describes a key of the set, without key material.
type KeyInfo struct {
	ID          string
	Algorithm   string
	State       store.KeyState
	CreatedAt   time.Time
	ActivatesAt time.Time
	RetiredAt   time.Time
	ExpiresAt   time.Time
	// Encrypted: the private key is stored sealed (AES-256-GCM with the
	// key-encryption key in force).
	Encrypted bool
}

// Manager signs with the current key, publishes the key set and rotates it.
// Its methods are safe for concurrent use.
type Manager struct {
	store     Store
	algs      []string // configured: Config.Algorithm, then AccessTokenAlgorithm if another
	accessAlg string
	period    time.Duration
	maxTTL    time.Duration
	maxAge    time.Duration // effective JWKS max-age cap, <= period/2
	reload    time.Duration
	leeway    time.Duration // added to MaxTokenTTL for retired keys
	keks      []kek         // key-encryption keys; the first seals
	replace   bool          // Config.ReplaceUnreadable, for New only
	log       *slog.Logger
	now       func() time.Time
	timer     func(time.Duration) (<-chan time.Time, func() bool)
	mu        sync.Mutex // serializes store writes and snapshot installs
	snap      atomic.Pointer[snapshot]
	scheduled chan struct{} // wakes Run when the schedule changed
}

// snapshot is an immutable view of one stored key-set version.
type snapshot struct {
	version      int64
	nextRotation time.Time
	// checked is when the store was last read and found at this version.
	checked time.Time
	// current holds the current key of each algorithm that has one; signers
	// the key that signs for each configured algorithm: its own current
	// key, or while it has none yet another algorithm's (see SignAs).
	current  map[string]*signer
	signers  map[string]*signer
	public   map[string]published
	jwks     []byte
	infos    []KeyInfo
	deadline time.Time // earliest ExpiresAt of a retired key (zero: none)
}

type signer struct {
	Key
	method  jwt.SigningMethod
	private crypto.Signer
}

type published struct {
	Key
	expiresAt time.Time // zero unless retired
}

// ErrNotLoaded is returned by the methods that need the key set before
// Load has succeeded.
var ErrNotLoaded = errors.New("keys: key set not loaded (call Load first)")

// New checks cfg and returns a Manager. It does no I/O: Load reads (and on
// first start creates) the key set, and must succeed before the Manager
// signs or serves the JWKS.
func New(cfg Config) (*Manager, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	keks, err := newKEKs(cfg)
	if err != nil {
		return nil, fmt.Errorf("keys: config: %w", err)
	}
	return &Manager{
		store:     cfg.Store,
		algs:      cfg.Algorithms(),
		accessAlg: cfg.AccessTokenAlgorithm,
		period:    time.Duration(cfg.RotationPeriod),
		maxTTL:    cfg.MaxTokenTTL,
		maxAge:    time.Duration(cfg.JWKSMaxAge),
		reload:    cfg.ReloadInterval,
		leeway:    retireLeeway + cfg.ReloadInterval,
		keks:      keks,
		replace:   cfg.ReplaceUnreadable,
		log:       cfg.Logger.With("component", "keys"),
		now:       cfg.Now,
		timer:     realTimer,
		scheduled: make(chan struct{}, 1),
	}, nil
}

// Load reads the key set from the store, completing it in one store update:
// on first start it creates a current and a next key of every configured
// algorithm; it adds a next key for a configured algorithm the set has no
// key of (that key signs one JWKS max-age later, see the package
// documentation); and it seals with the configured key-encryption key every
// private key stored unencrypted or sealed with the key derived from the
// session secret while keys.encryptionKeyFile is set. Replicas starting
// together therefore write once. A key that opens with no configured key
// fails Load with ErrEncryptionKey, unless Config.ReplaceUnreadable (which
// applies to the first Load only). Load logs, once, which key-encryption
// key is in force (never the key). After Load, Sign works at once; Run
// keeps the set rotated and reloaded.
func (m *Manager) Load(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.advance(ctx, false); err != nil {
		return fmt.Errorf("keys: load key set: %w", err)
	}
	m.replace = false
	m.log.InfoContext(ctx, "private signing keys encrypted at rest", "cipher", "AES-256-GCM", "key_encryption_key", m.keks[0].source)
	return nil
}

func (m *Manager) checkLoaded() error {
	if m.snap.Load() == nil {
		return ErrNotLoaded
	}
	return nil
}

// Sign returns a compact JWS of claims, signed as the key set's default
// algorithm (Config.Algorithm): SignAs(ctx, Algorithms()[0], …).
func (m *Manager) Sign(ctx context.Context, claims map[string]any, header map[string]any) (string, error) {
	return m.SignAs(ctx, m.algs[0], claims, header)
}

// SignAs returns a compact JWS of claims, signed with the current key of
// alg, one of Algorithms. While alg has no current key yet (it was added to
// a set that already signed, and its first key is not yet published for
// one JWKS max-age), the current key of another algorithm signs instead:
// Config.Algorithm's if it has one. The header gets alg and kid from the key
// that signs; every other field of header (such as typ) is copied, and
// header may not override alg or kid. SignAs does no I/O.
func (m *Manager) SignAs(_ context.Context, alg string, claims map[string]any, header map[string]any) (string, error) {
	snap := m.snap.Load()
	if snap == nil {
		return "", ErrNotLoaded
	}
	s, ok := snap.signers[alg]
	if !ok {
		return "", fmt.Errorf("keys: sign: algorithm %q is not one of the key set's (%s)", alg, strings.Join(m.algs, ", "))
	}
	if claims == nil {
		claims = map[string]any{}
	}
	tok := jwt.NewWithClaims(s.method, jwt.MapClaims(claims))
	for k, v := range header {
		if k != "alg" && k != "kid" {
			tok.Header[k] = v
		}
	}
	tok.Header["kid"] = s.ID
	out, err := tok.SignedString(s.private)
	if err != nil {
		return "", fmt.Errorf("keys: sign: %w", err)
	}
	return out, nil
}

// PublicKey returns the published key kid: the next key, the current key or
// a retired key before its ExpiresAt.
func (m *Manager) PublicKey(kid string) (Key, bool) {
	s := m.snap.Load()
	if s == nil {
		return Key{}, false
	}
	p, ok := s.public[kid]
	if !ok || !p.expiresAt.IsZero() && !m.now().Before(p.expiresAt) {
		return Key{}, false
	}
	return p.Key, true
}

// SigningKey returns the public part of the key Sign uses now (the zero
// Key before Load).
func (m *Manager) SigningKey() Key { return m.SigningKeyFor(m.algs[0]) }

// SigningKeyFor returns the public part of the key SignAs(alg) uses now:
// its Algorithm differs from alg while alg's first key is not yet due. The
// zero Key when alg is not one of Algorithms, or before Load.
func (m *Manager) SigningKeyFor(alg string) Key {
	snap := m.snap.Load()
	if snap == nil {
		return Key{}
	}
	if s, ok := snap.signers[alg]; ok {
		return s.Key
	}
	return Key{}
}

// Algorithm returns the algorithm Sign signs with now. After a change of
// Config.Algorithm it differs from the configured one until a key of the new
// algorithm has become current (one JWKS max-age later).
func (m *Manager) Algorithm() string { return m.SigningKey().Algorithm }

// Algorithms returns the configured algorithms of the key set:
// Config.Algorithm first, then Config.AccessTokenAlgorithm when it is
// another. These are the algorithms SignAs accepts, and those a client may
// ask its ID tokens to be signed with.
func (m *Manager) Algorithms() []string { return slices.Clone(m.algs) }

// AccessTokenAlgorithm returns Config.AccessTokenAlgorithm (after
// defaults): the algorithm access tokens are to be signed with.
func (m *Manager) AccessTokenAlgorithm() string { return m.accessAlg }

// NextRotation returns when the next key is due to become current.
func (m *Manager) NextRotation() time.Time {
	if s := m.snap.Load(); s != nil {
		return s.nextRotation
	}
	return time.Time{}
}

// Keys lists the key set: current, next, then retired keys, newest first.
func (m *Manager) Keys() []KeyInfo {
	s := m.snap.Load()
	if s == nil {
		return nil
	}
	return slices.Clone(s.infos)
}

// JWKS returns the JSON Web Key Set (RFC 7517 §5) of every published key and
// the max-age to serve it with (whole seconds). The body is serialized once
// per key-set change and shared: callers must not modify it.
//
// maxAge is min(JWKSMaxAge, RotationPeriod/2) minus the time since this
// process last read the key set from the store: a key absent from body cannot
// sign before that read plus the cap (see the package documentation), so a
// verifier caching body for maxAge never meets an unknown kid.
func (m *Manager) JWKS() (body []byte, maxAge time.Duration) {
	s := m.snap.Load()
	if s == nil {
		return nil, 0
	}
	return s.jwks, m.servedMaxAge(s, m.now())
}

func (m *Manager) servedMaxAge(s *snapshot, now time.Time) time.Duration {
	age := min(m.maxAge, m.maxAge-now.Sub(s.checked))
	return max(0, age.Truncate(time.Second))
}

// Reload re-reads the key set from the store; the snapshot is rebuilt only if
// the stored version changed. Keys stored by another process are taken as
// they are: Reload never writes.
func (m *Manager) Reload(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	checked := m.now()
	ks, err := m.store.GetKeySet(ctx)
	if err != nil {
		return fmt.Errorf("keys: load key set: %w", err)
	}
	if err := m.install(ks, checked); err != nil {
		return fmt.Errorf("keys: load key set: %w", err)
	}
	return nil
}

// install makes ks the snapshot, read from the store at checked. m.mu is held.
func (m *Manager) install(ks store.KeySet, checked time.Time) error {
	old := m.snap.Load()
	if old != nil && old.version == ks.Version {
		s := *old
		s.checked = checked
		m.snap.Store(&s)
		return nil
	}
	s, err := m.build(ks, checked)
	if err != nil {
		return err
	}
	m.snap.Store(s)
	if old == nil || !old.nextRotation.Equal(s.nextRotation) || !old.deadline.Equal(s.deadline) {
		select {
		case m.scheduled <- struct{}{}:
		default:
		}
	}
	return nil
}

// build parses ks into a snapshot and serializes its JWKS.
func (m *Manager) build(ks store.KeySet, checked time.Time) (*snapshot, error) {
	s := &snapshot{
		version:      ks.Version,
		nextRotation: ks.NextRotation,
		checked:      checked,
		public:       make(map[string]published, len(ks.Keys)),
		current:      map[string]*signer{},
		signers:      map[string]*signer{},
	}
	var set jose.JSONWebKeySet
	var currents []*signer // in JWKS order
	// Current first (for verifiers that try the first key), then next, then
	// retired keys, newest first.
	for _, k := range ordered(ks.Keys) {
		p, err := parseKey(m.keks, k, k.State != store.KeyRetired)
		if err != nil {
			return nil, err
		}
		pub := published{Key: Key{ID: k.ID, Algorithm: k.Algorithm, Public: p.public}}
		switch k.State {
		case store.KeyCurrent:
			if _, dup := s.current[k.Algorithm]; dup {
				return nil, fmt.Errorf("key set has two current %s keys", k.Algorithm)
			}
			sg := &signer{Key: pub.Key, method: p.method, private: p.private}
			s.current[k.Algorithm] = sg
			currents = append(currents, sg)
		case store.KeyNext:
		case store.KeyRetired:
			pub.expiresAt = k.ExpiresAt
			if s.deadline.IsZero() || k.ExpiresAt.Before(s.deadline) {
				s.deadline = k.ExpiresAt
			}
		default:
			return nil, fmt.Errorf("key %s: unknown state %q", k.ID, k.State)
		}
		if _, dup := s.public[k.ID]; dup {
			return nil, fmt.Errorf("key %s: duplicate kid", k.ID)
		}
		s.public[k.ID] = pub
		s.infos = append(s.infos, KeyInfo{
			ID: k.ID, Algorithm: k.Algorithm, State: k.State,
			CreatedAt: k.CreatedAt, ActivatesAt: k.ActivatesAt, RetiredAt: k.RetiredAt, ExpiresAt: k.ExpiresAt,
			Encrypted: k.Encrypted,
		})
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: p.public, KeyID: k.ID, Algorithm: k.Algorithm, Use: "sig"})
	}
	if len(currents) == 0 {
		return nil, errors.New("key set has no current key")
	}
	// Each configured algorithm signs with its own current key or, until it
	// has one, with the first configured algorithm's that has one, else with
	// any current key (one of an algorithm no longer configured).
	for _, alg := range m.algs {
		sg := s.current[alg]
		for _, other := range m.algs {
			if sg == nil {
				sg = s.current[other]
			}
		}
		if sg == nil {
			sg = currents[0]
		}
		s.signers[alg] = sg
	}
	body, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("serialize jwks: %w", err)
	}
	s.jwks = body
	return s, nil
}

// ordered returns keys sorted current, next, then retired by RetiredAt,
// newest first.
func ordered(keys []store.SigningKey) []store.SigningKey {
	rank := map[store.KeyState]int{store.KeyCurrent: 0, store.KeyNext: 1, store.KeyRetired: 2}
	out := slices.Clone(keys)
	slices.SortStableFunc(out, func(a, b store.SigningKey) int {
		return cmp.Or(cmp.Compare(rank[a.State], rank[b.State]), b.RetiredAt.Compare(a.RetiredAt))
	})
	return out
}
