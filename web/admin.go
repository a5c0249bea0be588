package web

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/keys"
	"github.com/keyward/keyward/store"
)

// AdminActor is the audit actor of every action taken through the admin API.
const AdminActor = "admin-api"

// Admin API limits.
const (
	maxAdminBody    = 16 << 10
	maxReasonBytes  = 1024
	defaultAuditLim = 50
	maxAuditLim     = 1000
)

// AdminKeys is what the admin API needs from the key manager (*keys.Manager).
type AdminKeys interface {
	Keys() []keys.KeyInfo
	NextRotation() time.Time
	RotateNow(ctx context.Context) error
}

var _ AdminKeys = (*keys.Manager)(nil)

// AdminConfig configures the admin API handler.
type AdminConfig struct {
	Broker *broker.Broker
	Keys   AdminKeys
	// SCIM rotates provisioning tokens (nil: no scim section).
	SCIM AdminSCIM
	// Token is the bearer token every request must carry (the content of
	// admin.tokenFile). Empty: every request is refused.
	Token []byte
	// MaxConcurrent bounds the admin requests in flight (overload.go).
	// Default: 8 per CPU, at least 16; negative: no limit.
	MaxConcurrent int
	Logger        *slog.Logger
	// Backup, when set, serves GET /admin/v1/backup (the bbolt store's
	// online copy, admin_backup.go); nil answers 404 there.
	Backup AdminBackup
}

type admin struct {
	b         *broker.Broker
	keys      AdminKeys
	scim      AdminSCIM
	tokenHash [sha256.Size]byte
	hasToken  bool
	log       *slog.Logger
	backup    AdminBackup
}

// NewAdmin returns the admin API (docs/admin-api.md): JSON under /admin/v1,
// for its own listener, every request authenticated by the bearer token.
func NewAdmin(cfg AdminConfig) http.Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a := &admin{
		b:         cfg.Broker,
		keys:      cfg.Keys,
		scim:      cfg.SCIM,
		tokenHash: sha256.Sum256(cfg.Token),
		hasToken:  len(cfg.Token) > 0,
		log:       cfg.Logger.With("component", "admin"),
		backup:    cfg.Backup,
	}
	mux := http.NewServeMux()
	methods := map[string][]string{}
	var paths []string
	handle := func(method, path string, h http.HandlerFunc) {
		mux.HandleFunc(method+" "+path, h)
		if _, ok := methods[path]; !ok {
			paths = append(paths, path)
		}
		methods[path] = append(methods[path], method)
	}
	const p = "/admin/v1/"
	handle(http.MethodGet, p+"subjects", a.listSubjects)
	handle(http.MethodGet, p+"subjects/{id}", a.showSubject)
	handle(http.MethodPost, p+"subjects/{id}/deprovision", a.deprovision)
	handle(http.MethodPost, p+"subjects/{id}/reinstate", a.reinstate)
	handle(http.MethodPost, p+"deprovision", a.deprovisionByEmail)
	handle(http.MethodGet, p+"sessions", a.listSessions)
	handle(http.MethodDelete, p+"sessions/{id}", a.revokeSession)
	handle(http.MethodGet, p+"keys", a.listKeys)
	handle(http.MethodPost, p+"keys/rotate", a.rotateKeys)
	handle(http.MethodGet, p+"clients", a.listClients)
	handle(http.MethodGet, p+"audit", a.listAudit)
	handle(http.MethodGet, p+"backup", a.serveBackup)
	handle(http.MethodPost, p+"scim/{upstream}/token", a.rotateSCIMToken)
	for _, path := range paths {
		allow := strings.Join(slices.Sorted(slices.Values(methods[path])), ", ")
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeAdminError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed here; use "+allow)
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeAdminError(w, http.StatusNotFound, "not_found", "no such endpoint; see docs/admin-api.md")
	})
	return chain(mux, withRequestID, a.accessLog, a.recoverPanic, limitBody(maxAdminBody), securityHeaders, a.authenticate,
		shedAdmin(cfg.MaxConcurrent)) // after authentication: strangers cannot take the operators' slots
}

// authenticate compares the bearer token with the configured one in
// constant time (both hashed, so the length does not leak either).
func (a *admin) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		ok := false
		if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
			got := sha256.Sum256([]byte(strings.TrimSpace(h[7:])))
			ok = subtle.ConstantTimeCompare(got[:], a.tokenHash[:]) == 1 && a.hasToken
		}
		if !ok {
			a.log.InfoContext(r.Context(), "admin request refused", "event", "admin_unauthorized", "remote_addr", r.RemoteAddr, "path", r.URL.Path)
			w.Header().Set("WWW-Authenticate", `Bearer realm="keyward-admin"`)
			writeAdminError(w, http.StatusUnauthorized, "unauthorized", "a valid admin token is required (Authorization: Bearer <token from admin.tokenFile>)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (a *admin) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		a.log.DebugContext(r.Context(), "request", "method", r.Method, "path", r.URL.Path, "status", sw.status,
			"duration_ms", float64(time.Since(start).Microseconds())/1000)
	})
}

