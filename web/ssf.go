package web

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/keyward/keyward/broker"
)

// SignalsReceiver acts on a pushed SET (*broker.Signals.Receive): errors
// are *broker.SETError, or a store error.
type SignalsReceiver interface {
	Receive(ctx context.Context, upstream, bearer, raw string) error
}

var _ SignalsReceiver = (*broker.Signals)(nil)

// ssfEvents handles POST /ssf/{upstream}/events: push delivery of a
// Security Event Token (RFC 8935) from the upstream's Shared Signals
// transmitter. 202 when accepted; otherwise {"err", "description"} with
// 400 (401 authentication_failed, 403 access_denied).
func (s *Server) ssfEvents(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	upstream := r.PathValue("upstream")
	if s.cfg.Signals == nil {
		s.setError(w, http.StatusNotFound, broker.SETErrAccessDenied, "Shared Signals are not configured")
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/secevent+jwt" {
		s.setError(w, http.StatusBadRequest, broker.SETErrInvalidRequest, "the body must be a SET with Content-Type application/secevent+jwt")
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		s.setError(w, http.StatusBadRequest, broker.SETErrInvalidRequest, "the body could not be read (at most 64 KiB)")
		return
	}
	bearer, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	err = s.cfg.Signals.Receive(ctx, upstream, strings.TrimSpace(bearer), strings.TrimSpace(string(body)))
	var se *broker.SETError
	switch {
	case err == nil:
		w.WriteHeader(http.StatusAccepted)
	case errors.As(err, &se):
		s.log.InfoContext(ctx, "SET refused", "upstream", upstream, "err_code", se.Code, "err", err)
		status := http.StatusBadRequest
		switch se.Code {
		case broker.SETErrAuthentication:
			status = http.StatusUnauthorized
			w.Header().Set("WWW-Authenticate", `Bearer realm="keyward-ssf"`)
		case broker.SETErrAccessDenied:
			status = http.StatusForbidden
		}
		s.setError(w, status, se.Code, se.Description)
	case broker.Unavailable(err):
		w.Header().Set("Retry-After", "5")
		s.setError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "Keyward's database is unavailable; push the SET again later")
	default:
		s.log.ErrorContext(ctx, "SET not processed", "upstream", upstream, "err", err)
		s.setError(w, http.StatusInternalServerError, "server_error", "Keyward could not process the SET; push it again later")
	}
}

func (s *Server) setError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"err": code, "description": desc})
}
