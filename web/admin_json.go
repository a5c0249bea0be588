package web

import (
	"time"

	"github.com/keyward/keyward/store"
)

// The admin API's JSON shapes (docs/admin-api.yaml), exported so that its
// client, keyward admin, decodes exactly what the server encodes. Times are
// RFC 3339 in UTC; a zero time is left out.

// AdminSubject is a JSON shape of the admin API.
type AdminSubject struct {
	ID              string     `json:"id"`
	UpstreamID      string     `json:"upstream_id,omitempty"`
	UpstreamSubject string     `json:"upstream_subject,omitempty"`
	Email           string     `json:"email,omitempty"`
	Name            string     `json:"name,omitempty"`
	Disabled        bool       `json:"disabled"`
	NotBefore       *time.Time `json:"not_before,omitempty"`
	CreatedAt       *time.Time `json:"created_at,omitempty"`
	UpdatedAt       *time.Time `json:"updated_at,omitempty"`
	LastLoginAt     *time.Time `json:"last_login_at,omitempty"`
	// When, by whom and why the subject was last disabled (while disabled).
	DisabledAt     *time.Time `json:"disabled_at,omitempty"`
	DisabledBy     string     `json:"disabled_by,omitempty"`
	DisabledReason string     `json:"disabled_reason,omitempty"`
}

// AdminSubjectDetail is a JSON shape of the admin API.
type AdminSubjectDetail struct {
	Subject  AdminSubject   `json:"subject"`
	Sessions []AdminSession `json:"sessions"`
}

// AdminSession is a JSON shape of the admin API.
type AdminSession struct {
	ID              string     `json:"id"`
	Subject         string     `json:"subject"`
	UpstreamID      string     `json:"upstream_id,omitempty"`
	UpstreamSubject string     `json:"upstream_subject,omitempty"`
	Email           string     `json:"email,omitempty"`
	AuthTime        *time.Time `json:"auth_time,omitempty"`
	CreatedAt       *time.Time `json:"created_at,omitempty"`
	LastSeenAt      *time.Time `json:"last_seen_at,omitempty"`
	ExpiresAt       *time.Time `json:"expires_at,omitempty"`
}

// AdminRevocation is a JSON shape of the admin API.
type AdminRevocation struct {
	Seq       int64      `json:"seq"`
	Kind      string     `json:"kind"`
	Subject   string     `json:"subject,omitempty"`
	SessionID string     `json:"session_id,omitempty"`
	NotBefore *time.Time `json:"not_before,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// AdminDeprovision is a JSON shape of the admin API.
type AdminDeprovision struct {
	Subject         string          `json:"subject"`
	SessionsDeleted int             `json:"sessions_deleted"`
	GrantsDeleted   int             `json:"grants_deleted"`
	Revocation      AdminRevocation `json:"revocation"`
}

// AdminSessionRevocation is a JSON shape of the admin API.
type AdminSessionRevocation struct {
	Session       AdminSession `json:"session"`
	GrantsDeleted int          `json:"grants_deleted"`
	// RefreshTokensRevoked is always true: ending a session deletes its
	// codes, access and refresh tokens. Kept for API compatibility; tokens
	// issued by token exchange carry no session and are not affected.
	RefreshTokensRevoked bool            `json:"refresh_tokens_revoked"`
	Revocation           AdminRevocation `json:"revocation"`
}

// AdminKey is a JSON shape of the admin API.
type AdminKey struct {
	ID          string     `json:"kid"`
	Algorithm   string     `json:"algorithm"`
	State       string     `json:"state"`
	CreatedAt   *time.Time `json:"created_at,omitempty"`
	ActivatesAt *time.Time `json:"activates_at,omitempty"`
	RetiredAt   *time.Time `json:"retired_at,omitempty"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
}

// AdminKeySet is a JSON shape of the admin API.
type AdminKeySet struct {
	Keys         []AdminKey `json:"keys"`
	NextRotation *time.Time `json:"next_rotation,omitempty"`
}

// AdminClient has the fields of broker.ClientInfo, in that order.
// AdminClient is a JSON shape of the admin API.
type AdminClient struct {
	ID               string   `json:"id"`
	Name             string   `json:"name"`
	Public           bool     `json:"public"`
	RedirectURIs     []string `json:"redirect_uris"`
	GrantTypes       []string `json:"grant_types"`
	Scopes           []string `json:"scopes"`
	Audiences        []string `json:"audiences"`
	RevocationReader bool     `json:"revocation_reader"`
}

// AdminAudit is a JSON shape of the admin API.
type AdminAudit struct {
	Seq    int64      `json:"seq"`
	At     *time.Time `json:"at"`
	Actor  string     `json:"actor"`
	Action string     `json:"action"`
	Target string     `json:"target"`
	Reason string     `json:"reason,omitempty"`
}

func ts(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func toSubjectJSON(s store.Subject) AdminSubject {
	return AdminSubject{
		ID: s.ID, UpstreamID: s.UpstreamID, UpstreamSubject: s.UpstreamSubject, Email: s.Email, Name: s.Name,
		Disabled: s.Disabled, NotBefore: ts(s.NotBefore), CreatedAt: ts(s.CreatedAt), UpdatedAt: ts(s.UpdatedAt),
		LastLoginAt: ts(s.LastLoginAt), DisabledAt: ts(s.DisabledAt), DisabledBy: s.DisabledBy, DisabledReason: s.DisabledReason,
	}
}

func toSessionJSON(s store.Session) AdminSession {
	return AdminSession{
		ID: s.ID, Subject: s.Subject, UpstreamID: s.UpstreamID, UpstreamSubject: s.UpstreamSubject,
		Email: s.Identity.Email, AuthTime: ts(s.AuthTime), CreatedAt: ts(s.CreatedAt),
		LastSeenAt: ts(s.LastSeenAt), ExpiresAt: ts(s.ExpiresAt),
	}
}

func toSessionsJSON(ss []store.Session) []AdminSession {
	out := []AdminSession{}
	for _, s := range ss {
		out = append(out, toSessionJSON(s))
	}
	return out
}

func toRevocationJSON(r store.Revocation) AdminRevocation {
	return AdminRevocation{
		Seq: r.Seq, Kind: string(r.Kind), Subject: r.Subject, SessionID: r.SessionID,
		NotBefore: ts(r.NotBefore), ExpiresAt: ts(r.ExpiresAt),
	}
}

func toDeprovisionJSON(subject string, sessions, grants int, r store.Revocation) AdminDeprovision {
	return AdminDeprovision{Subject: subject, SessionsDeleted: sessions, GrantsDeleted: grants, Revocation: toRevocationJSON(r)}
}
