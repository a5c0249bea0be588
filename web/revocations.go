package web

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/store"
)

// revocationEntry is one feed entry on the wire: kind subject (sub), session
// (sid) or token (jti: one revoked access token). not_before is in Unix
// seconds rounded up, so that a verifier comparing it with a token's iat
// (whole seconds, rounded down) can never let through a token issued in the
// same second but before the revocation. expires_at (omitted when zero)
// says when a verifier may forget the entry: no token it voids can still be
// alive then.
type revocationEntry struct {
	Seq       int64  `json:"seq"`
	Kind      string `json:"kind"`
	Subject   string `json:"sub,omitempty"`
	SessionID string `json:"sid,omitempty"`
	TokenID   string `json:"jti,omitempty"`
	NotBefore int64  `json:"not_before"`
	ExpiresAt int64  `json:"expires_at,omitempty"`
}

type revocationFeed struct {
	Entries []revocationEntry `json:"entries"`
	Highest int64             `json:"highest"`
	Next    int64             `json:"next"`
}

// revocations serves GET /revocations?after=N to the configured readers
// (HTTP Basic with a reader client's id and secret, form-encoded as at
// /token). The ETag is the highest sequence number; If-None-Match with it
// answers 304 when nothing follows the cursor.
func (s *Server) revocations(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	w.Header().Set("Cache-Control", "no-store")
	id, secret, ok := broker.BasicCredentials(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Basic realm="keyward"`)
		writeFeedError(w, broker.ErrFeedUnauthorized)
		return
	}
	var after int64
	if v := r.URL.Query().Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			writeFeedError(w, broker.ErrFeedCursor)
			return
		}
		after = n
	}
	page, err := s.b.Revocations(ctx, after, id, secret)
	if err != nil {
		var be *broker.Error
		if errors.As(err, &be) && be.HTTPStatus() == http.StatusUnauthorized {
			s.log.InfoContext(ctx, "revocation feed refused", "client_id", id, "err", err)
			w.Header().Set("WWW-Authenticate", `Basic realm="keyward"`)
		} else {
			s.log.ErrorContext(ctx, "revocation feed failed", "err", err)
		}
		writeFeedError(w, err)
		return
	}
	s.metrics.feedReadBy(id, page.Next, page.Highest, s.cfg.Now())
	etag := `"` + strconv.FormatInt(page.Highest, 10) + `"`
	w.Header().Set("ETag", etag)
	if len(page.Entries) == 0 && feedETagMatches(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	feed := revocationFeed{Entries: make([]revocationEntry, 0, len(page.Entries)), Highest: page.Highest, Next: page.Next}
	for _, e := range page.Entries {
		feed.Entries = append(feed.Entries, wireRevocation(e))
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(feed)
}

func wireRevocation(e store.Revocation) revocationEntry {
	out := revocationEntry{Seq: e.Seq, Kind: string(e.Kind), Subject: e.Subject, SessionID: e.SessionID, TokenID: e.TokenID, NotBefore: feedUnix(e.NotBefore)}
	if !e.ExpiresAt.IsZero() {
		out.ExpiresAt = feedUnix(e.ExpiresAt)
	}
	return out
}

// feedUnix is t in Unix seconds, rounded up.
func feedUnix(t time.Time) int64 {
	s := t.Unix()
	if t.Nanosecond() > 0 {
		s++
	}
	return s
}

// feedETagMatches implements If-None-Match's weak comparison (RFC 9110 §13.1.2).
func feedETagMatches(header, etag string) bool {
	for v := range strings.SplitSeq(header, ",") {
		v = strings.TrimPrefix(strings.TrimSpace(v), "W/")
		if v == "*" || v == etag {
			return true
		}
	}
	return false
}

// writeFeedError answers err as an OAuth-style JSON error; anything but a
// *broker.Error is a server_error.
func writeFeedError(w http.ResponseWriter, err error) {
	var be *broker.Error
	if !errors.As(err, &be) {
		be = broker.ErrServerError
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if be.HTTPStatus() == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	w.WriteHeader(be.HTTPStatus())
	_ = json.NewEncoder(w).Encode(map[string]string{"error": be.Code, "error_description": be.Description})
}
