package broker

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/keyward/keyward/store"
)

// Provisioning is Keyward's side of SCIM 2.0 provisioning (RFC 7643,
// RFC 7644): the identity provider of an upstream creates, updates,
// deactivates and deletes its people (Users) and groups (Groups), and
// Keyward acts on it. A SCIM User of upstream U is linked to the Keyward
// subject SubjectID(U, s), where s is the User's subject attribute
// (SCIMConfig.SubjectAttribute): the same subject a sign-in through U
// derives from the upstream's sub, so a provisioned record and a sign-in
// meet on the same person, whichever comes first.
//
//   - Create makes the subject record if the person never signed in (a
//     pre-provisioned subject: known to the admin API, deprovisionable,
//     signs in normally later).
//   - active false (PUT, PATCH, or a create that says so) deprovisions the
//     subject through admin.Deprovision, the admin API's one transaction
//     (actor scim:<upstream>), unless it is disabled already: a repeated
//     delivery changes nothing.
//   - active going from false to true reinstates it (admin.Reinstate). A
//     User created for a subject that is disabled stays inactive (its
//     active answers false) until the client sets active true.
//   - DELETE deprovisions the subject, then removes the User (and its
//     group memberships); the subject stays disabled.
//
// Requests are applied in the order received. HTTP belongs to web/scim;
// Provisioning takes and returns attribute maps (the resource's JSON
// without id and meta) and typed errors.
type Provisioning struct {
	store     ProvisioningStore
	admin     *admin
	endpoints map[string]scimEndpoint
	// accessClaims are the identity claims access tokens carry
	// (Config.AccessTokenClaims), for the groups of a refresh.
	accessClaims []string
	log          *slog.Logger
	now          func() time.Time
}

// ProvisioningStore is the part of the store Provisioning uses.
type ProvisioningStore interface {
	store.SCIMStore
	UpsertSubject(ctx context.Context, id string, create func() store.Subject, updater func(store.Subject) (store.Subject, error)) (store.Subject, error)
	GetSubject(ctx context.Context, id string) (store.Subject, error)
	ListSessions(ctx context.Context, subject string) ([]store.Session, error)
	UpdateSession(ctx context.Context, id string, updater func(store.Session) (store.Session, error)) error
}

// ProvisioningConfig configures NewProvisioning.
type ProvisioningConfig struct {
	Store ProvisioningStore
	// Endpoints are keyward.yaml's scim entries, with Token holding the
	// token (the content of TokenFile when that is set).
	Endpoints []SCIMConfig
	Logger    *slog.Logger
	Now       func() time.Time
}

// NewProvisioning returns the provisioning part for cfg.Endpoints. Each
// must name an upstream of the broker, once. It does no I/O.
func (b *Broker) NewProvisioning(cfg ProvisioningConfig) (*Provisioning, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	var errs []error
	if cfg.Store == nil {
		errs = append(errs, errors.New("store: required"))
	}
	p := &Provisioning{store: cfg.Store, admin: b.admin, endpoints: map[string]scimEndpoint{},
		accessClaims: b.signIn.claims.accessClaims, log: cfg.Logger.With("component", "scim"), now: cfg.Now}
	for i, e := range cfg.Endpoints {
		e.SetDefaults()
		if !slices.ContainsFunc(b.upstreams, func(u Upstream) bool { return u.ID() == e.Upstream }) {
			errs = append(errs, fmt.Errorf("scim[%d].upstream: %q is not an upstream", i, e.Upstream))
		}
		if _, dup := p.endpoints[e.Upstream]; dup {
			errs = append(errs, fmt.Errorf("scim[%d].upstream: %q has provisioning twice", i, e.Upstream))
		}
		if msg := ValidateSCIMToken(e.Token); msg != "" {
			errs = append(errs, fmt.Errorf("scim[%d].token: %s", i, msg))
		}
		if !slices.Contains(SCIMSubjectAttributes, e.SubjectAttribute) {
			errs = append(errs, fmt.Errorf("scim[%d].subjectAttribute: %q is not supported", i, e.SubjectAttribute))
		}
		p.endpoints[e.Upstream] = scimEndpoint{upstream: e.Upstream, tokenHash: sha256.Sum256([]byte(e.Token)),
			subject: e.SubjectAttribute, groups: e.Groups}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("provisioning: %w", err)
	}
	if slices.ContainsFunc(cfg.Endpoints, func(e SCIMConfig) bool { return e.Groups }) {
		b.tokens.groups = p // before the broker serves: NewProvisioning is part of its assembly
	}
	return p, nil
}

