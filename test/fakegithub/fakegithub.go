package fakegithub

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keyward/keyward/test/internal/fakesrv"
)

// Email is one of the user's email addresses (GET /user/emails).
type Email struct {
	Email    string
	Primary  bool
	Verified bool
}

// Team is a team membership (GET /user/teams).
type Team struct {
	Org, Slug string
}

// User is the account the fake signs in.
type User struct {
	ID    int64  // the stable numeric id
	Login string // the login, which a person may change
	Name  string // "" sends null, as GitHub does for no name
	// PublicEmail is /user's email field: the public profile email, which
	// GitHub does not promise is verified. "" sends null.
	PublicEmail string
	Emails      []Email
	Orgs        []string // organisation logins, in order
	Teams       []Team
	// Extra fields of /user, sent as they are (e.g. "company").
	Extra map[string]any
}

// Config configures a Server. Tagless; fields are read once by New.
type Config struct {
	// URL is the base URL; NewTest sets it.
	URL                    string
	ClientID, ClientSecret string
	// CallbackURL is the application's registered callback: a redirect_uri,
	// when sent, must equal it. Required.
	CallbackURL string
	// User is approved at once by the authorization endpoint.
	User   User
	Logger *slog.Logger
	Now    func() time.Time
}

// Endpoint names accepted by Hits.
var endpoints = []string{"authorize", "token", "user", "emails", "orgs", "teams"}

// codeTTL is how long a code may be redeemed (GitHub: 10 minutes).
const codeTTL = 10 * time.Minute

// Server is the fake GitHub. All methods are safe for concurrent use,
// knobs included.
type Server struct {
	base         string // URL without a trailing slash
	prefix       string // its path
	clientID     string
	clientSecret string
	callback     string
	logger       *slog.Logger
	now          func() time.Time
	hits         *fakesrv.Counters
	handler      http.Handler

	mu          sync.Mutex
	user        User
	tokenError  string   // "": off
	granted     []string // nil: as requested
	grantedSet  bool
	pageSize    int            // 0: GitHub's (per_page, default 30, at most 100)
	fail        map[string]int // endpoint → status
	foreignNext bool
	lastAuth    url.Values
	codes       map[string]grant
	tokens      map[string]grant
}

// grant is what a code or access token stands for.
type grant struct {
	redirectURI, challenge string
	scopes                 []string
	expires                time.Time
}

// New checks cfg and returns a Server; it does no I/O.
func New(cfg Config) (*Server, error) {
	var errs []error
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		errs = append(errs, errors.New("url: must be an absolute http(s) URL without a query"))
	}
	if cfg.ClientID == "" || cfg.ClientSecret == "" {
		errs = append(errs, errors.New("client id and secret: both are required"))
	}
	if cfg.CallbackURL == "" {
		errs = append(errs, errors.New("callback url: required"))
	}
	if cfg.User.ID <= 0 || cfg.User.Login == "" {
		errs = append(errs, errors.New("user: needs a positive id and a login"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("fakegithub: %w", err)
	}
	s := &Server{
		base:         strings.TrimRight(cfg.URL, "/"),
		prefix:       strings.TrimRight(u.EscapedPath(), "/"),
		clientID:     cfg.ClientID,
		clientSecret: cfg.ClientSecret,
		callback:     cfg.CallbackURL,
		logger:       cfg.Logger,
		now:          cfg.Now,
		hits:         fakesrv.NewCounters(endpoints...),
		user:         cloneUser(cfg.User),
		fail:         map[string]int{},
		codes:        map[string]grant{},
		tokens:       map[string]grant{},
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	s.logger = s.logger.With("component", "fakegithub")
	if s.now == nil {
		s.now = time.Now
	}
	s.handler = s.routes()
	return s, nil
}

// TB is the part of testing.TB that NewTest uses.
type TB = fakesrv.TB

// NewTest starts a Server on an httptest listener at 127.0.0.1, with
// cfg.URL set to the listener's URL, and closes it when the test ends.
func NewTest(tb TB, cfg Config) *Server {
	tb.Helper()
	return fakesrv.Start(tb, "fakegithub.New", func(url string) (*Server, error) {
		cfg.URL = url
		return New(cfg)
	})
}

// URL returns the base URL (Keyward's githubURL).
func (s *Server) URL() string { return s.base }

// APIURL returns the REST API's base URL: URL + /api/v3.
func (s *Server) APIURL() string { return s.base + "/api/v3" }

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	p := s.prefix
	mux.HandleFunc("GET "+p+"/login/oauth/authorize", s.hits.Count("authorize", s.authorize))
	mux.HandleFunc("POST "+p+"/login/oauth/access_token", s.hits.Count("token", s.token))
	mux.HandleFunc("GET "+p+"/api/v3/user", s.hits.Count("user", s.api("user", s.getUser)))
	mux.HandleFunc("GET "+p+"/api/v3/user/emails", s.hits.Count("emails", s.api("emails", s.getEmails)))
	mux.HandleFunc("GET "+p+"/api/v3/user/orgs", s.hits.Count("orgs", s.api("orgs", s.getOrgs)))
	mux.HandleFunc("GET "+p+"/api/v3/user/teams", s.hits.Count("teams", s.api("teams", s.getTeams)))
	return mux
}

// authorize approves the configured user at once and redirects to the
// callback with a code and the state.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	s.lastAuth = q
	s.mu.Unlock()
	if q.Get("client_id") != s.clientID {
		http.Error(w, "fakegithub: unknown client_id", http.StatusBadRequest)
		return
	}
	redirect := q.Get("redirect_uri")
	if redirect == "" {
		redirect = s.callback
	}
	if redirect != s.callback {
		http.Error(w, "fakegithub: redirect_uri is not the application's callback URL", http.StatusBadRequest)
		return
	}
	challenge := q.Get("code_challenge")
	if challenge != "" && q.Get("code_challenge_method") != "S256" {
		http.Error(w, "fakegithub: code_challenge_method must be S256", http.StatusBadRequest)
		return
	}
	code := randomToken()
	s.mu.Lock()
	s.codes[code] = grant{
		redirectURI: q.Get("redirect_uri"), challenge: challenge,
		scopes:  strings.FieldsFunc(q.Get("scope"), func(r rune) bool { return r == ' ' || r == ',' }),
		expires: s.now().Add(codeTTL),
	}
	s.mu.Unlock()
	to, _ := url.Parse(redirect)
	v := to.Query()
	v.Set("code", code)
	if st := q.Get("state"); st != "" {
		v.Set("state", st)
	}
	to.RawQuery = v.Encode()
	http.Redirect(w, r, to.String(), http.StatusFound)
}

