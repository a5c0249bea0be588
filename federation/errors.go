package federation

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

// Sentinels for errors.Is. Each returned error wraps one of them together
// with its cause; the cause is for logs, never for the browser.
var (
	// ErrTokenEndpoint: the code exchange failed (network, refused code,
	// PKCE mismatch, unusable response).
	ErrTokenEndpoint = errors.New("token endpoint did not redeem the code")
	// ErrInvalidIDToken: the ID token is missing, or fails signature,
	// issuer, audience, expiry or algorithm checks.
	ErrInvalidIDToken = errors.New("invalid id token")
	// ErrNonceMismatch: the ID token's nonce is not the one this login sent.
	ErrNonceMismatch = errors.New("id token nonce mismatch")
	// ErrUserinfo: the userinfo request failed or named another subject.
	ErrUserinfo = errors.New("userinfo request failed")
)

// UpstreamError is an OAuth error the upstream sent to the callback
// (RFC 6749 §4.1.2.1), such as access_denied. Code and Description are
// upstream text, stripped of control characters and bounded in length; show
// them to people only as plain, escaped text.
type UpstreamError struct {
	Code        string
	Description string
}

func (e *UpstreamError) Error() string {
	if e.Description == "" {
		return "federation: upstream returned error " + e.Code
	}
	return fmt.Sprintf("federation: upstream returned error %s: %s", e.Code, e.Description)
}

// CallbackError returns nil if the callback query q carries no error
// parameter, and an *UpstreamError otherwise.
func CallbackError(q url.Values) error {
	if !q.Has("error") {
		return nil
	}
	code := clean(q.Get("error"), 64)
	if code == "" {
		code = "unknown_error"
	}
	return &UpstreamError{Code: code, Description: clean(q.Get("error_description"), 256)}
}

// clean drops control and invisible characters and truncates s to n runes.
func clean(s string, n int) string {
	var b strings.Builder
	for _, r := range s {
		if n == 0 {
			b.WriteString("…")
			break
		}
		if unicode.IsPrint(r) {
			b.WriteRune(r)
			n--
		}
	}
	return strings.TrimSpace(b.String())
}

// redactedError keeps a cause for errors.Is/As but prints a message with
// any upstream response body cut off, so logs never hold raw bodies.
type redactedError struct {
	msg   string
	cause error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.cause }

// redact bounds err's message: it stops before the first response body
// (go-oidc and x/oauth2 append bodies after the status line, or as JSON or
// HTML), drops control characters and keeps at most 200 characters.
var statusCode = regexp.MustCompile(`\b([1-5][0-9][0-9]) `)

func redact(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	cut := len(msg)
	if i := strings.IndexAny(msg, "\n{<"); i >= 0 {
		cut = i
	}
	// "500 Internal Server Error: <body>" and "… 500 Internal Server Error <body>".
	for _, m := range statusCode.FindAllStringSubmatchIndex(msg[:cut], -1) {
		code, _ := strconv.Atoi(msg[m[2]:m[3]])
		if text := http.StatusText(code); text != "" && strings.HasPrefix(msg[m[1]:], text) {
			cut = m[1] + len(text)
			break
		}
	}
	out := clean(msg[:cut], 200)
	if cut < len(msg) {
		out += " (response body omitted)"
	}
	return &redactedError{msg: out, cause: err}
}
