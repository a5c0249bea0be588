package web

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/keyward/keyward/store"
)

// The admin API's paginated queries: the same broker operations the
// console's people and audit pages call.

// searchSubjects answers GET /admin/v1/subjects?q=PREFIX&after=ID&limit=N:
// subjects whose id, email, name, upstream subject or upstream id starts
// with q (case-insensitive), by id, and the next page's cursor.
func (a *admin) searchSubjects(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	limit, ok := pageLimit(w, v.Get("limit"))
	if !ok {
		return
	}
	page, err := a.b.SearchSubjects(r.Context(), store.SubjectQuery{Prefix: v.Get("q"), After: v.Get("after"), Limit: limit})
	if err != nil {
		a.fail(w, r, err, "")
		return
	}
	out := struct {
		Subjects []AdminSubject `json:"subjects"`
		Next     string         `json:"next,omitempty"`
	}{Subjects: []AdminSubject{}, Next: page.Next}
	for _, s := range page.Subjects {
		out.Subjects = append(out.Subjects, toSubjectJSON(s))
	}
	writeAdminJSON(w, http.StatusOK, out)
}

// queryAudit answers GET /admin/v1/audit with a filter (person, action,
// actor, since, until as RFC 3339, before, limit): the matching events,
// newest first, and the next page's cursor.
func (a *admin) queryAudit(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	limit, ok := pageLimit(w, v.Get("limit"))
	if !ok {
		return
	}
	q := store.AuditQuery{Target: v.Get("person"), Action: v.Get("action"), Actor: v.Get("actor"), Limit: limit}
	for name, dst := range map[string]*time.Time{"since": &q.Since, "until": &q.Until} {
		if s := v.Get(name); s != "" {
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				writeAdminError(w, http.StatusBadRequest, "bad_request", name+" must be an RFC 3339 time, such as 2026-12-01T00:00:00Z")
				return
			}
			*dst = t
		}
	}
	if s := v.Get("before"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1 {
			writeAdminError(w, http.StatusBadRequest, "bad_request", "before must be a sequence number (the next of the previous page)")
			return
		}
		q.Before = n
	}
	page, err := a.b.QueryAudit(r.Context(), q)
	if err != nil {
		a.fail(w, r, err, "")
		return
	}
	out := struct {
		Events []AdminAudit `json:"events"`
		Next   int64        `json:"next,omitempty"`
	}{Events: []AdminAudit{}, Next: page.Next}
	for _, e := range page.Events {
		out.Events = append(out.Events, AdminAudit{Seq: e.Seq, At: ts(e.At), Actor: e.Actor, Action: e.Action, Target: e.Target, Reason: e.Reason})
	}
	writeAdminJSON(w, http.StatusOK, out)
}

// pageLimit reads a page size: empty is defaultAuditLim; else 1 to
// store.MaxPageSize.
func pageLimit(w http.ResponseWriter, s string) (int, bool) {
	if s == "" {
		return defaultAuditLim, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > store.MaxPageSize {
		writeAdminError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("limit must be a number from 1 to %d", store.MaxPageSize))
		return 0, false
	}
	return n, true
}
