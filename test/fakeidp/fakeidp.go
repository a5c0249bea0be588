package fakeidp

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/keyward/keyward/test/internal/fakesrv"
)

// User is an account at the fake IdP.
type User struct {
	Subject       string // the sub claim. Default: Username
	Username      string // login name and preferred_username
	Password      string
	Email         string
	EmailVerified bool
	Name          string
	Groups        []string
	Extra         map[string]any // added to ID tokens and userinfo as is
	// NoEmailVerified leaves email_verified out (unknown), where
	// EmailVerified false sends it as false.
	NoEmailVerified bool
	// TenantID and ObjectID are Azure AD's tid and oid claims, sent when
	// set; with Quirks.AzureMultiTenant the tenant is also in iss.
	TenantID, ObjectID string
}

// Client is a registered relying party.
type Client struct {
	ID, Secret string
	// RedirectURIs are matched exactly. They are also accepted as
	// post_logout_redirect_uri at /logout.
	RedirectURIs []string
}

// Config configures a Server. Tagless; fields are read once by New.
type Config struct {
	// Issuer is the exact issuer URL, known once the listener address is;
	// endpoints are served under its path. NewTest sets it.
	Issuer  string
	Users   []User
	Clients []Client
	// Algorithm signs ID tokens: RS256 or ES256. Default: RS256.
	Algorithm string
	// AutoLogin names the user that /authorize approves at once, without a
	// form (tests). Empty shows an HTML login form (the demo).
	AutoLogin string
	Title     string // heading of the login page. Default: "Fake IdP"
	// Hint is shown under the heading of the login page (the demo lists its
	// users there).
	Hint string
	// Quirks make the server behave like a particular provider.
	Quirks Quirks
	Logger *slog.Logger
	Now    func() time.Time
}

// Lifetimes of what the server hands out.
const (
	codeTTL  = time.Minute
	formTTL  = 10 * time.Minute
	tokenTTL = time.Hour
)

// Endpoint names accepted by Hits.
var endpoints = []string{"discovery", "keys", "authorize", "token", "userinfo", "logout", "graph"}

// Server is the fake identity provider. All methods are safe for concurrent
// use, knobs included.
type Server struct {
	issuer  string // as configured, exact
	base    string // issuer without a trailing slash, for endpoint URLs
	prefix  string // path of base
	alg     string
	title   string
	hint    string
	auto    string
	quirks  Quirks
	users   map[string]User   // by Username
	clients map[string]Client // by ID
	logger  *slog.Logger
	now     func() time.Time
	hits    *fakesrv.Counters
	handler http.Handler

	mu            sync.Mutex
	keyIndex      int
	key           jose.JSONWebKey
	nextClaims    map[string]any
	tamper        Tamper
	discIss       string // "" = the real issuer
	respIss       string // SetAuthResponseIssuer; "" = the default
	respIssOmit   bool
	failStatus    int
	refreshAnswer RefreshAnswer
	latency       time.Duration
	lastAuth      url.Values             // the query of the last GET /authorize
	lastLogout    url.Values             // the parameters of the last /logout
	forms         map[string]pendingForm // by form token
	codes         map[string]grant       // by code
	access        map[string]grant       // by access token
	refresh       map[string]grant       // by refresh token
}

// grant is what a code, access token or refresh token stands for.
type grant struct {
	clientID, redirectURI, username string
	scope, nonce, challenge         string
	authTime, expires               time.Time
}

