package verify

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/keyward/keyward/keys/seal"
)

// BrowserConfig configures browser mode: the verifier signs people in at the
// edge as a thin OIDC client of Keyward (authorization code + PKCE S256) and
// keeps the tokens in an encrypted cookie. Zero values take the defaults.
type BrowserConfig struct {
	// ClientID is the verifier's client at Keyward (clients[].id in
	// keyward.yaml); its redirectURIs must hold RedirectURL and its
	// audiences must be among the verifier's. Required.
	ClientID string `yaml:"clientID"`
	// ClientSecret is empty for a public client (PKCE alone).
	ClientSecret string `yaml:"-"`
	// ClientSecretFile names the file holding ClientSecret; keyward verify
	// reads it. Omitted: a public client.
	ClientSecretFile string `yaml:"clientSecretFile,omitempty"`
	// RedirectURL is the absolute callback URL registered at Keyward as the
	// browser reaches it through the gateway, e.g.
	// https://shop.example.com/oauth2/callback (http only on loopback: the
	// cookie is Secure); the handler serves its path, which must lie under
	// /oauth2/. Required.
	RedirectURL string `yaml:"redirectURL"`
	// CookieSecret is the AES-256-GCM key of the cookies: exactly 32 bytes.
	// Required. Changing it signs everyone out.
	CookieSecret []byte `yaml:"-"`
	// CookieSecretFile names the file holding CookieSecret (raw, hex or
	// base64); keyward verify reads it. Required in verify.yaml.
	CookieSecretFile string `yaml:"cookieSecretFile"`
	// AllowedRedirectDomains lists the hosts rd may send the browser to after
	// sign-in or sign-out: "shop.example.com" (exactly) or ".example.com"
	// (it and its subdomains), with ":port" or without (then the default
	// port of rd's scheme only; see SafeRedirect). With an https
	// RedirectURL, an http rd is never allowed. Relative paths are always
	// allowed. Default: the host and port of RedirectURL
	// (shop.example.com:443 for https://shop.example.com/oauth2/callback).
	AllowedRedirectDomains []string `yaml:"allowedRedirectDomains,omitempty"`
	// Scopes requested; must include openid, and offline_access to renew
	// the session on page load. Default: openid email profile groups
	// offline_access (offline_access brings the refresh token that renews
	// the session).
	Scopes []string `yaml:"scopes,omitempty"`
	// AuthURL and TokenURL are Keyward's endpoints. Default: from the
	// issuer's discovery document, fetched on the first sign-in.
	AuthURL  string `yaml:"-"`
	TokenURL string `yaml:"-"`
	// RefreshBefore renews the access token when it expires within this,
	// or within half its lifetime when that is shorter. Default: 30s.
	RefreshBefore time.Duration `yaml:"-"`
	// LoginTTL bounds a sign-in from /oauth2/start to the callback.
	// Default: 10m.
	LoginTTL time.Duration `yaml:"-"`
	// HTTPClient makes the discovery and token requests. Default: a client
	// with a 10s timeout.
	HTTPClient *http.Client `yaml:"-"`
	// Now is the clock. Default: time.Now.
	Now func() time.Time `yaml:"-"`
}

