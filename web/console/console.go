package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/keys"
	"github.com/keyward/keyward/store"
)

// Admin is what the console needs from the broker (*broker.Broker): the
// same admin operations the JSON admin API calls.
type Admin interface {
	Subject(ctx context.Context, id string) (store.Subject, error)
	Sessions(ctx context.Context, subject string) ([]store.Session, error)
	RefreshFamilies(ctx context.Context, subject string) ([]broker.RefreshFamily, error)
	SearchSubjects(ctx context.Context, q store.SubjectQuery) (store.SubjectPage, error)
	QueryAudit(ctx context.Context, q store.AuditQuery) (store.AuditPage, error)
	FeedHead(ctx context.Context) (int64, error)
	UpstreamStatus() []broker.UpstreamStatus
	Clients() []broker.ClientInfo
	Deprovision(ctx context.Context, subject, reason, actor string) (store.DeprovisionResult, error)
	Reinstate(ctx context.Context, subject, reason, actor string) (store.Subject, error)
	RevokeSession(ctx context.Context, sessionID, reason, actor string) (broker.SessionRevocation, error)
	RecordAdminAction(ctx context.Context, actor, action, target, reason string) error
}

var _ Admin = (*broker.Broker)(nil)

// Keys is what the console needs from the key manager (*keys.Manager).
type Keys interface {
	Keys() []keys.KeyInfo
	NextRotation() time.Time
	RotateNow(ctx context.Context) error
}

var _ Keys = (*keys.Manager)(nil)

// Options builds a Console.
type Options struct {
	Config Config // SetDefaults already applied, Validate passed
	Issuer string
	Admin  Admin
	Keys   Keys
	// Secret seals the console's cookies and CSRF tokens (at least 32
	// bytes, shared by replicas; cmd derives it from the session secret).
	Secret []byte
	// Transport reaches the broker's own endpoints (discovery, token,
	// keys) for the console's sign-in: normally a Loopback bound to the
	// broker's handler. Nil: http.DefaultTransport, over the network.
	Transport http.RoundTripper
	// InsecureCookies drops __Host- and Secure (tests over plain http to a
	// non-loopback name only).
	InsecureCookies bool
	// Ready reports the store's health for the health page (nil: not shown).
	Ready func(ctx context.Context) error
	// Metrics is the registry web registers its metrics with; the health
	// page reads each revocation-feed reader's last poll and lag from it
	// (nil: the readers are listed without them).
	Metrics prometheus.Gatherer
	Version string
	Logger  *slog.Logger
	Now     func() time.Time
}

// Console serves /console.
type Console struct {
	opts    Options
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	jar     jar
	signin  *signin
	pages   map[string]*template.Template
	handler http.Handler
}

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static/console.css
var staticFiles embed.FS

