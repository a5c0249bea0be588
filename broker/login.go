package broker

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/ory/fosite"
	"golang.org/x/oauth2"

	"github.com/keyward/keyward/federation"
	"github.com/keyward/keyward/store"
)

// AuthorizeInput is an /authorize request as web hands it over.
type AuthorizeInput struct {
	Request *http.Request
	// SessionID is the Keyward session named by the session cookie (its
	// seal already checked by web); empty when there is none.
	SessionID string
	// Binding is the browser's login-cookie value, if it has one.
	Binding string
	// ClientIP is the browser's address as web determined it (the peer,
	// or X-Forwarded-For from a trusted proxy); it picks the bucket of the
	// login-attempt rate limit (loginlimit.go). Invalid: unknown.
	ClientIP netip.Addr
}

// ChooseInput is a choice on the provider chooser (GET /login/{upstream}).
type ChooseInput struct {
	AttemptID, UpstreamID string
	// Binding is the browser's login-cookie value.
	Binding string
	// ClientIP is as in AuthorizeInput.
	ClientIP netip.Addr
}

// Outcome tells web what to do next. Exactly one of Client (an answer to
// the client is ready), Chooser and RedirectURL applies.
type Outcome struct {
	// Client: answer the client (Broker.WriteClientAnswer).
	Client *ClientAnswer
	// Chooser: show the provider chooser.
	Chooser *Chooser
	// RedirectURL: send the browser there (the upstream's sign-in).
	RedirectURL string
	// Binding: set the login cookie to this value (it binds the attempt to
	// the browser that started it).
	Binding string
	// Session: set the session cookie to this session.
	Session *SessionCookie
	// ClearSession: the session cookie names no valid session; delete it.
	ClearSession bool
}

// ClientAnswer is the authorization response to the client: a code, or an
// OAuth error (RFC 6749 §4.1.2.1). Broker.WriteClientAnswer writes it, as
// fosite renders it for the request's response mode, with RFC 9207 iss.
type ClientAnswer struct {
	ar   fosite.AuthorizeRequester
	resp fosite.AuthorizeResponder // nil: err
	err  error
}

// Err is the OAuth error sent to the client, nil for a code (for logs).
func (a *ClientAnswer) Err() error { return a.err }

// WriteClientAnswer writes a to the client.
func (si *signIn) WriteClientAnswer(ctx context.Context, w http.ResponseWriter, a *ClientAnswer) {
	if a.resp != nil {
		si.provider.WriteAuthorizeResponse(ctx, w, a.ar, a.resp)
		return
	}
	si.provider.WriteAuthorizeError(ctx, &issWriter{ResponseWriter: w, iss: si.issuer}, a.ar, a.err)
}

// SessionCookie names a Keyward session for the session cookie.
type SessionCookie struct {
	ID        string
	ExpiresAt time.Time
}

// Chooser is what the provider chooser page shows.
type Chooser struct {
	AttemptID  string
	ClientName string
	Upstreams  []ChooserUpstream
}

// ChooserUpstream is one button of the chooser.
type ChooserUpstream struct {
	ID, Name string
	// Unavailable: the upstream cannot take sign-ins now; show the button
	// disabled.
	Unavailable bool
}

// signIn is the sign-in part of the broker: /authorize (with single
// sign-on), the provider chooser and the upstream's callback. It holds
// only what those need; what goes into the tokens is claimRules', whether
// a person may still sign in is subjects', and the upstream re-check at
// single sign-on is recheck's.
type signIn struct {
	provider   fosite.OAuth2Provider
	store      signInStore
	clients    *clientRegistry
	upstreams  []Upstream
	byID       map[string]Upstream
	limiter    *loginLimiter // nil: LoginLimits.InsecureUnlimited
	recheck    *recheck
	subjects   *subjects
	claims     *claimRules
	issuer     string
	loginTTL   time.Duration
	sessionTTL time.Duration
	log        *slog.Logger
	now        func() time.Time
}

// signInStore is the part of the store sign-in uses.
type signInStore interface {
	CreateLoginAttempt(ctx context.Context, a store.LoginAttempt) error
	GetLoginAttempt(ctx context.Context, id string) (store.LoginAttempt, error)
	GetLoginAttemptByState(ctx context.Context, state string) (store.LoginAttempt, error)
	UpdateLoginAttempt(ctx context.Context, id string, updater func(store.LoginAttempt) (store.LoginAttempt, error)) error
	DeleteLoginAttempt(ctx context.Context, id string) error
	CreateSession(ctx context.Context, s store.Session) error
	GetSession(ctx context.Context, id string) (store.Session, error)
	CreateGrant(ctx context.Context, g store.Grant) error // session-client records
	GetGrant(ctx context.Context, kind store.GrantKind, signature string) (store.Grant, error)
	batcher // uow.go
}

