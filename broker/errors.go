package broker

import (
	"errors"
	"fmt"
)

// Error is an OAuth 2.0 error decided by Keyward (RFC 6749 §4.1.2.1, §5.2).
// Description is fixed public text; the cause is only ever logged.
type Error struct {
	Code        string
	Description string
	// Status is the HTTP status a JSON answer carries (0: 400).
	Status int
	cause  error
}

func (e *Error) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Description, e.cause)
	}
	return e.Code + ": " + e.Description
}

// Is matches by code.
func (e *Error) Is(target error) bool {
	var t *Error
	if !errors.As(target, &t) {
		return false
	}
	return t.Code == e.Code
}

// Unwrap returns the logged-only cause.
func (e *Error) Unwrap() error { return e.cause }

// WithDescription returns a copy with another public description.
func (e *Error) WithDescription(d string) *Error {
	c := *e
	c.Description = d
	return &c
}

// WithCause returns a copy carrying cause (logged, never shown).
func (e *Error) WithCause(cause error) *Error {
	c := *e
	c.cause = cause
	return &c
}

// HTTPStatus is the status of a JSON error answer.
func (e *Error) HTTPStatus() int {
	if e.Status == 0 {
		return 400
	}
	return e.Status
}

// Refusal is why a browser flow (sign-in, the chooser, the callback,
// sign-out) stopped with nothing to send to the client: the client or its
// redirect URI is unknown, or the problem is between Keyward and the
// upstream or the person. broker decides only the kind and the facts a page
// may name; web chooses the page, its status and its wording. The cause is
// only ever logged.
type Refusal struct {
	Kind RefusalKind
	// Upstream is the display name of the upstream concerned
	// (RefusedUpstreamUnavailable, RefusedUpstreamFailed,
	// RefusedWrongIssuer).
	Upstream string
	// OtherUpstreams: the person may go back and choose another upstream
	// (RefusedUpstreamUnavailable).
	OtherUpstreams bool
	// Detail is public text the page may quote: what is wrong with the
	// request (RefusedAuthorizeForm), fosite's description of an invalid
	// request (RefusedInvalidAuthorize), or the upstream's configured
	// refusal message (RefusedNotAllowed).
	Detail string
	// Limited is the rate limit that refused a login attempt
	// (RefusedLoginLimited).
	Limited *LoginLimitedError
	cause   error
}

// RefusalKind names why a browser flow was refused.
type RefusalKind string

// The refusals of the sign-in flow (authorize, chooser, callback).
const (
	// RefusedAuthorizeForm: a parameter of /authorize over its cap, or
	// repeated, before fosite parsed the request; nothing was stored.
	RefusedAuthorizeForm RefusalKind = "authorize_form"
	// RefusedUnknownClient: /authorize named an unknown client_id.
	RefusedUnknownClient RefusalKind = "unknown_client"
	// RefusedUnregisteredRedirect: /authorize named a redirect_uri the
	// client has not registered.
	RefusedUnregisteredRedirect RefusalKind = "unregistered_redirect_uri"
	// RefusedNoRedirectURI: /authorize named no redirect_uri, which
	// OpenID Connect requires.
	RefusedNoRedirectURI RefusalKind = "no_redirect_uri"
	// RefusedInvalidAuthorize: another invalid /authorize that cannot be
	// answered to the client; Detail is fosite's description, if any.
	RefusedInvalidAuthorize RefusalKind = "invalid_authorize"
	// RefusedAuthorizeStale: the stored /authorize is no longer valid when
	// the person comes back from the upstream.
	RefusedAuthorizeStale RefusalKind = "authorize_stale"
	// RefusedAttemptExpired: the login attempt expired or was already used.
	RefusedAttemptExpired RefusalKind = "attempt_expired"
	// RefusedOtherBrowser: the login attempt belongs to another browser.
	RefusedOtherBrowser RefusalKind = "other_browser"
	// RefusedUnknownUpstream: the chooser named an upstream that is not
	// configured.
	RefusedUnknownUpstream RefusalKind = "unknown_upstream"
	// RefusedUpstreamGone: the upstream of a login attempt is no longer
	// configured.
	RefusedUpstreamGone RefusalKind = "upstream_gone"
	// RefusedUpstreamUnavailable: the upstream cannot take sign-ins now.
	RefusedUpstreamUnavailable RefusalKind = "upstream_unavailable"
	// RefusedNoCode: the upstream's answer has no authorization code.
	RefusedNoCode RefusalKind = "no_code"
	// RefusedWrongIssuer: the upstream's answer does not come from the
	// upstream the sign-in was sent to (RFC 9207).
	RefusedWrongIssuer RefusalKind = "wrong_issuer"
	// RefusedUpstreamFailed: the upstream's answer could not be verified.
	RefusedUpstreamFailed RefusalKind = "upstream_failed"
	// RefusedNotAllowed: the upstream's configuration (allow rules,
	// tenants …) refused the person; Detail is its message.
	RefusedNotAllowed RefusalKind = "not_allowed"
	// RefusedAccessRemoved: the subject is disabled.
	RefusedAccessRemoved RefusalKind = "access_removed"
	// RefusedLoginLimited: the login-attempt rate limit (Limited).
	RefusedLoginLimited RefusalKind = "login_limited"
	// RefusedStoreUnavailable: the store is unavailable; nothing was
	// written.
	RefusedStoreUnavailable RefusalKind = "store_unavailable"
)

// The refusals of RP-initiated logout (/end_session); nothing was ended.
const (
	// RefusedLogoutHint: the id_token_hint is not an ID token Keyward issued.
	RefusedLogoutHint RefusalKind = "logout_hint"
	// RefusedLogoutClientMismatch: client_id is not the hint's client.
	RefusedLogoutClientMismatch RefusalKind = "logout_client_mismatch"
	// RefusedLogoutUnknownClient: an unknown client_id.
	RefusedLogoutUnknownClient RefusalKind = "logout_unknown_client"
	// RefusedLogoutNoClient: a post_logout_redirect_uri without a client.
	RefusedLogoutNoClient RefusalKind = "logout_no_client"
	// RefusedLogoutUnregisteredRedirect: a post_logout_redirect_uri the
	// client has not registered.
	RefusedLogoutUnregisteredRedirect RefusalKind = "logout_unregistered_redirect_uri"
	// RefusedLogoutBadRedirect: the registered post-logout redirect URI is
	// not a valid URL.
	RefusedLogoutBadRedirect RefusalKind = "logout_bad_redirect_uri"
)

func (e *Refusal) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("%s: %v", e.Kind, e.cause)
	}
	return string(e.Kind)
}

// Unwrap returns the logged-only cause.
func (e *Refusal) Unwrap() error { return e.cause }

func refuse(kind RefusalKind, cause error) *Refusal {
	return &Refusal{Kind: kind, cause: cause}
}

// asRefusal turns a store outage into RefusedStoreUnavailable, unless
// the flow already refused with an unavailable upstream; any other error
// is returned as it is.
func asRefusal(err error) error {
	var r *Refusal
	if err == nil || !Unavailable(err) || errors.As(err, &r) && (r.Kind == RefusedUpstreamUnavailable || r.Kind == RefusedStoreUnavailable) {
		return err
	}
	return refuse(RefusedStoreUnavailable, err)
}