// New builds the console.
func New(opts Options) (*Console, error) {
	if opts.Admin == nil || opts.Keys == nil {
		return nil, errors.New("console: admin and keys are required")
	}
	if len(opts.Secret) < 32 {
		return nil, errors.New("console: the cookie secret must be at least 32 bytes")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Transport == nil {
		opts.Transport = http.DefaultTransport
	}
	cfg := opts.Config
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	c := &Console{
		opts: opts, cfg: cfg, now: opts.Now,
		log: opts.Logger.With("component", "console"),
		jar: newJar(opts.Secret, !opts.InsecureCookies),
	}
	c.signin = newSignin(cfg, strings.TrimSuffix(opts.Issuer, "/"), opts.Transport)
	pages, err := parseTemplates()
	if err != nil {
		return nil, err
	}
	c.pages = pages
	c.handler = c.routes()
	return c, nil
}

// ServeHTTP serves every path under /console.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.handler.ServeHTTP(w, r) }

// csp: no script at all, styles from the console's own files, forms only
// to itself, never framed.
const csp = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func (c *Console) routes() http.Handler {
	mux := http.NewServeMux()
	staff := func(role string, h func(http.ResponseWriter, *http.Request, staffSession)) http.Handler {
		return c.requireStaff(role, h)
	}
	mux.HandleFunc("GET /console/login", c.login)
	mux.HandleFunc("GET "+CallbackPath, c.callback)
	mux.Handle("POST /console/logout", staff(roleHelpdesk, c.logout))
	mux.Handle("GET /console/{$}", staff(roleHelpdesk, c.people))
	mux.Handle("GET /console/people/{id}", staff(roleHelpdesk, c.person))
	mux.Handle("GET /console/people/{id}/confirm", staff(roleAdmin, c.confirmPerson))
	mux.Handle("POST /console/people/{id}/act", staff(roleAdmin, c.actPerson))
	mux.Handle("GET /console/keys", staff(roleHelpdesk, c.keysPage))
	mux.Handle("GET /console/keys/confirm", staff(roleAdmin, c.confirmRotate))
	mux.Handle("POST /console/keys/rotate", staff(roleAdmin, c.rotate))
	mux.Handle("GET /console/health", staff(roleHelpdesk, c.health))
	mux.Handle("GET /console/audit", staff(roleHelpdesk, c.audit))
	mux.Handle("GET /console/audit.jsonl", staff(roleHelpdesk, c.auditExport))
	css, _ := fs.Sub(staticFiles, "static")
	mux.Handle("GET /console/static/", http.StripPrefix("/console/static/", http.FileServerFS(css)))
	mux.HandleFunc("/console/", func(w http.ResponseWriter, r *http.Request) {
		c.message(w, r, http.StatusNotFound, "Not found", "There is no such console page.", nil)
	})
	return headers(mux)
}

// headers sets the console's security headers on every response.
func headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if !strings.HasPrefix(r.URL.Path, "/console/static/") {
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

// Roles, in increasing power.
const (
	roleHelpdesk = "helpdesk"
	roleAdmin    = "admin"
)

type staffKey struct{}

// requireStaff serves h only to a signed-in staff member of at least role
// whose subject is still active, and checks the CSRF token of every POST.
func (c *Console) requireStaff(role string, h func(http.ResponseWriter, *http.Request, staffSession)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := c.now()
		sess, ok := c.jar.session(r, now, c.cfg)
		if !ok {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/console/login", http.StatusSeeOther)
				return
			}
			c.message(w, r, http.StatusForbidden, "Signed out", "Your console session has ended. Sign in again; nothing was done.", nil)
			return
		}
		// A deprovisioned (or deleted) staff member loses the console on
		// the next request, whatever the cookie says.
		sub, err := c.opts.Admin.Subject(r.Context(), sess.Sub)
		if err != nil && !errors.Is(err, broker.ErrUnknownSubject) {
			c.fail(w, r, err)
			return
		}
		if err != nil || sub.Disabled || sub.NotBefore.After(time.UnixMilli(sess.IAT)) {
			c.jar.clear(w, c.jar.sessionName)
			c.log.InfoContext(r.Context(), "console access refused: staff member withdrawn", "event", "console_refused", "sub", sess.Sub)
			c.message(w, r, http.StatusForbidden, "Access withdrawn", "Your access to Keyward has been withdrawn, so the console is closed to you.", nil)
			return
		}
		if role == roleAdmin && sess.Role != roleAdmin {
			c.message(w, r, http.StatusForbidden, "Not allowed", "Your role is help desk: you can search and view, not act. Ask a Keyward administrator.", nil)
			return
		}
		if r.Method == http.MethodPost {
			if err := r.ParseForm(); err != nil || !c.jar.checkCSRF(sess.SID, r.PostForm.Get("csrf")) {
				c.log.InfoContext(r.Context(), "console form refused: bad CSRF token", "event", "console_csrf_refused", "sub", sess.Sub, "path", r.URL.Path)
				c.message(w, r, http.StatusForbidden, "Form expired", "This form did not come from your console session, so nothing was done. Go back, reload the page and try again.", nil)
				return
			}
		}
		sess.Seen = now.UnixMilli()
		c.jar.setSession(w, sess, c.cfg)
		h(w, r.WithContext(context.WithValue(r.Context(), staffKey{}, sess)), sess)
	})
}

// actor is the audit actor of the staff member's actions.
func (s staffSession) actor() string { return "console:" + s.Sub }

// fail answers an unexpected error: logged with the request's context, a
// page without its detail.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, err error) {
	c.log.ErrorContext(r.Context(), "console request failed", "err", err, "path", r.URL.Path)
	c.message(w, r, http.StatusInternalServerError, "Something went wrong", "Keyward could not complete this request. It is logged; try again, or look at the broker's log.", nil)
}
