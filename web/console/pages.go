package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/store"
)

// pageSize is how many rows a console table shows.
const pageSize = 50

// maxReason bounds a reason typed into a form.
const maxReason = 1024

// link is a call to action on a message page.
type link struct{ Href, Text string }

// view is what every page template gets.
type view struct {
	Title string
	Nav   string // the section highlighted in the navigation
	Staff *staffSession
	CSRF  string
	Data  any
}

func parseTemplates() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"when": func(t time.Time) string {
			if t.IsZero() {
				return "—"
			}
			return t.UTC().Format("2006-01-02 15:04:05 UTC")
		},
		"isAdmin": func(s *staffSession) bool { return s != nil && s.Role == roleAdmin },
		// path escapes an id for a URL path segment (a subject id may hold
		// any character but NUL).
		"path": url.PathEscape,
	}
	out := map[string]*template.Template{}
	for _, name := range []string{"people", "person", "confirm", "result", "keys", "health", "audit", "message"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFiles, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: parse template %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// render writes a page; the template runs into a buffer first so a
// failure is a clean error page.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, page string, v view) {
	if s, ok := r.Context().Value(staffKey{}).(staffSession); ok {
		v.Staff = &s
		v.CSRF = c.jar.csrf(s.SID)
	}
	var buf bytes.Buffer
	if err := c.pages[page].ExecuteTemplate(&buf, "layout", v); err != nil {
		c.log.ErrorContext(r.Context(), "console template failed", "err", err, "page", page)
		http.Error(w, "the console could not render this page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

type messageData struct {
	Text string
	Link *link
}

func (c *Console) message(w http.ResponseWriter, r *http.Request, status int, title, text string, l *link) {
	c.render(w, r, status, "message", view{Title: title, Data: messageData{Text: text, Link: l}})
}

// people: search by email, name, subject or upstream.
func (c *Console) people(w http.ResponseWriter, r *http.Request, _ staffSession) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	page, err := c.opts.Admin.SearchSubjects(r.Context(), store.SubjectQuery{Prefix: q, After: r.URL.Query().Get("after"), Limit: pageSize})
	if err != nil {
		c.fail(w, r, err)
		return
	}
	next := ""
	if page.Next != "" {
		next = "/console/?" + url.Values{"q": {q}, "after": {page.Next}}.Encode()
	}
	c.render(w, r, http.StatusOK, "people", view{Title: "People", Nav: "people", Data: struct {
		Query    string
		Subjects []store.Subject
		Next     string
	}{q, page.Subjects, next}})
}

type personData struct {
	Subject  store.Subject
	Sessions []store.Session
	Families []broker.RefreshFamily
	Audit    []store.AuditEvent
	AuditURL string
}

func (c *Console) loadPerson(w http.ResponseWriter, r *http.Request) (personData, bool) {
	id := r.PathValue("id")
	sub, err := c.opts.Admin.Subject(r.Context(), id)
	if errors.Is(err, broker.ErrUnknownSubject) {
		c.message(w, r, http.StatusNotFound, "Unknown person", "Keyward has no subject "+strconv.Quote(id)+".", &link{Href: "/console/", Text: "Search people"})
		return personData{}, false
	}
	if err != nil {
		c.fail(w, r, err)
		return personData{}, false
	}
	sessions, err := c.opts.Admin.Sessions(r.Context(), id)
	if err != nil {
		c.fail(w, r, err)
		return personData{}, false
	}
	families, err := c.opts.Admin.RefreshFamilies(r.Context(), id)
	if err != nil {
		c.fail(w, r, err)
		return personData{}, false
	}
	// The events about the person and about their sessions (session.revoke
	// names the session's subject).
	audit, err := c.opts.Admin.QueryAudit(r.Context(), store.AuditQuery{Person: id, Limit: 10})
	if err != nil {
		c.fail(w, r, err)
		return personData{}, false
	}
	return personData{Subject: sub, Sessions: sessions, Families: families, Audit: audit.Events,
		AuditURL: "/console/audit?" + url.Values{"person": {id}}.Encode()}, true
}

// person: identity, status, sessions, recent audit and the actions.
func (c *Console) person(w http.ResponseWriter, r *http.Request, _ staffSession) {
	d, ok := c.loadPerson(w, r)
	if !ok {
		return
	}
	c.render(w, r, http.StatusOK, "person", view{Title: personTitle(d.Subject), Nav: "people", Data: d})
}

func personTitle(s store.Subject) string {
	switch {
	case s.Name != "":
		return s.Name
	case s.Email != "":
		return s.Email
	}
	return s.ID
}

// The person actions.
const (
	actDeprovision = "deprovision"
	actReinstate   = "reinstate"
	actEndAll      = "end-all"
	actEndSession  = "end-session"
)

type confirmData struct {
	Action, Target, Session string
	Heading, What           string
	Consequences            []string
	Button                  string
	PostTo, Back            string
	ReasonRequired          bool
}

// personAction describes, from the current state, exactly what action act
// on d will do; ok is false for an unknown action or one that does not
// apply.
func personAction(d personData, act, sessionID string) (confirmData, bool) {
	s := d.Subject
	who := personTitle(s)
	cd := confirmData{Action: act, Target: s.ID, Session: sessionID,
		PostTo: "/console/people/" + url.PathEscape(s.ID) + "/act", Back: "/console/people/" + url.PathEscape(s.ID)}
	switch act {
	case actDeprovision:
		cd.Heading, cd.Button, cd.ReasonRequired = "Deprovision "+who, "Deprovision "+who, true
		cd.What = fmt.Sprintf("%s (%s) loses access to everything Keyward protects, now.", who, s.ID)
		cd.Consequences = []string{
			fmt.Sprintf("%d Keyward session(s) end, with every refresh token and code issued in them.", len(d.Sessions)),
			"Every access token issued before now is void: a revocation-feed entry is published and gateways refuse those tokens at their next feed poll.",
			"Applications told by back-channel logout sign the person out.",
			"The person cannot sign in again until reinstated.",
		}
	case actReinstate:
		if !s.Disabled {
			return cd, false
		}
		cd.Heading, cd.Button = "Reinstate "+who, "Reinstate "+who
		cd.What = fmt.Sprintf("%s (%s) may sign in again.", who, s.ID)
		cd.Consequences = []string{"Tokens issued before the deprovisioning stay void; the person signs in afresh."}
	case actEndAll:
		cd.Heading, cd.Button = "End every session of "+who, "End all sessions"
		cd.What = fmt.Sprintf("Every Keyward session of %s ends now; the person is not disabled and may sign in again.", who)
		cd.Consequences = []string{
			fmt.Sprintf("%d session(s) end, with their refresh tokens and codes; a feed entry per session voids their access tokens.", len(d.Sessions)),
		}
	case actEndSession:
		var found *store.Session
		for i := range d.Sessions {
			if d.Sessions[i].ID == sessionID {
				found = &d.Sessions[i]
			}
		}
		if found == nil {
			return cd, false
		}
		cd.Heading, cd.Button = "End one session of "+who, "End this session"
		cd.What = fmt.Sprintf("The session started %s through %s ends now.", found.CreatedAt.UTC().Format("2006-01-02 15:04 UTC"), found.UpstreamID)
		cd.Consequences = []string{"Its refresh tokens and codes are deleted and a feed entry voids its access tokens. Other sessions are untouched."}
	default:
		return cd, false
	}
	return cd, true
}

// confirmPerson: the page that says exactly what an action will do.
func (c *Console) confirmPerson(w http.ResponseWriter, r *http.Request, _ staffSession) {
	d, ok := c.loadPerson(w, r)
	if !ok {
		return
	}
	cd, ok := personAction(d, r.URL.Query().Get("action"), r.URL.Query().Get("session"))
	if !ok {
		c.message(w, r, http.StatusBadRequest, "Nothing to confirm", "This action does not apply to "+personTitle(d.Subject)+" now.", &link{Href: cd.Back, Text: "Back to the person"})
		return
	}
	c.render(w, r, http.StatusOK, "confirm", view{Title: cd.Heading, Nav: "people", Data: cd})
}

type resultData struct {
	Heading string
	Lines   []string
	FeedSeq int64
	Back    string
}

// actPerson carries out a confirmed action (CSRF already checked by
// requireStaff) with the staff member as the audit actor.
func (c *Console) actPerson(w http.ResponseWriter, r *http.Request, staff staffSession) {
	d, ok := c.loadPerson(w, r)
	if !ok {
		return
	}
	act, sid := r.PostForm.Get("action"), r.PostForm.Get("session")
	cd, ok := personAction(d, act, sid)
	if !ok {
		c.message(w, r, http.StatusBadRequest, "Nothing done", "This action does not apply to "+personTitle(d.Subject)+" now.", &link{Href: cd.Back, Text: "Back to the person"})
		return
	}
	reason := strings.TrimSpace(r.PostForm.Get("reason"))
	if r.PostForm.Get("confirm") != "yes" || (cd.ReasonRequired && reason == "") || len(reason) > maxReason {
		confirm := cd.Back + "/confirm?" + url.Values{"action": {act}, "session": {sid}}.Encode()
		c.message(w, r, http.StatusBadRequest, "Not confirmed", "Nothing was done: the action needs its confirmation page (and a reason of at most 1024 bytes where asked).", &link{Href: confirm, Text: "Go to the confirmation"})
		return
	}
	if reason == "" {
		reason = "console"
	}
	ctx, actor, id := r.Context(), staff.actor(), d.Subject.ID
	res := resultData{Back: cd.Back}
	switch act {
	case actDeprovision:
		out, err := c.opts.Admin.Deprovision(ctx, id, reason, actor)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		res.Heading = personTitle(d.Subject) + " is deprovisioned"
		res.Lines = []string{fmt.Sprintf("%d session(s) and %d grant(s) deleted.", out.Sessions, out.Grants)}
		res.FeedSeq = out.Revocation.Seq
	case actReinstate:
		if _, err := c.opts.Admin.Reinstate(ctx, id, reason, actor); err != nil {
			c.fail(w, r, err)
			return
		}
		res.Heading = personTitle(d.Subject) + " is reinstated"
		res.Lines = []string{"The person may sign in again."}
	case actEndAll, actEndSession:
		ended, grants := 0, 0
		for _, s := range d.Sessions {
			if act == actEndSession && s.ID != sid {
				continue
			}
			out, err := c.opts.Admin.RevokeSession(ctx, s.ID, reason, actor)
			if errors.Is(err, broker.ErrUnknownSession) {
				continue // ended meanwhile
			}
			if err != nil {
				c.fail(w, r, err)
				return
			}
			ended, grants, res.FeedSeq = ended+1, grants+out.Grants, out.Revocation.Seq
		}
		res.Heading = fmt.Sprintf("%d session(s) of %s ended", ended, personTitle(d.Subject))
		res.Lines = []string{fmt.Sprintf("%d grant(s) (codes, refresh tokens, session records) deleted.", grants)}
	}
	c.log.InfoContext(ctx, "console action", "event", "console_action", "action", act, "sub", id, "actor", actor)
	c.render(w, r, http.StatusOK, "result", view{Title: res.Heading, Nav: "people", Data: res})
}

// keysPage: the key set as a timeline.
func (c *Console) keysPage(w http.ResponseWriter, r *http.Request, _ staffSession) {
	c.render(w, r, http.StatusOK, "keys", view{Title: "Signing keys", Nav: "keys", Data: struct {
		Keys any
		Next time.Time
	}{c.opts.Keys.Keys(), c.opts.Keys.NextRotation()}})
}

func (c *Console) confirmRotate(w http.ResponseWriter, r *http.Request, _ staffSession) {
	cd := confirmData{Action: "rotate", Heading: "Rotate the signing keys now", Button: "Rotate now", PostTo: "/console/keys/rotate", Back: "/console/keys",
		What: "The next key starts signing now and the current key retires.",
		Consequences: []string{
			"Tokens already issued stay valid until they expire: the retired key stays published until then.",
			"A gateway that has not fetched the next key yet fetches it on the first unknown key id.",
		}}
	c.render(w, r, http.StatusOK, "confirm", view{Title: cd.Heading, Nav: "keys", Data: cd})
}

func (c *Console) rotate(w http.ResponseWriter, r *http.Request, staff staffSession) {
	if r.PostForm.Get("confirm") != "yes" {
		c.message(w, r, http.StatusBadRequest, "Not confirmed", "Nothing was done: rotating needs its confirmation page.", &link{Href: "/console/keys/confirm", Text: "Go to the confirmation"})
		return
	}
	reason := strings.TrimSpace(r.PostForm.Get("reason"))
	if len(reason) > maxReason {
		reason = reason[:maxReason]
	}
	var before []string
	for _, k := range c.opts.Keys.Keys() {
		if k.State == store.KeyCurrent {
			before = append(before, k.ID)
		}
	}
	if err := c.opts.Keys.RotateNow(r.Context()); err != nil {
		c.fail(w, r, err)
		return
	}
	if err := c.opts.Admin.RecordAdminAction(r.Context(), staff.actor(), broker.ActionRotateKeys, strings.Join(before, ","), reason); err != nil {
		c.fail(w, r, err)
		return
	}
	res := resultData{Heading: "Keys rotated", Back: "/console/keys", Lines: []string{"Retired: " + strings.Join(before, ", ") + "."}}
	c.render(w, r, http.StatusOK, "result", view{Title: res.Heading, Nav: "keys", Data: res})
}

type upstreamRow struct{ ID, Name, Status string }

// health: feed head, upstreams, store, version.
func (c *Console) health(w http.ResponseWriter, r *http.Request, _ staffSession) {
	head, err := c.opts.Admin.FeedHead(r.Context())
	if err != nil {
		c.fail(w, r, err)
		return
	}
	var ups []upstreamRow
	for _, u := range c.opts.Admin.UpstreamStatus() {
		row := upstreamRow{ID: u.ID, Name: u.Name, Status: "up"}
		if u.Err != nil {
			row.Status = "down: " + u.Err.Error()
		}
		ups = append(ups, row)
	}
	storeStatus := "not checked"
	if c.opts.Ready != nil {
		storeStatus = "ok"
		if err := c.opts.Ready(r.Context()); err != nil {
			storeStatus = "failing: " + err.Error()
		}
	}
	var clients []feedClient
	for _, cl := range c.opts.Admin.Clients() {
		if cl.RevocationReader {
			clients = append(clients, feedClient{ID: cl.ID, Name: cl.Name})
		}
	}
	readers, err := feedReaders(c.opts.Metrics, clients, c.now())
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.render(w, r, http.StatusOK, "health", view{Title: "Edges and health", Nav: "health", Data: struct {
		FeedHead    int64
		Readers     []feedReader
		ReadersSeen bool // the registry is there to read polls from
		Upstreams   []upstreamRow
		Store       string
		Version     string
	}{head, readers, c.opts.Metrics != nil, ups, storeStatus, c.opts.Version}})
}

// auditQuery reads the audit filters of r: person (the event's target or
// the subject of the session it ends), action, actor, since
// and until (YYYY-MM-DD or RFC 3339, UTC), before.
func auditQuery(r *http.Request) (store.AuditQuery, error) {
	v := r.URL.Query()
	q := store.AuditQuery{Person: strings.TrimSpace(v.Get("person")), Action: strings.TrimSpace(v.Get("action")), Actor: strings.TrimSpace(v.Get("actor")), Limit: pageSize}
	var err error
	if q.Since, err = parseDay(v.Get("since"), false); err != nil {
		return q, fmt.Errorf("since: %w", err)
	}
	if q.Until, err = parseDay(v.Get("until"), true); err != nil {
		return q, fmt.Errorf("until: %w", err)
	}
	if b := v.Get("before"); b != "" {
		if q.Before, err = strconv.ParseInt(b, 10, 64); err != nil || q.Before < 1 {
			return q, errors.New("before: not a sequence number")
		}
	}
	return q, nil
}

// parseDay reads a date (a whole day; with end, the instant after it) or
// an RFC 3339 instant; "" is the zero time.
func parseDay(s string, end bool) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		if end {
			t = t.AddDate(0, 0, 1)
		}
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, errors.New("use YYYY-MM-DD or an RFC 3339 time")
	}
	return t, nil
}

