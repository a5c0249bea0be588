package fakeidp

import (
	"crypto/rand"
	"crypto/subtle"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// pendingForm is a rendered login form waiting for its post.
type pendingForm struct {
	req   grant  // the validated authorization request
	state string // the relying party's state, returned untouched
	csrf  string // must equal the browser's csrf cookie
}

const csrfCookie = "fakeidp_csrf"

// authorize handles GET /authorize. OIDC Core §3.1.2
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	s.lastAuth = q
	s.mu.Unlock()
	client, ok := s.clients[q.Get("client_id")]
	if !ok {
		http.Error(w, "fakeidp: unknown client_id", http.StatusBadRequest)
		return
	}
	redirectURI := q.Get("redirect_uri")
	if !slices.Contains(client.RedirectURIs, redirectURI) {
		// Never redirect to an unregistered URI. RFC 6749 §4.1.2.1
		http.Error(w, "fakeidp: redirect_uri is not registered for this client", http.StatusBadRequest)
		return
	}
	state := q.Get("state")
	fail := func(code, desc string) {
		redirect(w, r, redirectURI, url.Values{"error": {code}, "error_description": {desc}, "state": {state}, "iss": {s.responseIssuer("")}})
	}
	switch {
	case q.Get("response_type") != "code":
		fail("unsupported_response_type", "only response_type=code is supported")
		return
	case !slices.Contains(strings.Fields(q.Get("scope")), "openid"):
		fail("invalid_scope", "scope must include openid")
		return
	case q.Get("code_challenge") == "" || q.Get("code_challenge_method") != "S256":
		fail("invalid_request", "PKCE with code_challenge_method=S256 is required")
		return
	}
	req := grant{
		clientID:    client.ID,
		redirectURI: redirectURI,
		scope:       q.Get("scope"),
		nonce:       q.Get("nonce"),
		challenge:   q.Get("code_challenge"),
	}
	if s.auto != "" {
		s.approve(w, r, req, state, s.auto)
		return
	}
	if q.Get("prompt") == "none" {
		fail("login_required", "the fake IdP keeps no login session")
		return
	}
	s.renderForm(w, r, req, state, q.Get("login_hint"), "", http.StatusOK)
}

// login handles the login form's POST /authorize.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "fakeidp: malformed form", http.StatusBadRequest)
		return
	}
	token := r.PostForm.Get("form_token")
	s.mu.Lock()
	form, ok := s.forms[token]
	delete(s.forms, token) // a form token is good for one post
	s.mu.Unlock()
	cookie, err := r.Cookie(csrfCookie)
	if !ok || err != nil || form.req.expires.Before(s.now()) ||
		subtle.ConstantTimeCompare([]byte(cookie.Value), []byte(form.csrf)) != 1 {
		http.Error(w, "fakeidp: this login form has expired or was not issued to this browser; start the sign-in again", http.StatusForbidden)
		return
	}
	username := r.PostForm.Get("username")
	usr, known := s.users[username]
	password := r.PostForm.Get("password")
	if !known || subtle.ConstantTimeCompare([]byte(usr.Password), []byte(password)) != 1 {
		s.logger.InfoContext(r.Context(), "login refused", "event", "login_failed", "username", username)
		s.renderForm(w, r, form.req, form.state, username, "Invalid username or password.", http.StatusUnauthorized)
		return
	}
	s.approve(w, r, form.req, form.state, username)
}

// approve issues a code for username and sends the browser back.
func (s *Server) approve(w http.ResponseWriter, r *http.Request, req grant, state, username string) {
	now := s.now()
	req.username = username
	req.authTime = now
	req.expires = now.Add(codeTTL)
	code := rand.Text()
	s.mu.Lock()
	prune(s.codes, now)
	s.codes[code] = req
	s.mu.Unlock()
	s.logger.InfoContext(r.Context(), "login approved", "event", "login_succeeded", "username", username, "client_id", req.clientID)
	redirect(w, r, req.redirectURI, url.Values{"code": {code}, "state": {state}, "iss": {s.responseIssuer(username)}})
}

