package postgres

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/keyward/keyward/store"
)

// searchFields are the subject columns SearchSubjects matches, each with an
// expression index on lower(column) COLLATE "C" (migration 0005).
var searchFields = []string{"id", "email", "name", "upstream_subject", "upstream_id"}

// SearchSubjects implements store.Searcher: a prefix becomes, on each
// field, the byte range [prefix, successor(prefix)) of lower(field)
// COLLATE "C", which its index answers; the matches are ORed, cut after
// q.After and ordered by ID.
func (s *Store) SearchSubjects(ctx context.Context, q store.SubjectQuery) (store.SubjectPage, error) {
	const op = "search subjects"
	limit := store.PageSize(q.Limit)
	prefix := strings.ToLower(q.Prefix)
	if !utf8.ValidString(prefix) || strings.ContainsRune(prefix, 0) {
		return store.SubjectPage{}, nil // no text column holds it
	}
	sql := `SELECT ` + subjectColumns + ` FROM subjects WHERE id > $1`
	args := []any{q.After, limit + 1}
	if prefix != "" {
		args = append(args, prefix)
		hi, bounded := successor(prefix)
		if bounded {
			args = append(args, hi)
		}
		var ors []string
		for _, f := range searchFields {
			col := `lower(` + f + `) COLLATE "C"`
			c := col + ` >= $3`
			if bounded {
				c += ` AND ` + col + ` < $4`
			}
			ors = append(ors, "("+c+")")
		}
		sql += ` AND (` + strings.Join(ors, " OR ") + `)`
	}
	sql += ` ORDER BY id LIMIT $2`
	list, err := getAll(ctx, s, op, scanSubject, sql, args...)
	if err != nil {
		return store.SubjectPage{}, err
	}
	page := store.SubjectPage{Subjects: list}
	if len(list) > limit {
		page.Subjects = list[:limit]
		page.Next = list[limit-1].ID
	}
	return page, nil
}

// successor returns the least string above every string that starts with
// prefix, in code-point (= UTF-8 byte) order: prefix with its last rune
// incremented, trailing U+10FFFF dropped. bounded is false when there is
// none (prefix is all U+10FFFF).
func successor(prefix string) (string, bool) {
	runes := []rune(prefix)
	for i := len(runes) - 1; i >= 0; i-- {
		r := runes[i] + 1
		if r == 0xD800 { // surrogates are not characters
			r = 0xE000
		}
		if r <= utf8.MaxRune {
			runes[i] = r
			return string(runes[:i+1]), true
		}
	}
	return "", false
}

// QueryAudit implements store.Searcher with one statement holding only the
// filters that are set, so the planner sees the (target, seq) or (action,
// seq) index for what it is.
func (s *Store) QueryAudit(ctx context.Context, q store.AuditQuery) (store.AuditPage, error) {
	limit := store.PageSize(q.Limit)
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if q.Before > 0 {
		add("seq < $%d", q.Before)
	}
	if q.Person != "" {
		args = append(args, q.Person)
		where = append(where, fmt.Sprintf("(target = $%d OR subject = $%d)", len(args), len(args)))
	}
	if q.Target != "" {
		add("target = $%d", q.Target)
	}
	if q.Action != "" {
		add("action = $%d", q.Action)
	}
	if q.Actor != "" {
		add("actor = $%d", q.Actor)
	}
	if !q.Since.IsZero() {
		add("at >= $%d", ts(q.Since))
	}
	if !q.Until.IsZero() {
		add("at < $%d", ts(q.Until))
	}
	sql := `SELECT seq, at, actor, action, target, reason, subject FROM audit_events`
	if len(where) > 0 {
		sql += ` WHERE ` + strings.Join(where, " AND ")
	}
	args = append(args, limit+1)
	sql += fmt.Sprintf(` ORDER BY seq DESC LIMIT $%d`, len(args))
	list, err := getAll(ctx, s, "query audit events", scanAudit, sql, args...)
	if err != nil {
		return store.AuditPage{}, err
	}
	page := store.AuditPage{Events: list}
	if len(list) > limit {
		page.Events = list[:limit]
		page.Next = list[limit-1].Seq
	}
	return page, nil
}

// ListGrantsBySubject implements store.Searcher with the grants_subject
// index.
func (s *Store) ListGrantsBySubject(ctx context.Context, subject string, kinds ...store.GrantKind) ([]store.Grant, error) {
	if subject == "" {
		return nil, nil
	}
	return getAll(ctx, s, "list grants by subject", scanGrant, `SELECT `+grantColumns+` FROM grants
		WHERE subject = $1 AND (cardinality($2::text[]) = 0 OR kind = ANY($2)) ORDER BY kind, signature`, subject, kindNames(kinds))
}
