package verify

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Cookie names. __Host-: Secure, Path=/, no Domain, so a sibling subdomain
// can neither set nor overwrite them.
const (
	sessionCookie     = "__Host-keyward-verify"
	loginCookiePrefix = "__Host-keyward-verify-login-"
	signedOutCookie   = "__Host-keyward-verify-signed-out"
	// maxCookieValue keeps name + value + attributes under the 4096 bytes
	// browsers accept per cookie.
	maxCookieValue = 3800
	// maxSessionChunks bounds the session cookie: the first cookie plus
	// __Host-keyward-verify-1 … -3.
	maxSessionChunks = 4
)

// browserSession is what the session cookie holds.
type browserSession struct {
	Access  string `json:"a"`
	Refresh string `json:"r,omitempty"`
	IDToken string `json:"i,omitempty"` // the id_token_hint for a future end-session redirect
}

// seal encrypts plain with keys/seal (AES-256-GCM under a random
// nonce); name is the additional data, so a value cannot be moved to
// another cookie. The value is base64url without padding.
func (b *Browser) seal(name string, plain []byte) string {
	return base64.RawURLEncoding.EncodeToString(b.cookies.Seal(plain, []byte(name)))
}

func (b *Browser) open(name, value string) ([]byte, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil {
		return nil, false
	}
	plain, err := b.cookies.Open(raw, []byte(name))
	return plain, err == nil
}

func chunkName(i int) string {
	if i == 0 {
		return sessionCookie
	}
	return sessionCookie + "-" + strconv.Itoa(i)
}

// setSession writes s into the session cookie, split into chunks when it is
// too large for one (the ID token is dropped first), and clears chunks left
// over from a larger session.
func (b *Browser) setSession(w http.ResponseWriter, r *http.Request, s browserSession) {
	value := b.sealSession(s)
	if len(value) > maxCookieValue && s.IDToken != "" {
		s.IDToken = ""
		value = b.sealSession(s)
	}
	n := 0
	for ; len(value) > 0 && n < maxSessionChunks; n++ {
		part := value[:min(len(value), maxCookieValue)]
		value = value[len(part):]
		setCookie(w, chunkName(n), part, 0)
	}
	for i := n; i < maxSessionChunks; i++ {
		if _, err := r.Cookie(chunkName(i)); err == nil {
			clearCookie(w, chunkName(i))
		}
	}
}

func (b *Browser) sealSession(s browserSession) string {
	plain, _ := json.Marshal(s) // strings only: cannot fail
	return b.seal(sessionCookie, plain)
}

// readSession reassembles and opens the session cookie.
func (b *Browser) readSession(r *http.Request) (browserSession, bool) {
	var sb strings.Builder
	for i := range maxSessionChunks {
		c, err := r.Cookie(chunkName(i))
		if err != nil {
			break
		}
		sb.WriteString(c.Value)
	}
	var s browserSession
	if sb.Len() == 0 {
		return s, false
	}
	plain, ok := b.open(sessionCookie, sb.String())
	if !ok || json.Unmarshal(plain, &s) != nil || s.Access == "" {
		return browserSession{}, false
	}
	return s, true
}

// clearSession deletes every session cookie chunk the request carries.
func (b *Browser) clearSession(w http.ResponseWriter, r *http.Request) {
	for i := range maxSessionChunks {
		if _, err := r.Cookie(chunkName(i)); err == nil {
			clearCookie(w, chunkName(i))
		}
	}
}

// setCookie sets a __Host- cookie; maxAge 0 makes a browser-session cookie.
func setCookie(w http.ResponseWriter, name, value string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: int(maxAge.Seconds()),
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
}

func clearCookie(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

// redirectParam returns rd from u's query. nginx's
// `error_page 401 = /oauth2/start?rd=$request_uri` passes the original URI
// unescaped, so when rd is the first parameter everything after "rd=" is
// taken (a query of the original URI included) and unescaped once.
func redirectParam(u *url.URL) string {
	if rest, ok := strings.CutPrefix(u.RawQuery, "rd="); ok {
		if v, err := url.QueryUnescape(rest); err == nil {
			return v
		}
		return ""
	}
	return u.Query().Get("rd")
}

// redirectOrRoot returns rd when it is safe to redirect to, else "/".
func (b *Browser) redirectOrRoot(rd string) string {
	if SafeRedirect(rd, b.cfg.AllowedRedirectDomains, b.callbackScheme) {
		return rd
	}
	return "/"
}

// SafeRedirect reports whether a browser may be sent to rd: a relative path
// ("/x", never "//host" or "/\host"), or an http(s) URL without user info
// whose host and port are in allowed: "shop.example.com" exactly,
// ".example.com" for it and its subdomains, either with ":port" or without,
// which stands for the default port of rd's scheme (443 for https, 80 for
// http; an explicit default port is the same port). callbackScheme is the
// scheme of the sign-in callback (BrowserConfig.RedirectURL): when it is
// "https", an http rd is refused whatever allowed says, so rd cannot move
// a browser that signed in over TLS to plain HTTP (to port 443 or 80 of an
// allowed host alike). Control characters, spaces, backslashes and
// non-ASCII bytes are refused anywhere.
func SafeRedirect(rd string, allowed []string, callbackScheme string) bool {
	if rd == "" {
		return false
	}
	for i := 0; i < len(rd); i++ {
		if c := rd[i]; c <= ' ' || c == '\\' || c >= 0x7f {
			return false
		}
	}
	if rd[0] == '/' {
		return len(rd) == 1 || rd[1] != '/'
	}
	u, err := url.Parse(rd)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Opaque != "" || u.User != nil || u.Host == "" {
		return false
	}
	if u.Scheme == "http" && callbackScheme == "https" {
		return false
	}
	defaultPort := "443"
	if u.Scheme == "http" {
		defaultPort = "80"
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if port == "" {
		port = defaultPort
	}
	for _, a := range allowed {
		a = strings.ToLower(a)
		ah, ap := a, defaultPort
		if i := strings.LastIndexByte(a, ':'); i >= 0 && !strings.HasSuffix(a, "]") {
			ah, ap = a[:i], a[i+1:]
		}
		ah = strings.TrimSuffix(strings.TrimPrefix(ah, "["), "]") // an IPv6 literal, as u.Hostname() gives it
		if ap != port {
			continue
		}
		if host == ah || (strings.HasPrefix(ah, ".") && (host == ah[1:] || strings.HasSuffix(host, ah))) {
			return true
		}
	}
	return false
}
