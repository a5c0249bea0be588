package web

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strings"
	"time"
)

// cookieJar seals and opens Keyward's cookies. Values are random ids; the
// HMAC keeps forged or stale-format cookies from reaching the store.
type cookieJar struct {
	secret  []byte
	secure  bool
	session string
	login   string
}

func newCookieJar(secret []byte, secure bool) cookieJar {
	j := cookieJar{secret: secret, secure: secure, session: "keyward-session", login: "keyward-login"}
	if secure {
		// __Host-: Secure, Path=/, no Domain — the cookie cannot be set or
		// overwritten by a sibling subdomain.
		j.session = "__Host-" + j.session
		j.login = "__Host-" + j.login
	}
	return j
}

func (j cookieJar) mac(name, value string) string {
	m := hmac.New(sha256.New, j.secret)
	m.Write([]byte(name))
	m.Write([]byte{0})
	m.Write([]byte(value))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (j cookieJar) set(w http.ResponseWriter, name, value string, expires time.Time) {
	c := &http.Cookie{
		Name:     name,
		Value:    value + "." + j.mac(name, value),
		Path:     "/",
		Secure:   j.secure,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	}
	if !expires.IsZero() {
		c.Expires = expires
		c.MaxAge = int(time.Until(expires).Seconds())
		if c.MaxAge <= 0 {
			c.MaxAge = -1
		}
	}
	http.SetCookie(w, c)
}

func (j cookieJar) clear(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", Secure: j.secure, HttpOnly: true, SameSite: http.SameSiteLaxMode, MaxAge: -1})
}

// get returns the cookie's value if its seal is good.
func (j cookieJar) get(r *http.Request, name string) string {
	c, err := r.Cookie(name)
	if err != nil {
		return ""
	}
	i := strings.LastIndexByte(c.Value, '.')
	if i <= 0 {
		return ""
	}
	value, mac := c.Value[:i], c.Value[i+1:]
	if !hmac.Equal([]byte(mac), []byte(j.mac(name, value))) {
		return ""
	}
	return value
}

// csrfToken is the anti-CSRF token of a form that acts on the session
// named by the browser's session cookie: an HMAC of the session id under
// the cookie key, separated by purpose. Only a page Keyward served to that
// browser holds it, and it dies with the session. The "csrf " prefix keeps
// it apart from every cookie's seal.
func (j cookieJar) csrfToken(purpose, sessionID string) string {
	return j.mac("csrf "+purpose, sessionID)
}

// checkCSRF reports whether got is the csrfToken of purpose for
// sessionID; never without a session.
func (j cookieJar) checkCSRF(purpose, sessionID, got string) bool {
	return sessionID != "" && got != "" && hmac.Equal([]byte(got), []byte(j.csrfToken(purpose, sessionID)))
}
