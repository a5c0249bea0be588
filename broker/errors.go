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

// The error sentinels, one per code Keyward returns itself.
var (
	ErrInvalidRequest         = &Error{Code: "invalid_request", Description: "The request is missing a parameter or is malformed."}
	ErrUnauthorizedClient     = &Error{Code: "unauthorized_client", Description: "The client may not use this grant or response type."}
	ErrAccessDenied           = &Error{Code: "access_denied", Description: "The request was denied."}
	ErrUnsupportedGrantType   = &Error{Code: "unsupported_grant_type", Description: "The grant type is not supported."}
	ErrInvalidGrant           = &Error{Code: "invalid_grant", Description: "The grant is invalid, expired or revoked."}
	ErrInvalidClient          = &Error{Code: "invalid_client", Description: "Client authentication failed.", Status: 401}
	ErrLoginRequired          = &Error{Code: "login_required", Description: "The person must sign in."}
	ErrServerError            = &Error{Code: "server_error", Description: "The server met an unexpected condition.", Status: 500}
	ErrTemporarilyUnavailable = &Error{Code: "temporarily_unavailable", Description: "The server cannot handle the request now; try again later.", Status: 503}
)

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

// PageError is a sign-in failure shown to the person as a page (never a
// redirect: the client or the redirect URI is unknown, or the problem is
// between Keyward and the upstream).
type PageError struct {
	Status  int
	Title   string
	Message string
	cause   error
}

func (e *PageError) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("%s: %v", e.Title, e.cause)
	}
	return e.Title
}

// Unwrap returns the logged-only cause.
func (e *PageError) Unwrap() error { return e.cause }

func pageError(status int, title, message string, cause error) *PageError {
	return &PageError{Status: status, Title: title, Message: message, cause: cause}
}