// Authorize handles GET and POST /authorize (OIDC Core §3.1.2).
func (si *signIn) Authorize(ctx context.Context, in AuthorizeInput) (_ Outcome, err error) {
	defer func() { err = asRefusal(err) }() // a store outage is RefusedStoreUnavailable
	// The form as fosite reads it. A parse error is left to fosite's own
	// error, but the caps hold for whatever was parsed all the same: Go
	// fills the form and still reports an error (a ';' in the query), and
	// fosite then takes the already-parsed form without complaint.
	_ = in.Request.ParseMultipartForm(1 << 20)
	if err := checkAuthorizeForm(in.Request.Form); err != nil {
		return Outcome{}, err
	}
	ar, err := si.provider.NewAuthorizeRequest(ctx, in.Request)
	if err != nil {
		return si.authorizeError(ctx, ar, err)
	}
	keepAuthorizeParams(ar.GetRequestForm()) // both the attempt and the code's records store it
	// PKCE is checked here, before the person signs in upstream, not only
	// when the code is issued.
	form := ar.GetRequestForm()
	if form.Get("code_challenge") == "" || form.Get("code_challenge_method") != "S256" {
		return si.authorizeError(ctx, ar, fosite.ErrInvalidRequest.WithHint(descPKCERequired))
	}
	prompt := strings.Fields(form.Get("prompt"))
	if has(prompt, "consent") {
		return si.authorizeError(ctx, ar, errNoConsentScreen)
	}
	forceLogin := forcesLogin(prompt)
	var maxAge *time.Duration
	if v := form.Get("max_age"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return si.authorizeError(ctx, ar, fosite.ErrInvalidRequest.WithHint(descMaxAge))
		}
		d := time.Duration(n) * time.Second
		maxAge = &d
	}

	out := Outcome{}
	if in.SessionID != "" {
		sess, err := si.validSession(ctx, in.SessionID)
		switch {
		case Unavailable(err): // the session may be fine: keep the cookie
			return Outcome{}, err
		case err != nil:
			out.ClearSession = true
		case forceLogin:
		case maxAge != nil && si.now().Sub(sess.AuthTime) > *maxAge:
		default:
			// Single sign-on: the Keyward session answers for the upstream,
			// once the upstream still vouches for the person (recheck.go).
			// A session the re-check ends sends the browser through a
			// fresh upstream sign-in, where the upstream decides.
			if err := si.recheck.recheckSession(ctx, sess); recheckEnded(err) {
				out.ClearSession = true
				break
			} else if err != nil {
				return Outcome{}, err
			}
			answer, err := si.completeSSO(ctx, ar, sess)
			if err != nil {
				return Outcome{}, err
			}
			out.Client = answer
			return out, nil
		}
	}
	if has(prompt, "none") {
		o, err := si.authorizeError(ctx, ar, fosite.ErrLoginRequired)
		o.ClearSession = out.ClearSession
		return o, err
	}

	binding := in.Binding
	if binding == "" {
		binding = randomString(32)
	}
	out.Binding = binding
	now := si.now()
	attempt := store.LoginAttempt{
		ID:             randomString(24),
		ClientID:       ar.GetClient().GetID(),
		AuthorizeForm:  form,
		BrowserBinding: hashString(binding),
		CreatedAt:      now,
		ExpiresAt:      now.Add(si.loginTTL),
	}
	opts := federation.AuthOptions{LoginHint: form.Get("login_hint")}
	if forceLogin {
		opts.Prompt = "login"
	}
	opts.MaxAge = maxAge
	if len(si.upstreams) == 1 {
		up := si.upstreams[0]
		if err := upstreamReady(up); err != nil {
			si.log.WarnContext(ctx, "sign-in refused: the only upstream is unavailable", "upstream", up.ID(), "err", err)
			return Outcome{}, errUpstreamUnavailable(up, false, err)
		}
		url := si.prepareUpstream(&attempt, up, opts)
		if url == "" {
			return Outcome{}, errUpstreamUnavailable(up, false, errNoAuthURL)
		}
		if err := si.createLoginAttempt(ctx, attempt, in.ClientIP); err != nil {
			return Outcome{}, err
		}
		out.RedirectURL = url
		return out, nil
	}
	if err := si.createLoginAttempt(ctx, attempt, in.ClientIP); err != nil {
		return Outcome{}, err
	}
	ch := &Chooser{AttemptID: attempt.ID, ClientName: ar.GetClient().GetID()}
	if c, ok := si.clients.get(ch.ClientName); ok {
		ch.ClientName = c.name
	}
	for _, u := range si.upstreams {
		cu := ChooserUpstream{ID: u.ID(), Name: u.Name()}
		if err := upstreamReady(u); err != nil {
			cu.Unavailable = true
		}
		ch.Upstreams = append(ch.Upstreams, cu)
	}
	out.Chooser = ch
	return out, nil
}