// Upstreams lists the upstreams with provisioning, sorted.
func (p *Provisioning) Upstreams() []string {
	out := make([]string, 0, len(p.endpoints))
	for id := range p.endpoints {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// Errors of the provisioning operations; web/scim turns them into SCIM
// errors (RFC 7644 §3.12).
var (
	// ErrSCIMNotFound: no resource has that id (404).
	ErrSCIMNotFound = fmt.Errorf("scim resource not found: %w", store.ErrNotFound)
	// ErrSCIMUniqueness: the userName or displayName is taken, or another
	// User is linked to the same person (409 uniqueness).
	ErrSCIMUniqueness = fmt.Errorf("scim uniqueness: %w", store.ErrConflict)
)

// SCIMConflictError is a uniqueness conflict (409): Detail is Keyward's
// sentence for the client. It is ErrSCIMUniqueness for errors.Is.
type SCIMConflictError struct{ Detail string }

func (e *SCIMConflictError) Error() string { return "scim uniqueness: " + e.Detail }
func (e *SCIMConflictError) Unwrap() error { return ErrSCIMUniqueness }

func conflict(format string, args ...any) error {
	return &SCIMConflictError{Detail: fmt.Sprintf(format, args...)}
}

// SCIMInvalidError is a request Keyward refuses for its content (400): its
// ScimType is RFC 7644's scimType (invalidValue, mutability) and Detail
// is Keyward's sentence for the client.
type SCIMInvalidError struct {
	ScimType string
	Detail   string
}

func (e *SCIMInvalidError) Error() string { return "scim " + e.ScimType + ": " + e.Detail }

func invalidValue(format string, args ...any) error {
	return &SCIMInvalidError{ScimType: "invalidValue", Detail: fmt.Sprintf(format, args...)}
}

// scimActor is the audit actor of provisioning by upstream's client.
func scimActor(upstream string) string { return "scim:" + upstream }

func (p *Provisioning) endpoint(upstream string) (scimEndpoint, error) {
	e, ok := p.endpoints[upstream]
	if !ok {
		return scimEndpoint{}, fmt.Errorf("upstream %q has no provisioning: %w", upstream, ErrSCIMNotFound)
	}
	return e, nil
}

// scimUserFields are the attributes of a User Keyward acts on.
type scimUserFields struct {
	userName, externalID string
	active               bool
	email, displayName   string
}

// userFields reads a User's attributes (as the client sent them; names
// are matched case-insensitively, RFC 7643 §2.1). active defaults to true.
func userFields(attrs map[string]any) scimUserFields {
	f := scimUserFields{active: true}
	f.userName, _ = attr(attrs, "userName").(string)
	f.externalID, _ = attr(attrs, "externalId").(string)
	if a, ok := attr(attrs, "active").(bool); ok {
		f.active = a
	}
	f.displayName, _ = attr(attrs, "displayName").(string)
	if name, ok := attr(attrs, "name").(map[string]any); ok && f.displayName == "" {
		f.displayName, _ = attr(name, "formatted").(string)
		if f.displayName == "" {
			given, _ := attr(name, "givenName").(string)
			family, _ := attr(name, "familyName").(string)
			f.displayName = strings.TrimSpace(given + " " + family)
		}
	}
	emails, _ := attr(attrs, "emails").([]any)
	for _, e := range emails {
		m, _ := e.(map[string]any)
		v, _ := attr(m, "value").(string)
		if primary, _ := attr(m, "primary").(bool); v != "" && (primary || f.email == "") {
			f.email = v
		}
	}
	return f
}

// attr returns the value of the attribute name in m, matched
// case-insensitively.
func attr(m map[string]any, name string) any {
	if v, ok := m[name]; ok {
		return v
	}
	for k, v := range m {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return nil
}

// setAttr sets the attribute name in m, replacing any spelling of it.
func setAttr(m map[string]any, name string, v any) {
	for k := range m {
		if strings.EqualFold(k, name) {
			delete(m, k)
		}
	}
	m[name] = v
}

// upstreamSubject is the upstream's subject a User carries.
func (e scimEndpoint) upstreamSubject(f scimUserFields) string {
	if e.subject == SCIMSubjectUserName {
		return f.userName
	}
	return f.externalID
}

// SCIMAttributes decodes a stored resource's attributes and, for a User,
// sets what Keyward knows (active); web/scim adds id, externalId, schemas
// and meta.
func SCIMAttributes(r store.SCIMResource) (map[string]any, error) {
	m := map[string]any{}
	if len(r.Attributes) > 0 {
		if err := json.Unmarshal(r.Attributes, &m); err != nil {
			return nil, fmt.Errorf("decode scim resource %s: %w", r.ID, err)
		}
	}
	if r.Type == store.SCIMUser {
		setAttr(m, "active", r.Active)
	}
	return m, nil
}

// newSCIMID is the id of a new resource: 128 random bits.
func newSCIMID() string { return randomString(16) }