// Browser is browser mode. It serves, under the host of RedirectURL:
//
//   - GET /oauth2/start?rd=URL: when the request's session is due for
//     renewal and holds a refresh token, a refresh at Keyward, the renewed
//     session cookies and a redirect to rd; otherwise a redirect to
//     Keyward's /authorize (state, nonce and PKCE verifier kept in a
//     short-lived encrypted cookie);
//   - GET the callback path: checks state and iss (RFC 9207), exchanges the
//     code, verifies the ID token (signature, iss, aud, exp, nonce) and the
//     access token, sets the session cookie and redirects to rd;
//   - GET /oauth2/sign_out?rd=URL: clears the session cookie and, when
//     Keyward's discovery document names an end_session_endpoint, redirects
//     there (OIDC RP-Initiated Logout: id_token_hint from the cookie when it
//     held one, client_id, post_logout_redirect_uri = rd made absolute
//     against RedirectURL, which must be registered as one of the client's
//     postLogoutRedirectURIs), so Keyward's session ends too. Without an
//     end_session_endpoint (or discovery) it redirects to rd and Keyward's
//     session survives. Either way the next sign-in sends prompt=login.
//     Without rd the landing is /oauth2/signed_out (so with an
//     end_session_endpoint, <origin>/oauth2/signed_out must be registered);
//   - GET /oauth2/signed_out?rd=URL: the "You are signed out" page, with a
//     link to sign in again (to rd).
//
// rd must be a relative path or a URL on AllowedRedirectDomains; anything
// else becomes "/". The session cookie (__Host-keyward-verify, HttpOnly,
// Secure, SameSite=Lax, AES-256-GCM) holds the access, refresh and ID tokens;
// it is split into __Host-keyward-verify-1… when larger than one cookie
// allows. It is safe for concurrent use.
type Browser struct {
	v            *Verifier
	cfg          BrowserConfig
	callbackPath string
	// callbackScheme is RedirectURL's: with "https", rd may not be http.
	callbackScheme string
	cookies        *seal.Key
	refreshes      refreshGroup

	mu         sync.Mutex
	ep         *oauth2.Endpoint // nil until discovered
	discovered bool             // the discovery document has been read
	endSession string           // its end_session_endpoint, if any
}

// ErrNoSession is returned for a browser request without a usable session:
// no cookie, a cookie that does not open, or tokens that could not be
// renewed. The handler answers it by starting a sign-in.
var ErrNoSession = errors.New("verify: no browser session")

var defaultBrowserScopes = []string{"openid", "email", "profile", "groups", "offline_access"}

// NewBrowser checks cfg, without I/O, and returns browser mode for v.
func NewBrowser(v *Verifier, cfg BrowserConfig) (*Browser, error) {
	cfg.SetDefaults()
	if cfg.CookieSecret == nil {
		cfg.CookieSecret = []byte{} // the key itself is required here, not its file
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("browser config: %w", err)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	u, _ := url.Parse(cfg.RedirectURL) // Validate parsed it
	cookies, err := seal.New(cfg.CookieSecret)
	if err != nil {
		return nil, fmt.Errorf("browser config: %w", err)
	}
	b := &Browser{v: v, cfg: cfg, callbackPath: u.Path, callbackScheme: u.Scheme, cookies: cookies}
	if cfg.AuthURL != "" {
		b.ep = &oauth2.Endpoint{AuthURL: cfg.AuthURL, TokenURL: cfg.TokenURL}
	}
	return b, nil
}

func (b *Browser) serves(p string) bool {
	return p == "/oauth2/start" || p == "/oauth2/sign_out" || p == signedOutPath || p == b.callbackPath
}

// ServeHTTP serves /oauth2/start, the callback and /oauth2/sign_out.
func (b *Browser) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	switch r.URL.Path {
	case "/oauth2/start":
		b.start(w, r)
	case "/oauth2/sign_out":
		b.signOut(w, r)
	case signedOutPath:
		b.signedOut(w, r, b.redirectOrRoot(redirectParam(r.URL)))
	default:
		b.callback(w, r)
	}
}

// signedOutPath is the page a sign-out without rd lands on.
const signedOutPath = "/oauth2/signed_out"

