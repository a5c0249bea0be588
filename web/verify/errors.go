package verify

import (
	"errors"
	"net/http"
	"time"
)

// Error codes carried by *Error (RFC 6750 §3.1).
const (
	CodeInvalidToken           = "invalid_token"
	CodeInsufficientScope      = "insufficient_scope"
	CodeTemporarilyUnavailable = "temporarily_unavailable"
	// CodeInvalidRequest comes with a 403 (not RFC 6750's 400: gateways such
	// as nginx's auth_request turn any status but 2xx, 401 and 403 into 500)
	// for a request path the rules cannot judge; see ErrAmbiguousPath.
	CodeInvalidRequest = "invalid_request"
)

// ErrUnavailable matches, through errors.Is, every error that means the
// verifier cannot decide because it has no usable key set yet (HTTP 503).
var ErrUnavailable = errors.New("verify: key set unavailable")

// ErrOverloaded is the cause of the 503 answered when
// Config.MaxConcurrentVerifications signature checks are already in flight
// (the handler adds Retry-After: 1). Being a 503, it matches ErrUnavailable
// too.
var ErrOverloaded = errors.New("verify: too many verifications in flight")

// Error is the one error type returned by Verify, Rule.Authorize and the
// handlers. Status is the HTTP status to answer with (401, 403 or 503), Code
// the RFC 6750 error code and Description fixed public text (it never holds
// token content, so it is safe in a WWW-Authenticate header). The cause, if
// any, is reachable through errors.Unwrap, errors.Is and errors.As. Returned
// values may be shared between calls: treat them as read-only.
type Error struct {
	Status      int
	Code        string
	Description string
	cause       error
}

func (e *Error) Error() string {
	if e.cause != nil {
		return "verify: " + e.Code + ": " + e.Description + ": " + e.cause.Error()
	}
	return "verify: " + e.Code + ": " + e.Description
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.cause }

// Is reports whether target is ErrUnavailable and e is a 503.
func (e *Error) Is(target error) bool {
	return target == ErrUnavailable && e.Status == http.StatusServiceUnavailable
}

// ExpiredError is the cause of the 401 returned for a token whose exp (plus
// leeway) has passed. Use errors.As to get it.
type ExpiredError struct {
	Expiry time.Time
}

func (e *ExpiredError) Error() string {
	return "token expired at " + e.Expiry.UTC().Format(time.RFC3339)
}

func invalidToken(desc string, cause error) *Error {
	return &Error{Status: http.StatusUnauthorized, Code: CodeInvalidToken, Description: desc, cause: cause}
}

func insufficientScope(desc string) *Error {
	return &Error{Status: http.StatusForbidden, Code: CodeInsufficientScope, Description: desc}
}

// refusedPath is a 403 for a request path the rules cannot judge, with
// ErrAmbiguousPath as its cause.
func refusedPath(desc string) *Error {
	return &Error{Status: http.StatusForbidden, Code: CodeInvalidRequest, Description: desc, cause: ErrAmbiguousPath}
}

// ErrNoRequestURI is the cause of the 403 (invalid_request) answered when
// the gateway's check names no URI of the original request (nginx without
// proxy_set_header X-Original-URI $request_uri).
var ErrNoRequestURI = errors.New("verify: the gateway did not send the original request's URI")

func missingURI(desc string) *Error {
	return &Error{Status: http.StatusForbidden, Code: CodeInvalidRequest, Description: desc, cause: ErrNoRequestURI}
}

func unavailable(desc string, cause error) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Code: CodeTemporarilyUnavailable, Description: desc, cause: cause}
}

// Fixed invalid_token errors without a cause are shared values, so the
// rejection path for garbage input does not allocate.
var (
	errTooLarge     = invalidToken("token too large", nil)
	errMalformed    = invalidToken("malformed token", nil)
	errBadHeader    = invalidToken("malformed token header", nil)
	errBadPayload   = invalidToken("malformed token claims", nil)
	errAlgorithm    = invalidToken("signing algorithm not allowed", nil)
	errType         = invalidToken("token type is not at+jwt", nil)
	errCrit         = invalidToken("critical header parameters not supported", nil)
	errNoKID        = invalidToken("token header has no kid", nil)
	errUnknownKID   = invalidToken("signing key not found", nil)
	errKeyMismatch  = invalidToken("signing algorithm does not match key", nil)
	errSignature    = invalidToken("token signature invalid", nil)
	errIssuer       = invalidToken("issuer mismatch", nil)
	errAudience     = invalidToken("audience mismatch", nil)
	errNoExp        = invalidToken("token has no exp", nil)
	errNoSub        = invalidToken("token has no sub", nil)
	errNotYetValid  = invalidToken("token not yet valid", nil)
	errIssuedFuture = invalidToken("token issued in the future", nil)
	errNoToken      = invalidToken("no bearer token", nil)
	errOverloaded   = unavailable("too many verifications in flight; retry in a second", ErrOverloaded)
)
