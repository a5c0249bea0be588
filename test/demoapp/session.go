package demoapp

import (
	"crypto/rand"
	"crypto/subtle"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

// Cookie names. The __Host- prefix makes browsers insist on Secure, Path=/
// and no Domain, so no sibling host can plant them. Browsers treat
// http://127.0.0.1 and http://localhost as secure, so the loopback demo works.
const (
	loginCookieName   = "__Host-demoapp-login"
	sessionCookieName = "__Host-demoapp-session"
)

// loginCookieMaxAge is how long a sign-in may take at Keyward and upstream.
const loginCookieMaxAge = 10 * time.Minute

// pendingLogin is what the app must remember between /login and /callback.
type pendingLogin struct {
	state, nonce, verifier string
}

// encode joins the three values; none of them contains a dot (rand.Text is
// base32, oauth2.GenerateVerifier is base64url).
func (p pendingLogin) encode() string {
	return p.state + "." + p.nonce + "." + p.verifier
}

func decodePendingLogin(v string) (pendingLogin, bool) {
	parts := strings.Split(v, ".")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return pendingLogin{}, false
	}
	return pendingLogin{state: parts[0], nonce: parts[1], verifier: parts[2]}, true
}

// session is one signed-in browser. Values are copied in and out of the store.
type session struct {
	id        string
	csrf      string
	token     *oauth2.Token // access and refresh token, expiry
	idToken   string        // raw, verified ID token
	subject   string
	nonce     string // of the original sign-in; a refreshed ID token may repeat it
	signedIn  time.Time
	refreshed time.Time // zero until the first refresh
	refreshes int
	expires   time.Time
}

// sessionStore keeps sessions in memory, keyed by a random id.
type sessionStore struct {
	mu sync.Mutex
	m  map[string]session
}

func (s *sessionStore) get(id string, now time.Time) (session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.m[id]
	if !ok {
		return session{}, false
	}
	if !now.Before(sess.expires) {
		delete(s.m, id)
		return session{}, false
	}
	return sess, true
}

// put stores sess and drops expired sessions.
func (s *sessionStore) put(sess session, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, old := range s.m {
		if !now.Before(old.expires) {
			delete(s.m, id)
		}
	}
	s.m[sess.id] = sess
}

// update replaces a session only if it still exists (it may have been signed out meanwhile).
func (s *sessionStore) update(sess session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[sess.id]; !ok {
		return false
	}
	s.m[sess.id] = sess
	return true
}

func (s *sessionStore) delete(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
}

// sessionFromRequest returns the session named by the request's cookie.
func (a *App) sessionFromRequest(r *http.Request) (session, bool) {
	c, err := r.Cookie(sessionCookieName)
	if err != nil || c.Value == "" {
		return session{}, false
	}
	return a.sessions.get(c.Value, a.now())
}

// checkCSRF compares the form's token with the session's.
func checkCSRF(r *http.Request, sess session) bool {
	got := r.PostFormValue("csrf")
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(sess.csrf)) == 1
}

func sameSecret(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// randomToken returns 128 random bits as base32 text.
func randomToken() string { return rand.Text() }

func setCookie(w http.ResponseWriter, name, value string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		MaxAge:   int(maxAge / time.Second),
		Secure:   true,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	})
}

func clearCookie(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{
		Name:     name,
		Value:    "",
		Path:     "/",
		MaxAge:   -1,
		Secure:   true,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	})
}