// signOut clears the session cookie and sends the browser to Keyward's
// end_session_endpoint, or straight to rd when there is none. Without rd,
// the landing is the signed-out page.
func (b *Browser) signOut(w http.ResponseWriter, r *http.Request) {
	s, _ := b.readSession(r)
	b.clearSession(w, r)
	setCookie(w, signedOutCookie, "1", 0)
	rd := signedOutPath
	if p := redirectParam(r.URL); p != "" {
		rd = b.redirectOrRoot(p)
	}
	end := b.endSessionEndpoint(r.Context())
	if end == "" {
		if rd == signedOutPath {
			b.signedOut(w, r, "/")
			return
		}
		http.Redirect(w, r, rd, http.StatusFound)
		return
	}
	u, err := url.Parse(end)
	base, berr := url.Parse(b.cfg.RedirectURL)
	ref, rerr := url.Parse(rd)
	if err != nil || berr != nil || rerr != nil {
		http.Redirect(w, r, rd, http.StatusFound)
		return
	}
	q := u.Query()
	if s.IDToken != "" {
		q.Set("id_token_hint", s.IDToken)
	}
	q.Set("client_id", b.cfg.ClientID)
	q.Set("post_logout_redirect_uri", base.ResolveReference(ref).String())
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// signedOut shows the "You are signed out" page; its link signs in again
// and returns to rd (already checked).
func (b *Browser) signedOut(w http.ResponseWriter, r *http.Request, rd string) {
	writePage(w, r, http.StatusOK, pageData{
		Title:   "You are signed out",
		Message: "Your session on this site has ended. Signing in again asks for your password.",
		Link:    "/oauth2/start?rd=" + url.QueryEscape(rd), LinkText: "Sign in again",
	})
}

// endSessionEndpoint returns Keyward's end_session_endpoint from the
// discovery document, fetched once (also when AuthURL and TokenURL are
// configured); "" when there is none or discovery fails (tried again at
// the next sign-out).
func (b *Browser) endSessionEndpoint(ctx context.Context) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.discovered {
		if err := b.discoverLocked(ctx); err != nil {
			return ""
		}
	}
	return b.endSession
}

// loginState is what the login cookie remembers between start and callback.
type loginState struct {
	State    string `json:"s"`
	Verifier string `json:"v"`
	Nonce    string `json:"n"`
	RD       string `json:"r"`
	Expiry   int64  `json:"x"`
}

func (b *Browser) start(w http.ResponseWriter, r *http.Request) {
	rd := b.redirectOrRoot(redirectParam(r.URL))
	// A session due for renewal is renewed here, on an answer of its own
	// that carries every cookie (see browser_renew.go). GET only.
	if r.Method == http.MethodGet && b.renew(r.Context(), w, r) {
		http.Redirect(w, r, rd, http.StatusFound)
		return
	}
	oc, err := b.oauthConfig(r.Context())
	if err != nil {
		signInFailed(w, r, http.StatusServiceUnavailable, errDiscoveryPage)
		return
	}
	ls := loginState{
		State: rand.Text(), Verifier: oauth2.GenerateVerifier(), Nonce: rand.Text(),
		RD: rd, Expiry: b.cfg.Now().Add(b.cfg.LoginTTL).Unix(),
	}
	plain, err := json.Marshal(ls)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	// One cookie per sign-in, so parallel starts (two tabs) do not clash.
	name := loginCookiePrefix + ls.State[:16]
	setCookie(w, name, b.seal(name, plain), b.cfg.LoginTTL)
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(ls.Verifier), oauth2.SetAuthURLParam("nonce", ls.Nonce)}
	if _, err := r.Cookie(signedOutCookie); err == nil {
		opts = append(opts, oauth2.SetAuthURLParam("prompt", "login"))
	}
	http.Redirect(w, r, oc.AuthCodeURL(ls.State, opts...), http.StatusFound)
}

