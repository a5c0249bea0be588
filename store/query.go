package store

import (
	"context"
	"time"
)

// Searcher holds the console's read queries: subjects by prefix and the
// audit log by filter, both paginated by a cursor so a page costs the same
// however far into the list it is.
type Searcher interface {
	// SearchSubjects returns, ordered by ID, at most q.Limit subjects with
	// ID > q.After whose ID, Email, Name, UpstreamSubject or UpstreamID
	// starts with q.Prefix, compared case-insensitively (both sides
	// lower-cased; PostgreSQL folds by the database's ctype, so a C-locale
	// database folds ASCII only). An empty Prefix matches every subject.
	// Next is the ID to pass as After for the following page, empty on the
	// last page. The backends answer from an index on each field, so the
	// cost grows with the number of matches, not with the number of
	// subjects. Limit <= 0 or above MaxPageSize is MaxPageSize.
	SearchSubjects(ctx context.Context, q SubjectQuery) (SubjectPage, error)
	// QueryAudit returns, newest first, at most q.Limit audit events with
	// Seq < q.Before (no bound when 0) matching every non-empty filter:
	// Target, Action and Actor compared exactly, Person equal to the
	// event's Target or Subject (the events about a person and about their
	// sessions), Since <= At < Until (zero: no bound). Next is the Seq to
	// pass as Before for the following page, 0 on the last page. Person,
	// Target and Action are indexed.
	QueryAudit(ctx context.Context, q AuditQuery) (AuditPage, error)
	// ListGrantsBySubject returns the grants of subject whose kind is in
	// kinds (every kind when empty), ordered by Kind then Signature, from
	// the subject index. An empty subject matches nothing.
	ListGrantsBySubject(ctx context.Context, subject string, kinds ...GrantKind) ([]Grant, error)
}

// MaxPageSize bounds one page of SearchSubjects and QueryAudit.
const MaxPageSize = 500

// PageSize returns limit clamped to (0, MaxPageSize].
func PageSize(limit int) int {
	if limit <= 0 || limit > MaxPageSize {
		return MaxPageSize
	}
	return limit
}

// SubjectQuery is the input of SearchSubjects.
type SubjectQuery struct {
	Prefix string
	After  string // the previous page's Next
	Limit  int
}

// SubjectPage is one page of SearchSubjects.
type SubjectPage struct {
	Subjects []Subject
	Next     string // "" on the last page
}

// AuditQuery is the input of QueryAudit.
type AuditQuery struct {
	Person string // Target or Subject
	Target string
	Action string
	Actor  string
	Since  time.Time // inclusive
	Until  time.Time // exclusive
	Before int64     // the previous page's Next
	Limit  int
}

// Matches reports whether e passes q's filters (not Before or Limit): the
// one definition both backends apply.
func (q AuditQuery) Matches(e AuditEvent) bool {
	return (q.Person == "" || e.Target == q.Person || e.Subject == q.Person) &&
		(q.Target == "" || e.Target == q.Target) &&
		(q.Action == "" || e.Action == q.Action) &&
		(q.Actor == "" || e.Actor == q.Actor) &&
		(q.Since.IsZero() || !e.At.Before(q.Since)) &&
		(q.Until.IsZero() || e.At.Before(q.Until))
}

// AuditPage is one page of QueryAudit.
type AuditPage struct {
	Events []AuditEvent
	Next   int64 // 0 on the last page
}