// responseIssuer is the iss of an authorization response for username ("":
// an error response), or "" for none. RFC 9207 §2
func (s *Server) responseIssuer(username string) string {
	s.mu.Lock()
	iss, omit := s.respIss, s.respIssOmit
	s.mu.Unlock()
	switch {
	case omit:
		return ""
	case iss != "":
		return iss
	case !s.quirks.AuthResponseIss:
		return ""
	case !s.quirks.AzureMultiTenant:
		return s.issuer
	case username == "":
		return ""
	}
	return s.tokenIssuer(s.users[username])
}

// redirect sends the browser to uri with params added to its query.
func redirect(w http.ResponseWriter, r *http.Request, uri string, params url.Values) {
	u, err := url.Parse(uri)
	if err != nil {
		http.Error(w, "fakeidp: bad redirect uri", http.StatusInternalServerError)
		return
	}
	q := u.Query()
	for k, vs := range params {
		if len(vs) == 1 && vs[0] == "" {
			continue
		}
		q[k] = vs
	}
	u.RawQuery = q.Encode()
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
}

// prune drops expired entries; callers hold s.mu.
func prune[V interface{ expiry() time.Time }](m map[string]V, now time.Time) {
	for k, v := range m {
		if v.expiry().Before(now) {
			delete(m, k)
		}
	}
}

func (g grant) expiry() time.Time       { return g.expires }
func (f pendingForm) expiry() time.Time { return f.req.expires }

func (s *Server) renderForm(w http.ResponseWriter, r *http.Request, req grant, state, username, errMsg string, status int) {
	csrf := ""
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) == len(rand.Text()) {
		csrf = c.Value
	} else {
		csrf = rand.Text()
		http.SetCookie(w, &http.Cookie{
			Name: csrfCookie, Value: csrf, Path: s.prefix + "/authorize",
			HttpOnly: true, Secure: strings.HasPrefix(s.issuer, "https:"), SameSite: http.SameSiteLaxMode,
		})
	}
	now := s.now()
	req.expires = now.Add(formTTL)
	token := rand.Text()
	s.mu.Lock()
	prune(s.forms, now)
	s.forms[token] = pendingForm{req: req, state: state, csrf: csrf}
	s.mu.Unlock()

	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	_ = loginPage.Execute(w, map[string]string{
		"Title": s.title, "Action": s.prefix + "/authorize", "Client": req.clientID,
		"Token": token, "Username": username, "Error": errMsg, "Hint": s.hint,
	})
}

var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · {{.Title}}</title>
<style>
body{font-family:system-ui,sans-serif;background:#f4f5f7;margin:0;display:flex;min-height:100vh;align-items:center;justify-content:center}
main{background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 4px rgba(0,0,0,.15);width:min(22rem,90vw)}
h1{font-size:1.3rem;margin:0 0 .25rem}
p{color:#555;margin:0 0 1.25rem}
label{display:block;font-weight:600;margin:.75rem 0 .25rem}
input{width:100%;box-sizing:border-box;padding:.5rem;border:1px solid #bbb;border-radius:4px;font-size:1rem}
button{margin-top:1.25rem;width:100%;padding:.6rem;border:0;border-radius:4px;background:#2457c5;color:#fff;font-size:1rem;cursor:pointer}
.error{color:#a40000;background:#fdecea;padding:.5rem;border-radius:4px}
.hint{background:#eef3fc;color:#1d3f85;padding:.5rem;border-radius:4px;font-size:.9rem}
</style>
</head>
<body>
<main>
<h1>{{.Title}}</h1>
<p>Sign in to continue to <strong>{{.Client}}</strong>.</p>
{{with .Hint}}<p class="hint">{{.}}</p>{{end}}
{{with .Error}}<p class="error" role="alert">{{.}}</p>{{end}}
<form method="post" action="{{.Action}}">
<input type="hidden" name="form_token" value="{{.Token}}">
<label for="username">Username</label>
<input id="username" name="username" value="{{.Username}}" autocomplete="username" required autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>
</main>
</body>
</html>
`))