// completeSSO answers an /authorize request from the live session sess:
// the code's records are one unit of work (uow.go), applied once.
func (si *signIn) completeSSO(ctx context.Context, ar fosite.AuthorizeRequester, sess store.Session) (*ClientAnswer, error) {
	ctx, unit := withUnitOfWork(ctx)
	defer unit.drop()
	answer, err := si.complete(ctx, ar, sess, si.now())
	if err != nil {
		return nil, err
	}
	if _, err := unit.apply(ctx, si.store); err != nil {
		return nil, fmt.Errorf("store the authorization: %w", err)
	}
	return answer, nil
}

// The prompt values Keyward honours (OIDC Core §3.1.2.1), advertised in
// discovery's prompt_values_supported:
//   - none: single sign-on or login_required;
//   - login: no single sign-on, and the upstream is asked for a fresh
//     sign-in (prompt=login there);
//   - select_account: the same as login, so with several upstreams the
//     person chooses again on the chooser, and at the upstream signs in
//     afresh (possibly as someone else).
//
// consent is refused with consent_required (errNoConsentScreen): Keyward
// has no consent screen, and OIDC Core says a provider that cannot obtain
// consent MUST answer an error. Treating it as login would tell the client
// the person consented when nobody asked them.
var promptValues = []string{"none", "login", "select_account"}

// errNoConsentScreen answers prompt=consent.
var errNoConsentScreen = fosite.ErrConsentRequired.WithHint(descNoConsentScreen)

// forcesLogin reports whether prompt skips single sign-on and asks the
// upstream for a fresh sign-in.
func forcesLogin(prompt []string) bool {
	return has(prompt, "login") || has(prompt, "select_account")
}

// createLoginAttempt writes a new login attempt, unless the rate limit
// refuses it (RefusedLoginLimited; nothing is written).
func (si *signIn) createLoginAttempt(ctx context.Context, a store.LoginAttempt, client netip.Addr) error {
	if err := si.limitLogin(ctx, client); err != nil {
		return err
	}
	if err := si.store.CreateLoginAttempt(ctx, a); err != nil {
		return fmt.Errorf("create login attempt: %w", err)
	}
	return nil
}

// ChooseUpstream continues a login attempt at the upstream the person chose
// on the chooser and returns where to send the browser.
func (si *signIn) ChooseUpstream(ctx context.Context, in ChooseInput) (_ string, err error) {
	defer func() { err = asRefusal(err) }() // a store outage is RefusedStoreUnavailable
	attemptID := in.AttemptID
	u, ok := si.byID[in.UpstreamID]
	if !ok {
		return "", refuse(RefusedUnknownUpstream, nil)
	}
	a, err := si.store.GetLoginAttempt(ctx, attemptID)
	if errors.Is(err, store.ErrNotFound) {
		return "", errExpiredAttempt(err)
	}
	if err != nil {
		return "", fmt.Errorf("get login attempt: %w", err)
	}
	if err := si.checkAttempt(a, in.Binding); err != nil {
		return "", err
	}
	if err := upstreamReady(u); err != nil {
		si.log.InfoContext(ctx, "sign-in refused: upstream unavailable", "upstream", u.ID(), "err", err)
		return "", errUpstreamUnavailable(u, len(si.upstreams) > 1, err)
	}
	// Every choice rewrites the attempt: it counts as a login attempt.
	if err := si.limitLogin(ctx, in.ClientIP); err != nil {
		return "", err
	}
	opts := federation.AuthOptions{LoginHint: a.AuthorizeForm.Get("login_hint")}
	if forcesLogin(strings.Fields(a.AuthorizeForm.Get("prompt"))) {
		opts.Prompt = "login"
	}
	var url string
	err = si.store.UpdateLoginAttempt(ctx, attemptID, func(old store.LoginAttempt) (store.LoginAttempt, error) {
		if old.UpstreamID != "" {
			// A second choice replaces the first; the old state dies.
			old.State, old.Nonce, old.PKCEVerifier = "", "", ""
		}
		url = si.prepareUpstream(&old, u, opts)
		if url == "" {
			return old, errNoAuthURL
		}
		return old, nil
	})
	if errors.Is(err, errNoAuthURL) {
		return "", errUpstreamUnavailable(u, len(si.upstreams) > 1, err)
	}
	if err != nil {
		return "", fmt.Errorf("update login attempt: %w", err)
	}
	return url, nil
}

// errNoAuthURL: an upstream gave no authorization URL (it is not ready), so
// there is nowhere to send the browser.
var errNoAuthURL = errors.New("upstream returned no authorization URL")

