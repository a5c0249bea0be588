package broker

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/keyward/keyward/cmd/config"
	"github.com/keyward/keyward/federation"
	"github.com/keyward/keyward/store"
)

// Event types Keyward acts on (CAEP 1.0, RISC 1.0, SSF 1.0).
const (
	EventSessionRevoked   = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
	EventCredentialChange = "https://schemas.openid.net/secevent/caep/event-type/credential-change"
	EventSessionsRevoked  = "https://schemas.openid.net/secevent/risc/event-type/sessions-revoked"
	EventAccountDisabled  = "https://schemas.openid.net/secevent/risc/event-type/account-disabled"
	EventAccountPurged    = "https://schemas.openid.net/secevent/risc/event-type/account-purged"
	EventAccountEnabled   = "https://schemas.openid.net/secevent/risc/event-type/account-enabled"
	EventVerification     = "https://schemas.openid.net/secevent/ssf/event-type/verification"
)

// ActionSSFReinstateIgnored is the audit action of an account-enabled
// event that left the person disabled because someone else disabled them.
const ActionSSFReinstateIgnored = "ssf.reinstate_ignored"

// SSFConfig is one Shared Signals stream: an entry of keyward.yaml's ssf
// section. The upstream's transmitter pushes its SETs (RFC 8935) to
// /ssf/{upstream}/events with the bearer token.
type SSFConfig struct {
	// Upstream is the id of the upstream whose people the events are about.
	Upstream string `yaml:"upstream"`
	// Issuer is the transmitter's exact issuer (iss of its SETs).
	Issuer string `yaml:"issuer"`
	// JWKSURL is the transmitter's key set (jwks_uri of its
	// /.well-known/ssf-configuration).
	JWKSURL string `yaml:"jwksURL"`
	// Audience is the aud the stream was created with. Default: Keyward's
	// issuer.
	Audience string `yaml:"audience,omitempty"`
	// TokenFile holds the bearer token the transmitter sends with each push
	// (the stream's delivery authorization_header); Token is it inline.
	TokenFile string `yaml:"tokenFile,omitempty"`
	Token     string `yaml:"token,omitempty"`
	// MaxAge bounds the age of a SET (its iat). Default: 24h.
	MaxAge config.Duration `yaml:"maxAge,omitempty"`
	// PollURL, when set, is the transmitter's poll endpoint (the stream's
	// delivery endpoint_url with method urn:ietf:rfc:8936): Keyward polls
	// it every PollInterval (default 30s) with the bearer token in
	// PollTokenFile (or PollToken inline). With poll only, tokenFile may
	// be left out.
	PollURL       string          `yaml:"pollURL,omitempty"`
	PollTokenFile string          `yaml:"pollTokenFile,omitempty"`
	PollToken     string          `yaml:"pollToken,omitempty"`
	PollInterval  config.Duration `yaml:"pollInterval,omitempty"`
}

// Validate reports the entry's problems by path below it.
func (c SSFConfig) Validate() error {
	var p config.Problems
	if c.Upstream == "" {
		p.Add("upstream", "set it to the id of the upstream whose transmitter sends the events")
	}
	p.CheckURL("issuer", c.Issuer)
	p.CheckURL("jwksURL", c.JWKSURL)
	if c.PollURL != "" {
		p.CheckURL("pollURL", c.PollURL)
		switch {
		case c.PollTokenFile == "" && c.PollToken == "":
			p.Add("pollTokenFile", "set it to a file holding the bearer token Keyward sends to the transmitter's poll endpoint")
		case c.PollTokenFile != "" && c.PollToken != "":
			p.Add("pollToken", "set either pollTokenFile or pollToken, not both")
		}
		if c.PollInterval != 0 && time.Duration(c.PollInterval) < time.Second {
			p.Add("pollInterval", "set it to 1s or more (default 30s)")
		}
	}
	switch {
	case c.TokenFile == "" && c.Token == "" && c.PollURL == "":
		p.Add("tokenFile", "set it to a file holding the bearer token the transmitter sends (the stream's authorization header), or set pollURL to poll instead")
	case c.TokenFile != "" && c.Token != "":
		p.Add("token", "set either tokenFile or token, not both")
	case c.Token != "" && !strings.HasPrefix(c.Token, "${"):
		if msg := ValidateSCIMToken(c.Token); msg != "" {
			p.Add("token", "%s", msg)
		}
	}
	return p.Err()
}

