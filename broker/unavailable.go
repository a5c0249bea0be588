package broker

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/keyward/keyward/store"
)

// RetryAfter is the Retry-After (in seconds) of a 503 answered while the
// store is unavailable: about how long a PostgreSQL failover or restart
// takes, and short enough that a client retrying then finds it back.
const RetryAfter = 5

// Unavailable reports whether err comes from a store outage
// (store.ErrUnavailable anywhere in its chain): the request needed the
// database, nothing was written, and the answer is 503.
func Unavailable(err error) bool { return errors.Is(err, store.ErrUnavailable) }

// writeUnavailable answers a JSON endpoint (token, revocation,
// introspection, userinfo) during a store outage: 503 with the RFC 6749
// §5.2 error temporarily_unavailable and Retry-After (RFC 9110 §10.2.3).
// The cause is logged, never sent.
func (t *tokenEndpoint) writeUnavailable(ctx context.Context, w http.ResponseWriter, endpoint string, err error) {
	t.log.ErrorContext(ctx, "store unavailable", "event", "store_unavailable", "endpoint", endpoint, "err", err)
	WriteUnavailable(w)
}

// WriteUnavailable writes the 503 temporarily_unavailable JSON answer, with
// Retry-After and Cache-Control: no-store.
func WriteUnavailable(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Retry-After", strconv.Itoa(RetryAfter))
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	writeJSON(w, http.StatusServiceUnavailable, map[string]string{
		"error":             ErrTemporarilyUnavailable.Code,
		"error_description": ErrTemporarilyUnavailable.Description,
	})
}
