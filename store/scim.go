package store

import (
	"context"
	"time"
)

// SCIMType is the kind of a SCIM resource (RFC 7643 §4).
type SCIMType string

// The SCIM resource types Keyward keeps.
const (
	SCIMUser  SCIMType = "User"
	SCIMGroup SCIMType = "Group"
	// SCIMToken is not a SCIM resource: it is Keyward's record of an
	// upstream's provisioning bearer tokens after a rotation (ID and Name
	// "bearer"; the broker's token hashes in Attributes), kept with the
	// resources so that every replica reads the same tokens.
	SCIMToken SCIMType = "Token"
)

// SCIMResource is a User or Group that an identity provider provisioned
// into Keyward through SCIM 2.0 for one upstream. It is keyed by (Upstream,
// Type, ID); ID is Keyward's, assigned at creation and never reused.
type SCIMResource struct {
	Upstream string
	Type     SCIMType
	ID       string
	// ExternalID is the provisioning client's id for the resource.
	ExternalID string
	// Name is a User's userName or a Group's displayName. It is unique per
	// (Upstream, Type), compared case-insensitively (RFC 7643 §4.1.1:
	// userName is not caseExact), and never empty.
	Name string
	// Subject is the Keyward subject a User is linked to (empty for a
	// Group). A non-empty Subject is unique per (Upstream, Type).
	Subject string
	// Active is a User's "active" as the provisioning client last set it.
	Active bool
	// Members are the IDs of a Group's member Users, sorted, without duplicates.
	Members []string
	// Attributes is the resource as last written by the client (JSON), so
	// that GET returns what was provisioned.
	Attributes []byte
	// Version increases by one on every stored change, starting at 1; it is
	// the resource's ETag.
	Version   int64
	CreatedAt time.Time
	UpdatedAt time.Time
}

// SCIMStore keeps SCIM resources (part of Store). Contract, beyond Store's:
//   - CreateSCIMResource stores r with Version 1; ErrConflict when (Upstream,
//     Type, ID) exists or another resource of (Upstream, Type) has the same
//     Name, compared case-insensitively, or the same non-empty Subject.
//     Upstream, Type, ID and Name are required.
//   - UpdateSCIMResource applies updater in one write transaction and
//     returns what it stored, with Version = old + 1. The updater may not
//     change Upstream, Type, ID or Subject; a Name taken by another resource
//     is ErrConflict and nothing is written.
//   - ListSCIMResources returns the resources of (upstream, type), ordered
//     by CreatedAt then ID.
type SCIMStore interface {
	CreateSCIMResource(ctx context.Context, r SCIMResource) error
	GetSCIMResource(ctx context.Context, upstream string, typ SCIMType, id string) (SCIMResource, error)
	UpdateSCIMResource(ctx context.Context, upstream string, typ SCIMType, id string, updater func(SCIMResource) (SCIMResource, error)) (SCIMResource, error)
	DeleteSCIMResource(ctx context.Context, upstream string, typ SCIMType, id string) error
	ListSCIMResources(ctx context.Context, upstream string, typ SCIMType) ([]SCIMResource, error)
}