func (b *Browser) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	state := q.Get("state")
	if state == "" {
		signInFailed(w, r, http.StatusBadRequest, "The answer from Keyward has no state parameter. Start the sign-in again.")
		return
	}
	var ls loginState
	name := ""
	if len(state) >= 16 { // shorter: no sign-in of ours, whose states are longer
		name = loginCookiePrefix + state[:16]
	}
	if c, err := r.Cookie(name); name != "" && err == nil {
		plain, ok := b.open(name, c.Value)
		if !ok || json.Unmarshal(plain, &ls) != nil {
			ls = loginState{}
		}
	}
	if name != "" {
		clearCookie(w, name)
	}
	if ls.State == "" || subtle.ConstantTimeCompare([]byte(ls.State), []byte(state)) != 1 || b.cfg.Now().Unix() > ls.Expiry {
		signInFailed(w, r, http.StatusBadRequest, "This sign-in was not started in this browser, was already completed, or took too long. Start it again.")
		return
	}
	if iss := q.Get("iss"); iss != b.v.issuer { // RFC 9207 §2.4
		signInFailed(w, r, http.StatusBadRequest, "The answer does not come from the configured issuer.")
		return
	}
	if code := q.Get("error"); code != "" {
		msg := "The sign-in was not completed"
		if isOAuthCode(code) {
			msg += " (" + code + ")"
		}
		signInFailed(w, r, http.StatusForbidden, msg+".")
		return
	}
	ctx := r.Context()
	oc, err := b.oauthConfig(ctx)
	if err != nil {
		signInFailed(w, r, http.StatusServiceUnavailable, errDiscoveryPage)
		return
	}
	tok, err := oc.Exchange(b.clientContext(ctx), q.Get("code"), oauth2.VerifierOption(ls.Verifier))
	if err != nil {
		signInFailed(w, r, http.StatusBadGateway, "Keyward did not redeem the authorization code.")
		return
	}
	idToken, _ := tok.Extra("id_token").(string)
	if err := b.verifyIDToken(ctx, idToken, ls.Nonce); err != nil {
		signInFailed(w, r, http.StatusBadGateway, "The ID token is not valid: "+publicReason(err)+".")
		return
	}
	if _, err := b.v.Verify(ctx, tok.AccessToken); err != nil {
		signInFailed(w, r, http.StatusBadGateway, "The access token is not accepted by this verifier: "+publicReason(err)+".")
		return
	}
	b.setSession(w, r, browserSession{Access: tok.AccessToken, Refresh: tok.RefreshToken, IDToken: idToken})
	if _, err := r.Cookie(signedOutCookie); err == nil {
		clearCookie(w, signedOutCookie)
	}
	http.Redirect(w, r, ls.RD, http.StatusFound)
}

func (b *Browser) oauthConfig(ctx context.Context) (*oauth2.Config, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ep == nil {
		if err := b.discoverLocked(ctx); err != nil {
			return nil, err
		}
	}
	ep := *b.ep
	ep.AuthStyle = oauth2.AuthStyleInHeader
	if b.cfg.ClientSecret == "" {
		ep.AuthStyle = oauth2.AuthStyleInParams // a public client sends client_id only
	}
	return &oauth2.Config{
		ClientID: b.cfg.ClientID, ClientSecret: b.cfg.ClientSecret, Endpoint: ep,
		RedirectURL: b.cfg.RedirectURL, Scopes: b.cfg.Scopes,
	}, nil
}

// discoverLocked reads Keyward's discovery document (b.mu held): the
// authorization and token endpoints, unless configured, and the
// end_session_endpoint.
func (b *Browser) discoverLocked(ctx context.Context) error {
	body, _, err := b.v.keys.getJSON(ctx, strings.TrimSuffix(b.v.issuer, "/")+"/.well-known/openid-configuration")
	if err != nil {
		return fmt.Errorf("fetch discovery document: %w", err)
	}
	var doc struct {
		Issuer     string `json:"issuer"`
		AuthURL    string `json:"authorization_endpoint"`
		TokenURL   string `json:"token_endpoint"`
		EndSession string `json:"end_session_endpoint"`
	}
	if err := json.Unmarshal(body, &doc); err != nil || doc.Issuer != b.v.issuer {
		return errors.New("discovery document: want the issuer")
	}
	if b.ep == nil {
		if doc.AuthURL == "" || doc.TokenURL == "" {
			return errors.New("discovery document: want the issuer and both endpoints")
		}
		b.ep = &oauth2.Endpoint{AuthURL: doc.AuthURL, TokenURL: doc.TokenURL}
	}
	if u, err := url.Parse(doc.EndSession); err == nil && u.Host != "" && (u.Scheme == "https" || u.Scheme == "http") {
		b.endSession = doc.EndSession
	}
	b.discovered = true
	return nil
}

func (b *Browser) clientContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, b.cfg.HTTPClient)
}

// publicReason is the fixed description of a verify error, else a generic one.
func publicReason(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Description
	}
	return "verification failed"
}

// errDiscoveryPage is the page text when Keyward's endpoints are unknown.
const errDiscoveryPage = "Sign-in is unavailable: Keyward's discovery document could not be loaded. Try again later."

func isOAuthCode(s string) bool {
	if len(s) > 64 {
		return false
	}
	for _, c := range s {
		if (c < 'a' || c > 'z') && c != '_' {
			return false
		}
	}
	return true
}