func (a *admin) recoverPanic(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler { //nolint:errorlint // sentinel value, not an error chain
					panic(v)
				}
				a.log.ErrorContext(r.Context(), "panic in admin handler", "panic", v, "stack", string(debug.Stack()))
				writeAdminError(w, http.StatusInternalServerError, "server_error", "internal error; reference "+RequestID(r.Context()))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// adminError is the body of every error answer.
type adminError struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

func writeAdminError(w http.ResponseWriter, status int, code, msg string) {
	writeAdminJSON(w, status, adminError{Error: code, Message: msg})
}

func writeAdminJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// fail answers err: unknown subjects and sessions are 404, anything else is
// a server error logged with the request id.
func (a *admin) fail(w http.ResponseWriter, r *http.Request, err error, what string) {
	switch {
	case errors.Is(err, broker.ErrUnknownSubject):
		writeAdminError(w, http.StatusNotFound, "not_found", "unknown subject: "+what)
	case errors.Is(err, broker.ErrUnknownSession):
		writeAdminError(w, http.StatusNotFound, "not_found", "unknown session: "+what)
	case errors.Is(err, context.Canceled):
		writeAdminError(w, http.StatusServiceUnavailable, "unavailable", "the request was cancelled")
	case errors.Is(err, store.ErrUnavailable):
		a.log.ErrorContext(r.Context(), "admin request failed: store unavailable", "path", r.URL.Path, "err", err)
		w.Header().Set("Retry-After", strconv.Itoa(broker.RetryAfter))
		writeAdminError(w, http.StatusServiceUnavailable, "unavailable", "the database cannot be reached; nothing was changed, retry shortly")
	default:
		id := RequestID(r.Context())
		a.log.ErrorContext(r.Context(), "admin request failed", "path", r.URL.Path, "err", err)
		writeAdminError(w, http.StatusInternalServerError, "server_error", "internal error; reference "+id)
	}
}

// reasonBody is the optional body of the mutating endpoints.
type reasonBody struct {
	Reason string `json:"reason"`
	Email  string `json:"email,omitempty"`
}

// readBody decodes the optional JSON body; it answers the request itself and
// returns false when the body is bad.
func readBody(w http.ResponseWriter, r *http.Request, allowEmail bool) (reasonBody, bool) {
	var b reasonBody
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(&b)
	var tooBig *http.MaxBytesError
	switch {
	case errors.Is(err, io.EOF):
		b = reasonBody{}
	case errors.As(err, &tooBig):
		writeAdminError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("the body is over %d bytes", maxAdminBody))
		return b, false
	case err != nil:
		writeAdminError(w, http.StatusBadRequest, "bad_request", "the body must be a JSON object such as {\"reason\": \"…\"}: "+err.Error())
		return b, false
	}
	if !allowEmail && b.Email != "" {
		writeAdminError(w, http.StatusBadRequest, "bad_request", "email is not a field of this request")
		return b, false
	}
	if b.Reason == "" {
		b.Reason = r.URL.Query().Get("reason")
	}
	if len(b.Reason) > maxReasonBytes {
		writeAdminError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("reason is over %d bytes", maxReasonBytes))
		return b, false
	}
	return b, true
}

func (a *admin) listSubjects(w http.ResponseWriter, r *http.Request) {
	if q := r.URL.Query(); q.Has("q") || q.Has("after") || q.Has("limit") {
		a.searchSubjects(w, r) // admin_search.go
		return
	}
	subs, err := a.b.Subjects(r.Context())
	if err != nil {
		a.fail(w, r, err, "")
		return
	}
	out := struct {
		Subjects []AdminSubject `json:"subjects"`
	}{Subjects: []AdminSubject{}}
	for _, s := range subs {
		out.Subjects = append(out.Subjects, toSubjectJSON(s))
	}
	writeAdminJSON(w, http.StatusOK, out)
}

func (a *admin) showSubject(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s, err := a.b.Subject(r.Context(), id)
	if err != nil {
		a.fail(w, r, err, id)
		return
	}
	sessions, err := a.b.Sessions(r.Context(), id)
	if err != nil {
		a.fail(w, r, err, id)
		return
	}
	writeAdminJSON(w, http.StatusOK, AdminSubjectDetail{Subject: toSubjectJSON(s), Sessions: toSessionsJSON(sessions)})
}

func (a *admin) deprovision(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	body, ok := readBody(w, r, false)
	if !ok {
		return
	}
	res, err := a.b.Deprovision(r.Context(), id, body.Reason, AdminActor)
	if err != nil {
		a.fail(w, r, err, id)
		return
	}
	writeAdminJSON(w, http.StatusOK, toDeprovisionJSON(id, res.Sessions, res.Grants, res.Revocation))
}

