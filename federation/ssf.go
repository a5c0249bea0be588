package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Security Event Tokens (RFC 8417) of an OpenID Shared Signals transmitter
// (SSF 1.0): the identity provider tells Keyward that a person's sessions
// were revoked, their credentials changed, their account disabled.

// SETError kinds: which check a SET failed, for the push answer's err code
// (RFC 8935 §2.3).
var (
	// ErrSETInvalid: not a SET (structure, typ, claims).
	ErrSETInvalid = errors.New("invalid security event token")
	// ErrSETKey: the signature does not verify with the transmitter's keys.
	ErrSETKey = errors.New("security event token signature does not verify")
	// ErrSETIssuer: iss is not the transmitter's.
	ErrSETIssuer = errors.New("security event token from another issuer")
	// ErrSETAudience: aud does not name Keyward.
	ErrSETAudience = errors.New("security event token for another audience")
)

// SETConfig configures a SETVerifier.
type SETConfig struct {
	// Issuer is the transmitter's exact issuer (the iss of its SETs).
	Issuer string
	// JWKSURL is the transmitter's key set (its SSF configuration's
	// jwks_uri). Keys named in a SET's header (jku, x5u, jwk) are never used.
	JWKSURL string
	// Audience must be among the SET's aud (Keyward's issuer URL, or what
	// the stream was created with).
	Audience string
	// MaxAge bounds how old a SET's iat may be (push delivery retries and
	// poll delay included). Default: 24h.
	MaxAge time.Duration
	Client *http.Client
	Now    func() time.Time
	Logger *slog.Logger
}

// SETVerifier verifies the SETs of one transmitter.
type SETVerifier struct {
	cfg  SETConfig
	keys *keySet
}

// maxSET bounds a SET's size.
const maxSET = 64 << 10

// setLeeway is the clock skew allowed on iat.
const setLeeway = time.Minute

// NewSETVerifier returns a verifier for cfg. It does no I/O: the key set is
// fetched on first use and at most once per 30s on an unknown kid.
func NewSETVerifier(cfg SETConfig) *SETVerifier {
	if cfg.MaxAge == 0 {
		cfg.MaxAge = 24 * time.Hour
	}
	if cfg.Client == nil {
		cfg.Client = http.DefaultClient
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	algs := make([]jose.SignatureAlgorithm, len(asymmetricAlgs))
	for i, a := range asymmetricAlgs {
		algs[i] = jose.SignatureAlgorithm(a)
	}
	return &SETVerifier{cfg: cfg, keys: newKeySet(cfg.JWKSURL, cfg.Client, algs, defaultMinRefresh, cfg.Now,
		cfg.Logger.With("key_set", "ssf", "issuer", cfg.Issuer))}
}

// SET is a verified Security Event Token.
type SET struct {
	ID       string // jti
	IssuedAt time.Time
	// SubjectID is the top-level sub_id (SSF 1.0 §3, RFC 9493); nil when
	// the events carry their subject themselves.
	SubjectID map[string]any
	// Events maps each event type URI to its event object.
	Events map[string]map[string]any
}

// Verify checks raw: typ secevent+jwt, the signature with the
// transmitter's keys, iss exact, aud, iat within MaxAge (and not in the
// future), jti, events; and no exp in the past. It returns the SET, or an
// error wrapping one of the ErrSET… kinds.
func (v *SETVerifier) Verify(ctx context.Context, raw string) (SET, error) {
	fail := func(kind error, format string, args ...any) (SET, error) {
		return SET{}, fmt.Errorf("%w: %s", kind, fmt.Sprintf(format, args...))
	}
	if raw == "" || len(raw) > maxSET {
		return fail(ErrSETInvalid, "empty or larger than 64 KiB")
	}
	jws, err := jose.ParseSignedCompact(raw, v.keys.algs)
	if err != nil {
		return fail(ErrSETInvalid, "not a signed JWT with an allowed algorithm: %v", err)
	}
	if len(jws.Signatures) != 1 {
		return fail(ErrSETInvalid, "want exactly one signature")
	}
	if typ, _ := jws.Signatures[0].Header.ExtraHeaders[jose.HeaderType].(string); !strings.EqualFold(typ, "secevent+jwt") &&
		!strings.EqualFold(typ, "application/secevent+jwt") {
		return fail(ErrSETInvalid, "typ %q is not secevent+jwt", clean(typ, 40))
	}
	payload, err := v.keys.VerifySignature(ctx, raw)
	if err != nil {
		return fail(ErrSETKey, "%v", err)
	}
	var c struct {
		Iss    string                    `json:"iss"`
		Aud    audience                  `json:"aud"`
		Iat    *float64                  `json:"iat"`
		Exp    *float64                  `json:"exp"`
		Jti    string                    `json:"jti"`
		SubID  map[string]any            `json:"sub_id"`
		Events map[string]map[string]any `json:"events"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return fail(ErrSETInvalid, "claims: %v", err)
	}
	now := v.cfg.Now()
	switch {
	case c.Iss != v.cfg.Issuer:
		return fail(ErrSETIssuer, "iss %q is not %q", clean(c.Iss, 100), v.cfg.Issuer)
	case !slices.Contains(c.Aud, v.cfg.Audience):
		return fail(ErrSETAudience, "aud %q does not name %q", c.Aud, v.cfg.Audience)
	case c.Jti == "":
		return fail(ErrSETInvalid, "jti: required")
	case c.Iat == nil:
		return fail(ErrSETInvalid, "iat: required")
	case len(c.Events) == 0:
		return fail(ErrSETInvalid, "events: required, at least one")
	}
	iat := time.Unix(int64(*c.Iat), 0)
	switch {
	case iat.After(now.Add(setLeeway)):
		return fail(ErrSETInvalid, "iat is in the future")
	case iat.Before(now.Add(-v.cfg.MaxAge)):
		return fail(ErrSETInvalid, "iat is older than %s", v.cfg.MaxAge)
	case c.Exp != nil && time.Unix(int64(*c.Exp), 0).Before(now.Add(-setLeeway)):
		return fail(ErrSETInvalid, "expired")
	}
	return SET{ID: c.Jti, IssuedAt: iat, SubjectID: c.SubID, Events: c.Events}, nil
}

// MaxAge is how long a SET stays acceptable: its jti must be remembered
// at least that long.
func (v *SETVerifier) MaxAge() time.Duration { return v.cfg.MaxAge + setLeeway }

// audience is aud: a string or an array of strings.
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = []string{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("aud: want a string or an array of strings")
	}
	*a = many
	return nil
}