// prepareUpstream fills the upstream leg's protections into the attempt
// and returns the upstream's authorization URL ("" when the upstream is not
// ready).
func (si *signIn) prepareUpstream(a *store.LoginAttempt, u Upstream, opts federation.AuthOptions) string {
	a.UpstreamID = u.ID()
	a.State = randomString(32)
	a.Nonce = randomString(32)
	a.PKCEVerifier = oauth2.GenerateVerifier()
	return u.AuthCodeURL(a.State, a.Nonce, a.PKCEVerifier, opts)
}

func (si *signIn) checkAttempt(a store.LoginAttempt, binding string) error {
	if !a.ExpiresAt.After(si.now()) {
		return errExpiredAttempt(nil)
	}
	if binding == "" || subtle.ConstantTimeCompare([]byte(hashString(binding)), []byte(a.BrowserBinding)) != 1 {
		return refuse(RefusedOtherBrowser, nil)
	}
	return nil
}

func errExpiredAttempt(cause error) *Refusal {
	return refuse(RefusedAttemptExpired, cause)
}

// validSession returns the Keyward session id names if it is alive and its
// subject may still sign in.
func (si *signIn) validSession(ctx context.Context, id string) (store.Session, error) {
	s, err := si.store.GetSession(ctx, id)
	if err != nil {
		return s, fmt.Errorf("get session: %w", err)
	}
	if !s.ExpiresAt.After(si.now()) {
		return s, errors.New("session expired")
	}
	if err := si.subjects.checkSubject(ctx, s.Subject, s.AuthTime); err != nil {
		return s, err
	}
	return s, nil
}

// authorizeError answers an /authorize failure: a redirect to the client
// only once the client and redirect_uri are known good, else an error page.
func (si *signIn) authorizeError(ctx context.Context, ar fosite.AuthorizeRequester, err error) (Outcome, error) {
	if ar == nil || !ar.IsRedirectURIValid() {
		return Outcome{}, invalidAuthorize(err)
	}
	si.log.InfoContext(ctx, "authorize request refused", "client_id", ar.GetClient().GetID(), "err", err)
	return Outcome{Client: &ClientAnswer{ar: ar, err: err}}, nil
}

// hintRedirectURIRequired is fosite's hint for an OpenID Connect
// /authorize without redirect_uri.
const hintRedirectURIRequired = "The 'redirect_uri' parameter is required when using OpenID Connect 1.0."

// invalidAuthorize refuses an /authorize request that cannot be answered
// to the application: it names an unknown client, an unregistered
// redirect_uri, or is otherwise invalid.
func invalidAuthorize(err error) *Refusal {
	var rfc *fosite.RFC6749Error
	if !errors.As(err, &rfc) {
		return refuse(RefusedInvalidAuthorize, err)
	}
	// fosite's error text is only its code: the log keeps its hint too.
	if rfc.HintField != "" {
		err = fmt.Errorf("%w: %s", err, rfc.HintField)
	}
	switch {
	case rfc.ErrorField == fosite.ErrInvalidClient.ErrorField:
		return refuse(RefusedUnknownClient, err)
	case rfc.HintField == hintRedirectURIRequired:
		return refuse(RefusedNoRedirectURI, err)
	case strings.Contains(rfc.HintField, "redirect_uri"), strings.Contains(rfc.HintField, "redirect URI"):
		return refuse(RefusedUnregisteredRedirect, err)
	default:
		return &Refusal{Kind: RefusedInvalidAuthorize, Detail: rfc.GetDescription(), cause: err}
	}
}

// issWriter adds the RFC 9207 iss parameter to an authorization error
// redirect, which fosite offers no hook for.
type issWriter struct {
	http.ResponseWriter
	iss string
}

func (w *issWriter) WriteHeader(status int) {
	if loc := w.Header().Get("Location"); loc != "" && status >= 300 && status < 400 {
		if u, err := parseURL(loc); err == nil {
			q := u.Query()
			if q.Get("iss") == "" {
				q.Set("iss", w.iss)
				u.RawQuery = q.Encode()
				w.Header().Set("Location", u.String())
			}
		}
	}
	w.ResponseWriter.WriteHeader(status)
}

func has(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func randomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // never fails on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func hashString(s string) string {
	h := sha256.Sum256([]byte(s))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

var subjectEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// SubjectID derives Keyward's stable, opaque subject from the upstream id and
// the upstream's sub.
func SubjectID(upstreamID, upstreamSubject string) string {
	h := sha256.Sum256([]byte("keyward-subject-v1\x00" + upstreamID + "\x00" + upstreamSubject))
	return subjectEncoding.EncodeToString(h[:20])
}