func (a *admin) deprovisionByEmail(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r, true)
	if !ok {
		return
	}
	if strings.TrimSpace(body.Email) == "" {
		writeAdminError(w, http.StatusBadRequest, "bad_request", "email is required: {\"email\": \"…\", \"reason\": \"…\"}")
		return
	}
	res, err := a.b.DeprovisionByEmail(r.Context(), body.Email, body.Reason, AdminActor)
	if err != nil {
		a.fail(w, r, err, "no subject has email "+body.Email)
		return
	}
	out := struct {
		Email   string             `json:"email"`
		Results []AdminDeprovision `json:"results"`
	}{Email: body.Email}
	for _, d := range res {
		out.Results = append(out.Results, toDeprovisionJSON(d.Subject, d.Sessions, d.Grants, d.Revocation))
	}
	writeAdminJSON(w, http.StatusOK, out)
}

func (a *admin) reinstate(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	body, ok := readBody(w, r, false)
	if !ok {
		return
	}
	s, err := a.b.Reinstate(r.Context(), id, body.Reason, AdminActor)
	if err != nil {
		a.fail(w, r, err, id)
		return
	}
	writeAdminJSON(w, http.StatusOK, struct {
		Subject AdminSubject `json:"subject"`
	}{toSubjectJSON(s)})
}

func (a *admin) listSessions(w http.ResponseWriter, r *http.Request) {
	sessions, err := a.b.Sessions(r.Context(), r.URL.Query().Get("subject"))
	if err != nil {
		a.fail(w, r, err, "")
		return
	}
	writeAdminJSON(w, http.StatusOK, struct {
		Sessions []AdminSession `json:"sessions"`
	}{toSessionsJSON(sessions)})
}

func (a *admin) revokeSession(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	body, ok := readBody(w, r, false)
	if !ok {
		return
	}
	res, err := a.b.RevokeSession(r.Context(), id, body.Reason, AdminActor)
	if err != nil {
		a.fail(w, r, err, id)
		return
	}
	writeAdminJSON(w, http.StatusOK, AdminSessionRevocation{
		Session:              toSessionJSON(res.Session),
		GrantsDeleted:        res.Grants,
		RefreshTokensRevoked: true, // always: the session's grants are deleted with it
		Revocation:           toRevocationJSON(res.Revocation),
	})
}

func (a *admin) listKeys(w http.ResponseWriter, r *http.Request) {
	writeAdminJSON(w, http.StatusOK, a.keySet())
}

// rotateKeys rotates early. keys.Manager.RotateNow keeps the rule that a key
// signs only once it has been published for one JWKS max-age, so the answer
// may show the next key with a later activates_at rather than a new current
// key.
func (a *admin) rotateKeys(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r, false)
	if !ok {
		return
	}
	var current []string // one per algorithm of the key set
	for _, k := range a.keys.Keys() {
		if k.State == store.KeyCurrent {
			current = append(current, k.ID)
		}
	}
	before := strings.Join(current, ",")
	if err := a.keys.RotateNow(r.Context()); err != nil {
		a.fail(w, r, err, "")
		return
	}
	a.log.InfoContext(r.Context(), "early key rotation requested", "event", "key_rotation_requested", "kid", before, "actor", AdminActor, "reason", body.Reason)
	if err := a.b.RecordAdminAction(r.Context(), AdminActor, broker.ActionRotateKeys, before, body.Reason); err != nil {
		a.fail(w, r, err, "")
		return
	}
	writeAdminJSON(w, http.StatusOK, a.keySet())
}

func (a *admin) keySet() AdminKeySet {
	out := AdminKeySet{Keys: []AdminKey{}, NextRotation: ts(a.keys.NextRotation())}
	for _, k := range a.keys.Keys() {
		out.Keys = append(out.Keys, AdminKey{
			ID: k.ID, Algorithm: k.Algorithm, State: string(k.State), CreatedAt: ts(k.CreatedAt),
			ActivatesAt: ts(k.ActivatesAt), RetiredAt: ts(k.RetiredAt), ExpiresAt: ts(k.ExpiresAt),
		})
	}
	return out
}

func (a *admin) listClients(w http.ResponseWriter, r *http.Request) {
	out := struct {
		Clients []AdminClient `json:"clients"`
	}{Clients: []AdminClient{}}
	for _, c := range a.b.Clients() {
		out.Clients = append(out.Clients, AdminClient(c))
	}
	writeAdminJSON(w, http.StatusOK, out)
}

func (a *admin) listAudit(w http.ResponseWriter, r *http.Request) {
	if q := r.URL.Query(); q.Has("person") || q.Has("action") || q.Has("actor") || q.Has("since") || q.Has("until") || q.Has("before") {
		a.queryAudit(w, r) // admin_search.go
		return
	}
	limit := defaultAuditLim
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxAuditLim {
			writeAdminError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("limit must be a number from 1 to %d", maxAuditLim))
			return
		}
		limit = n
	}
	events, err := a.b.AuditEvents(r.Context(), limit)
	if err != nil {
		a.fail(w, r, err, "")
		return
	}
	out := struct {
		Events []AdminAudit `json:"events"`
	}{Events: []AdminAudit{}}
	for _, e := range events {
		out.Events = append(out.Events, AdminAudit{Seq: e.Seq, At: ts(e.At), Actor: e.Actor, Action: e.Action, Target: e.Target, Reason: e.Reason})
	}
	writeAdminJSON(w, http.StatusOK, out)
}