func (c *Console) audit(w http.ResponseWriter, r *http.Request, _ staffSession) {
	q, err := auditQuery(r)
	if err != nil {
		c.message(w, r, http.StatusBadRequest, "Bad filter", err.Error(), &link{Href: "/console/audit", Text: "All audit events"})
		return
	}
	page, err := c.opts.Admin.QueryAudit(r.Context(), q)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	v := r.URL.Query()
	v.Del("before")
	export := "/console/audit.jsonl?" + v.Encode()
	next := ""
	if page.Next != 0 {
		v.Set("before", strconv.FormatInt(page.Next, 10))
		next = "/console/audit?" + v.Encode()
	}
	c.render(w, r, http.StatusOK, "audit", view{Title: "Audit log", Nav: "audit", Data: struct {
		Person, Action, Actor, Since, Until string
		Events                              []store.AuditEvent
		Next, Export                        string
	}{q.Person, q.Action, q.Actor, r.URL.Query().Get("since"), r.URL.Query().Get("until"), page.Events, next, export}})
}

// auditExportMax bounds one export.
const auditExportMax = 100_000

// auditExport streams the filtered audit log as JSON lines, newest first.
func (c *Console) auditExport(w http.ResponseWriter, r *http.Request, _ staffSession) {
	q, err := auditQuery(r)
	if err != nil {
		c.message(w, r, http.StatusBadRequest, "Bad filter", err.Error(), nil)
		return
	}
	q.Limit = store.MaxPageSize
	w.Header().Set("Content-Type", "application/jsonl; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="keyward-audit.jsonl"`)
	enc := json.NewEncoder(w)
	for n := 0; n < auditExportMax; {
		page, err := c.opts.Admin.QueryAudit(r.Context(), q)
		if err != nil {
			c.log.ErrorContext(r.Context(), "audit export failed", "err", err)
			return // the export ends short; the status is already sent
		}
		for _, e := range page.Events {
			_ = enc.Encode(struct {
				Seq    int64     `json:"seq"`
				At     time.Time `json:"at"`
				Actor  string    `json:"actor"`
				Action string    `json:"action"`
				Target string    `json:"target"`
				Reason string    `json:"reason"`
			}{e.Seq, e.At, e.Actor, e.Action, e.Target, e.Reason})
		}
		n += len(page.Events)
		if page.Next == 0 {
			return
		}
		q.Before = page.Next
	}
}