// Signals is Keyward's Shared Signals receiver: it acts on the verified
// SETs of each upstream's transmitter. session-revoked, credential-change
// and sessions-revoked end the person's Keyward sessions from that upstream
// (admin.RevokeSession: refresh families gone, feed entries, back-channel
// logout); account-disabled and account-purged deprovision the person
// (admin.Deprovision, unless disabled already); account-enabled reinstates
// them. Verification and unknown events are acknowledged and logged
// (unknown ones audited). Actor: ssf:<upstream>.
type Signals struct {
	admin   *admin
	store   signalsStore
	byID    map[string]Upstream
	streams map[string]ssfStream
	log     *slog.Logger
	now     func() time.Time
}

type signalsStore interface {
	CreateGrant(ctx context.Context, g store.Grant) error
	DeleteGrant(ctx context.Context, kind store.GrantKind, signature string) error
	GetSubject(ctx context.Context, id string) (store.Subject, error)
}

type ssfStream struct {
	verifier  setVerifier
	tokenHash [sha256.Size]byte
	// poller and pollInterval: poll delivery (signals_poll.go); nil
	// poller for push only.
	poller       setPoller
	pollInterval time.Duration
}

// setVerifier verifies SETs (*federation.SETVerifier).
type setVerifier interface {
	Verify(ctx context.Context, raw string) (federation.SET, error)
	MaxAge() time.Duration
}

// SignalsStream is one stream as NewSignals takes it: the verifier built
// from an SSFConfig and the push token (read from its file).
type SignalsStream struct {
	Upstream string
	Verifier setVerifier
	// Token is the push token; empty for a stream delivered by poll only.
	Token string
	// Poller, when set, is polled every PollInterval (default
	// DefaultSSFPollInterval) by Run (RFC 8936).
	Poller       setPoller
	PollInterval time.Duration
}

// SignalsConfig configures NewSignals.
type SignalsConfig struct {
	Store   signalsStore
	Streams []SignalsStream
	Logger  *slog.Logger
	Now     func() time.Time
}

// NewSignals returns the receiver for cfg.Streams, one per upstream of the
// broker. It does no I/O.
func (b *Broker) NewSignals(cfg SignalsConfig) (*Signals, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Signals{admin: b.admin, store: cfg.Store, byID: map[string]Upstream{}, streams: map[string]ssfStream{},
		log: cfg.Logger.With("component", "ssf"), now: cfg.Now}
	for _, u := range b.upstreams {
		s.byID[u.ID()] = u
	}
	var errs []error
	for i, st := range cfg.Streams {
		if _, ok := s.byID[st.Upstream]; !ok {
			errs = append(errs, fmt.Errorf("ssf[%d].upstream: %q is not an upstream", i, st.Upstream))
		}
		if _, dup := s.streams[st.Upstream]; dup {
			errs = append(errs, fmt.Errorf("ssf[%d].upstream: %q has a stream already", i, st.Upstream))
		}
		if msg := ValidateSCIMToken(st.Token); msg != "" && (st.Poller == nil || st.Token != "") {
			errs = append(errs, fmt.Errorf("ssf[%d].token: %s", i, msg))
		}
		if st.PollInterval <= 0 {
			st.PollInterval = DefaultSSFPollInterval
		}
		s.streams[st.Upstream] = ssfStream{verifier: st.Verifier, tokenHash: sha256.Sum256([]byte(st.Token)),
			poller: st.Poller, pollInterval: st.PollInterval}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("ssf: %w", err)
	}
	return s, nil
}

// Push error codes (RFC 8935 §2.3, the IANA "Security Event Token Error
// Codes" registry).
const (
	SETErrInvalidRequest  = "invalid_request"
	SETErrInvalidKey      = "invalid_key"
	SETErrInvalidIssuer   = "invalid_issuer"
	SETErrInvalidAudience = "invalid_audience"
	SETErrAuthentication  = "authentication_failed"
	SETErrAccessDenied    = "access_denied"
)

// SETError is a refused push: Code is the err member, Description
// Keyward's sentence, cause what is logged.
type SETError struct {
	Code        string
	Description string
	cause       error
}

func (e *SETError) Error() string {
	if e.cause != nil {
		return e.Code + ": " + e.Description + ": " + e.cause.Error()
	}
	return e.Code + ": " + e.Description
}

func (e *SETError) Unwrap() error { return e.cause }

func setError(code, desc string, cause error) error {
	return &SETError{Code: code, Description: desc, cause: cause}
}