// New checks cfg and returns a Server; it does no I/O.
func New(cfg Config) (*Server, error) {
	var errs []error
	u, err := url.Parse(cfg.Issuer)
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("issuer: %w", err))
	case (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "":
		errs = append(errs, errors.New("issuer: must be an absolute http(s) URL without query or fragment"))
	}
	alg := cfg.Algorithm
	if alg == "" {
		alg = "RS256"
	}
	if alg != "RS256" && alg != "ES256" {
		errs = append(errs, fmt.Errorf("algorithm: %q is not RS256 or ES256", alg))
	}
	s := &Server{
		issuer:  cfg.Issuer,
		alg:     alg,
		title:   cfg.Title,
		hint:    cfg.Hint,
		auto:    cfg.AutoLogin,
		quirks:  cfg.Quirks,
		users:   map[string]User{},
		clients: map[string]Client{},
		logger:  cfg.Logger,
		now:     cfg.Now,
		hits:    fakesrv.NewCounters(endpoints...),
		forms:   map[string]pendingForm{},
		codes:   map[string]grant{},
		access:  map[string]grant{},
		refresh: map[string]grant{},
	}
	for _, usr := range cfg.Users {
		if usr.Username == "" {
			errs = append(errs, errors.New("users: username must not be empty"))
			continue
		}
		if _, dup := s.users[usr.Username]; dup {
			errs = append(errs, fmt.Errorf("users: duplicate username %q", usr.Username))
		}
		if usr.Subject == "" {
			usr.Subject = usr.Username
		}
		usr.Groups = slices.Clone(usr.Groups)
		s.users[usr.Username] = usr
	}
	for _, c := range cfg.Clients {
		if c.ID == "" || len(c.RedirectURIs) == 0 {
			errs = append(errs, errors.New("clients: each client needs an id and a redirect uri"))
			continue
		}
		c.RedirectURIs = slices.Clone(c.RedirectURIs)
		s.clients[c.ID] = c
	}
	if _, ok := s.users[s.auto]; s.auto != "" && !ok {
		errs = append(errs, fmt.Errorf("auto login: no user %q", s.auto))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("fakeidp: %w", err)
	}
	s.base = trimSlash(cfg.Issuer)
	s.prefix = trimSlash(u.EscapedPath())
	if s.title == "" {
		s.title = "Fake IdP"
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	s.logger = s.logger.With("component", "fakeidp")
	if s.now == nil {
		s.now = time.Now
	}
	if s.key, err = keyAt(alg, 0); err != nil {
		return nil, fmt.Errorf("fakeidp: %w", err)
	}
	s.handler = s.routes()
	return s, nil
}

func trimSlash(s string) string {
	for len(s) > 0 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}

// TB is the part of testing.TB that NewTest uses.
type TB = fakesrv.TB

// NewTest starts a Server on an httptest listener at 127.0.0.1, with
// cfg.Issuer set to the listener's URL (with a trailing slash under
// Quirks.TrailingSlash), and closes it when the test ends.
func NewTest(tb TB, cfg Config) *Server {
	tb.Helper()
	return fakesrv.Start(tb, "fakeidp.New", func(url string) (*Server, error) {
		cfg.Issuer = url
		if cfg.Quirks.TrailingSlash {
			cfg.Issuer += "/"
		}
		return New(cfg)
	})
}

// URL returns the issuer URL.
func (s *Server) URL() string { return s.issuer }

// Handler returns the HTTP handler serving every endpoint under the issuer's
// path.
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	p := s.prefix
	mux.HandleFunc("GET "+p+"/.well-known/openid-configuration", s.hit("discovery", s.discovery))
	mux.HandleFunc("GET "+p+"/keys", s.hit("keys", s.keys))
	mux.HandleFunc("GET "+p+"/authorize", s.hit("authorize", s.authorize))
	// The login form posts back; cross-origin posts are refused outright.
	mux.Handle("POST "+p+"/authorize", http.NewCrossOriginProtection().Handler(s.hit("authorize", s.login)))
	mux.HandleFunc("POST "+p+"/token", s.hit("token", s.token))
	mux.HandleFunc(p+"/userinfo", s.hit("userinfo", s.userinfo))
	mux.HandleFunc(p+"/logout", s.hit("logout", s.logout))
	mux.HandleFunc("POST "+p+"/v1.0/me/getMemberObjects", s.hit("graph", s.graph))
	if s.quirks.AzureMultiTenant {
		for _, t := range []string{"organizations", "common"} {
			mux.HandleFunc("GET "+p+"/"+t+"/v2.0/.well-known/openid-configuration", s.hit("discovery", s.discovery))
		}
	}
	return mux
}

// hit counts the request and applies the injected latency.
func (s *Server) hit(name string, h http.HandlerFunc) http.HandlerFunc {
	return s.hits.Count(name, func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		d := s.latency
		s.mu.Unlock()
		if d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		h(w, r)
	})
}

// DemoUsers returns two demo accounts in different groups, fresh on every
// call. Their passwords are public:
//
//	alice / alice-demo   groups staff, admins
//	bob   / bob-demo     groups staff
func DemoUsers() []User {
	return []User{
		{
			Subject: "demo-alice", Username: "alice", Password: "alice-demo",
			Email: "alice@example.com", EmailVerified: true, Name: "Alice Example",
			Groups: []string{"staff", "admins"},
		},
		{
			Subject: "demo-bob", Username: "bob", Password: "bob-demo",
			Email: "bob@example.com", EmailVerified: true, Name: "Bob Example",
			Groups: []string{"staff"},
		},
	}
}
