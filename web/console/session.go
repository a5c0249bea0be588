package console

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// jar seals the console's two cookies: the staff session and the sign-in
// in flight. Both are signed JSON (HMAC-SHA256 under a key of their own,
// derived from Options.Secret): what they hold is not secret from the
// browser that holds them, but cannot be forged or altered.
type jar struct {
	key         []byte
	secure      bool
	sessionName string
	loginName   string
}

func newJar(secret []byte, secure bool) jar {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("keyward console cookies v1"))
	j := jar{key: m.Sum(nil), secure: secure, sessionName: "keyward-console", loginName: "keyward-console-login"}
	if secure {
		// __Host-: Secure, Path=/, no Domain.
		j.sessionName, j.loginName = "__Host-"+j.sessionName, "__Host-"+j.loginName
	}
	return j
}

func (j jar) mac(purpose, value string) string {
	m := hmac.New(sha256.New, j.key)
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write([]byte(value))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (j jar) set(w http.ResponseWriter, name string, v any, maxAge time.Duration) {
	b, _ := json.Marshal(v) // plain structs of strings and numbers
	payload := base64.RawURLEncoding.EncodeToString(b)
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: payload + "." + j.mac(name, payload), Path: "/",
		Secure: j.secure, HttpOnly: true, SameSite: http.SameSiteLaxMode, MaxAge: int(maxAge.Seconds()),
	})
}

func (j jar) get(r *http.Request, name string, v any) bool {
	c, err := r.Cookie(name)
	if err != nil {
		return false
	}
	payload, mac, ok := strings.Cut(c.Value, ".")
	if !ok || !hmac.Equal([]byte(mac), []byte(j.mac(name, payload))) {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	return err == nil && json.Unmarshal(b, v) == nil
}

func (j jar) clear(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", Secure: j.secure, HttpOnly: true, SameSite: http.SameSiteLaxMode, MaxAge: -1})
}

// staffSession is a signed-in staff member: who, with which role, since
// when (IAT) and last seen when (Seen), both Unix milliseconds. SID is random:
// the CSRF tokens of the session derive from it.
type staffSession struct {
	SID   string `json:"sid"`
	Sub   string `json:"sub"`
	Email string `json:"email,omitempty"`
	Name  string `json:"name,omitempty"`
	Role  string `json:"role"`
	IAT   int64  `json:"iat"`
	Seen  int64  `json:"seen"`
}

// session returns the staff session of r if its seal is good and it has
// been neither idle past IdleTimeout nor open past MaxAge.
func (j jar) session(r *http.Request, now time.Time, cfg Config) (staffSession, bool) {
	var s staffSession
	if !j.get(r, j.sessionName, &s) || s.SID == "" || s.Sub == "" {
		return staffSession{}, false
	}
	if now.Sub(time.UnixMilli(s.Seen)) > time.Duration(cfg.IdleTimeout) || now.Sub(time.UnixMilli(s.IAT)) > time.Duration(cfg.MaxAge) {
		return staffSession{}, false
	}
	return s, true
}

func (j jar) setSession(w http.ResponseWriter, s staffSession, cfg Config) {
	j.set(w, j.sessionName, s, time.Duration(cfg.IdleTimeout))
}

// csrf is the anti-CSRF token of every form of the session sid.
func (j jar) csrf(sid string) string { return j.mac("csrf", sid) }

func (j jar) checkCSRF(sid, got string) bool {
	return sid != "" && got != "" && hmac.Equal([]byte(got), []byte(j.csrf(sid)))
}