// token redeems a code. GitHub answers errors with HTTP 200 and an error
// field, form-encoded unless the client accepts JSON.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "fakegithub: malformed form", http.StatusBadRequest)
		return
	}
	f := r.PostForm
	s.mu.Lock()
	injected := s.tokenError
	s.mu.Unlock()
	if injected != "" {
		tokenAnswer(w, r, url.Values{"error": {injected}, "error_description": {"injected failure"}})
		return
	}
	if f.Get("client_id") != s.clientID ||
		subtle.ConstantTimeCompare([]byte(f.Get("client_secret")), []byte(s.clientSecret)) != 1 {
		tokenAnswer(w, r, url.Values{"error": {"incorrect_client_credentials"}, "error_description": {"The client_id and/or client_secret passed are incorrect."}})
		return
	}
	code := f.Get("code")
	s.mu.Lock()
	g, ok := s.codes[code]
	delete(s.codes, code) // single use, whatever happens next
	s.mu.Unlock()
	switch {
	case !ok || s.now().After(g.expires):
		tokenAnswer(w, r, url.Values{"error": {"bad_verification_code"}, "error_description": {"The code passed is incorrect or expired."}})
		return
	case f.Has("redirect_uri") && f.Get("redirect_uri") != s.callback,
		g.redirectURI != "" && f.Get("redirect_uri") != g.redirectURI:
		tokenAnswer(w, r, url.Values{"error": {"redirect_uri_mismatch"}, "error_description": {"The redirect_uri MUST match the registered callback URL for this application."}})
		return
	case g.challenge != "" && !pkceMatches(f.Get("code_verifier"), g.challenge),
		g.challenge == "" && f.Has("code_verifier"):
		tokenAnswer(w, r, url.Values{"error": {"bad_verification_code"}, "error_description": {"The code_verifier does not match the code_challenge."}})
		return
	}
	s.mu.Lock()
	scopes := g.scopes
	if s.grantedSet {
		scopes = slices.Clone(s.granted)
	}
	access := "gho_" + randomToken()
	s.tokens[access] = grant{scopes: scopes}
	s.mu.Unlock()
	tokenAnswer(w, r, url.Values{"access_token": {access}, "token_type": {"bearer"}, "scope": {strings.Join(scopes, ",")}})
}

// pkceMatches checks verifier against an S256 challenge. RFC 7636 §4.6
func pkceMatches(verifier, challenge string) bool {
	sum := sha256.Sum256([]byte(verifier))
	got := base64.RawURLEncoding.EncodeToString(sum[:])
	return verifier != "" && subtle.ConstantTimeCompare([]byte(got), []byte(challenge)) == 1
}

// tokenAnswer writes v as JSON when the client accepts it, else
// form-encoded, always with status 200 as GitHub does.
func tokenAnswer(w http.ResponseWriter, r *http.Request, v url.Values) {
	w.Header().Set("Cache-Control", "no-store")
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		m := map[string]string{}
		for k := range v {
			m[k] = v.Get(k)
		}
		writeJSON(w, http.StatusOK, m)
		return
	}
	w.Header().Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	_, _ = w.Write([]byte(v.Encode()))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func randomToken() string { return rand.Text() }

func cloneUser(u User) User {
	u.Emails = slices.Clone(u.Emails)
	u.Orgs = slices.Clone(u.Orgs)
	u.Teams = slices.Clone(u.Teams)
	if u.Extra != nil {
		extra := make(map[string]any, len(u.Extra))
		for k, v := range u.Extra {
			extra[k] = v
		}
		u.Extra = extra
	}
	return u
}