// Upstreams lists the upstreams with a stream.
func (s *Signals) Upstreams() []string {
	out := make([]string, 0, len(s.streams))
	for id := range s.streams {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// Receive handles one pushed SET of upstream's transmitter: it checks the
// bearer token, verifies the SET, claims its jti (a replay is refused and
// changes nothing) and acts on each event. Errors are *SETError, or an
// error of the store (the transmitter should retry: the jti is released).
func (s *Signals) Receive(ctx context.Context, upstream, bearer, raw string) error {
	st, ok := s.streams[upstream]
	if !ok {
		return setError(SETErrAccessDenied, "no Shared Signals stream is configured for this upstream", nil)
	}
	h := sha256.Sum256([]byte(bearer))
	if bearer == "" || subtle.ConstantTimeCompare(h[:], st.tokenHash[:]) != 1 {
		return setError(SETErrAuthentication, "the bearer token is missing or is not this stream's", nil)
	}
	return s.process(ctx, upstream, st, raw)
}

// errSETReplay is the cause of the refusal of a jti received already.
var errSETReplay = errors.New("jti received already")

// process verifies one SET of upstream's stream st, claims its jti and
// acts on it (Receive after the push token; the poll loop directly).
func (s *Signals) process(ctx context.Context, upstream string, st ssfStream, raw string) error {
	set, err := st.verifier.Verify(ctx, raw)
	switch {
	case errors.Is(err, federation.ErrSETKey):
		return setError(SETErrInvalidKey, "the SET's signature does not verify with the transmitter's keys", err)
	case errors.Is(err, federation.ErrSETIssuer):
		return setError(SETErrInvalidIssuer, "the SET's iss is not the transmitter's issuer", err)
	case errors.Is(err, federation.ErrSETAudience):
		return setError(SETErrInvalidAudience, "the SET's aud does not name Keyward", err)
	case err != nil:
		return setError(SETErrInvalidRequest, "the SET is not valid", err)
	}
	now := s.now().UTC()
	key := "ssf:" + upstream + ":" + set.ID
	err = s.store.CreateGrant(ctx, store.Grant{Kind: store.GrantAssertionJTI, Signature: key, RequestedAt: now,
		ExpiresAt: now.Add(st.verifier.MaxAge() + time.Minute)})
	if errors.Is(err, store.ErrConflict) {
		return setError(SETErrInvalidRequest, "this SET (jti) was received already", errSETReplay)
	}
	if err != nil {
		return fmt.Errorf("record SET jti: %w", err)
	}
	if err := s.act(ctx, upstream, set); err != nil {
		var se *SETError
		if !errors.As(err, &se) { // the transmitter retries: let the jti in again
			if derr := s.store.DeleteGrant(ctx, store.GrantAssertionJTI, key); derr != nil {
				s.log.WarnContext(ctx, "SET failed and its jti stays used", "upstream", upstream, "jti", set.ID, "err", derr)
			}
		}
		return err
	}
	return nil
}

// act carries out each event of set, in a stable order.
func (s *Signals) act(ctx context.Context, upstream string, set federation.SET) error {
	actor := "ssf:" + upstream
	for _, typ := range slices.Sorted(maps.Keys(set.Events)) {
		ev := set.Events[typ]
		log := s.log.With("upstream", upstream, "jti", set.ID, "event_type", typ)
		if typ == EventVerification {
			log.InfoContext(ctx, "SSF verification event received", "event", "ssf_verification")
			continue
		}
		action, known := map[string]string{
			EventSessionRevoked: "sessions", EventCredentialChange: "sessions", EventSessionsRevoked: "sessions",
			EventAccountDisabled: "deprovision", EventAccountPurged: "deprovision", EventAccountEnabled: "reinstate",
		}[typ]
		if !known {
			log.InfoContext(ctx, "SSF event of an unknown type acknowledged", "event", "ssf_unknown_event")
			_ = s.admin.RecordAdminAction(ctx, actor, "ssf.unknown_event", typ, "set "+set.ID)
			continue
		}
		subjects, byEmail, err := s.resolve(ctx, upstream, set.SubjectID, ev)
		if err != nil {
			return err
		}
		if action == "reinstate" && byEmail && len(subjects) > 0 {
			// An email names no one person for certain (an unverified
			// address may be claimed by several subjects): reinstating by
			// it could bring back someone an operator deprovisioned.
			log.InfoContext(ctx, "SSF account-enabled about an email acknowledged, nobody reinstated", "event", "ssf_reinstate_by_email_ignored", "subjects", len(subjects))
			_ = s.admin.RecordAdminAction(ctx, actor, "ssf.reinstate_by_email_ignored", typ, "set "+set.ID+": reinstating needs an iss_sub or opaque subject")
			continue
		}
		if len(subjects) == 0 {
			log.InfoContext(ctx, "SSF event about a person Keyward does not know", "event", "ssf_unknown_subject")
			continue
		}
		reason := "SSF: " + typ[strings.LastIndex(typ, "/")+1:]
		for _, sub := range subjects {
			if err := s.apply(ctx, action, upstream, sub, reason, actor); err != nil {
				return err
			}
			log.InfoContext(ctx, "SSF event applied", "event", "ssf_event", "sub", sub, "action", action)
		}
	}
	return nil
}

func (s *Signals) apply(ctx context.Context, action, upstream, subject, reason, actor string) error {
	switch action {
	case "deprovision":
		sub, err := s.store.GetSubject(ctx, subject)
		if err != nil {
			return fmt.Errorf("get subject: %w", err)
		}
		if sub.Disabled {
			return nil
		}
		_, err = s.admin.Deprovision(ctx, subject, reason, actor)
		return err
	case "reinstate":
		// Only a deactivation by this stream is undone: an operator's (or
		// SCIM's) stays.
		sub, done, err := s.admin.ReinstateIfDisabledBy(ctx, subject, reason, actor)
		if err != nil || done || !sub.Disabled {
			return err
		}
		s.log.InfoContext(ctx, "SSF account-enabled ignored: someone else disabled the person", "event", "ssf_reinstate_ignored",
			"upstream", upstream, "sub", subject, "disabled_by", sub.DisabledBy)
		return s.admin.RecordAdminAction(ctx, actor, ActionSSFReinstateIgnored, subject,
			fmt.Sprintf("SSF account-enabled ignored: the person was disabled by %s, who alone can reinstate them (or an operator)", sub.DisabledBy))
	}
	sessions, err := s.admin.Sessions(ctx, subject)
	if err != nil {
		return err
	}
	for _, sess := range sessions {
		if sess.UpstreamID != upstream {
			continue
		}
		if _, err := s.admin.RevokeSession(ctx, sess.ID, reason, actor); err != nil && !errors.Is(err, ErrUnknownSession) {
			return err
		}
	}
	return nil
}

// resolve finds the Keyward subjects an event is about: the SET's sub_id,
// else the event's own subject member (the older SSF drafts). Formats
// (RFC 9493): iss_sub (iss must be the upstream's issuer), opaque (the
// upstream's sub), email (every subject of the upstream with that email),
// complex (its user member). Subjects Keyward does not know are dropped;
// an unsupported format is invalid_request. byEmail: the subjects were
// found by email, which may name several people.
func (s *Signals) resolve(ctx context.Context, upstream string, subID map[string]any, ev map[string]any) (subjects []string, byEmail bool, err error) {
	id := subID
	if id == nil {
		id, _ = ev["subject"].(map[string]any)
	}
	if id == nil {
		return nil, false, setError(SETErrInvalidRequest, "the event names no subject (sub_id or subject)", nil)
	}
	if f, _ := id["format"].(string); f == "complex" {
		user, _ := id["user"].(map[string]any)
		if user == nil {
			return nil, false, setError(SETErrInvalidRequest, "a complex subject without a user member is not supported", nil)
		}
		id = user
	}
	var candidates []string
	switch f, _ := id["format"].(string); f {
	case "iss_sub":
		iss, _ := id["iss"].(string)
		sub, _ := id["sub"].(string)
		if iss != s.byID[upstream].Issuer() || sub == "" {
			return nil, false, setError(SETErrInvalidRequest, "an iss_sub subject must name the upstream's issuer and a sub", nil)
		}
		candidates = []string{SubjectID(upstream, sub)}
	case "opaque":
		sub, _ := id["id"].(string)
		if sub == "" {
			return nil, false, setError(SETErrInvalidRequest, "an opaque subject needs an id", nil)
		}
		candidates = []string{SubjectID(upstream, sub)}
	case "email":
		email, _ := id["email"].(string)
		found, err := s.admin.FindSubjectsByEmail(ctx, email)
		if err != nil {
			return nil, false, err
		}
		for _, sub := range found {
			if sub.UpstreamID == upstream {
				candidates = append(candidates, sub.ID)
			}
		}
		return candidates, true, nil
	default:
		return nil, false, setError(SETErrInvalidRequest, fmt.Sprintf("subject format %q is not supported (iss_sub, opaque, email, complex)", clip(f, 40)), nil)
	}
	var out []string
	for _, c := range candidates {
		if _, err := s.store.GetSubject(ctx, c); err == nil {
			out = append(out, c)
		} else if !errors.Is(err, store.ErrNotFound) {
			return nil, false, fmt.Errorf("get subject: %w", err)
		}
	}
	return out, false, nil
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
