package fakegithub

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// SetUser replaces the user from the next request on (e.g. a renamed
// login: same ID, another Login).
func (s *Server) SetUser(u User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.user = cloneUser(u)
}

// SetTokenError makes the token endpoint answer every request with this
// OAuth error code (HTTP 200, as GitHub does); "" turns it off.
func (s *Server) SetTokenError(code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenError = code
}

// SetGrantedScopes makes new tokens carry these scopes instead of the
// requested ones; an empty, non-nil list is a GitHub App's user token
// (scope ""). Nil goes back to the requested scopes.
func (s *Server) SetGrantedScopes(scopes []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.granted, s.grantedSet = slices.Clone(scopes), scopes != nil
}

// SetPageSize caps every page at n items whatever per_page asks; 0 goes
// back to GitHub's rule (per_page, default 30, at most 100).
func (s *Server) SetPageSize(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pageSize = n
}

// Fail makes an API endpoint ("user", "emails", "orgs", "teams") answer
// status with a GitHub-style JSON message; 0 clears it.
func (s *Server) Fail(endpoint string, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if status == 0 {
		delete(s.fail, endpoint)
		return
	}
	s.fail[endpoint] = status
}

// SetForeignNextLink makes next-page links point to another host (which
// a client must not follow with its token).
func (s *Server) SetForeignNextLink(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.foreignNext = on
}

// LastAuthorizeRequest returns the query of the last authorization
// request (nil before any).
func (s *Server) LastAuthorizeRequest() url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastAuth
}

// Hits returns how many requests an endpoint has had: one of authorize,
// token, user, emails, orgs, teams.
func (s *Server) Hits(endpoint string) int64 {
	n, ok := s.hits.Get(endpoint)
	if !ok {
		panic(fmt.Sprintf("fakegithub: Hits(%q): no such endpoint; use one of %v", endpoint, endpoints))
	}
	return n
}

// api authenticates the bearer token, applies an injected failure, and
// passes the user and the token's scopes to h.
func (s *Server) api(name string, h func(w http.ResponseWriter, r *http.Request, u User, scopes []string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		tok, ok := strings.CutPrefix(auth, "Bearer ")
		if !ok {
			tok, _ = strings.CutPrefix(auth, "token ")
		}
		s.mu.Lock()
		g, known := s.tokens[tok]
		status := s.fail[name]
		u := cloneUser(s.user)
		s.mu.Unlock()
		if tok == "" || !known {
			writeJSON(w, http.StatusUnauthorized, message("Bad credentials"))
			return
		}
		if status != 0 {
			writeJSON(w, status, message(http.StatusText(status)+" (injected)"))
			return
		}
		w.Header().Set("X-OAuth-Scopes", strings.Join(g.scopes, ", "))
		h(w, r, u, g.scopes)
	}
}

func message(m string) map[string]string {
	return map[string]string{"message": m, "documentation_url": "https://docs.github.com/rest"}
}

// has reports whether one of want was granted; a GitHub App token has no
// scopes and its permissions (here: all) decide.
func has(scopes []string, want ...string) bool {
	return len(scopes) == 0 || slices.ContainsFunc(scopes, func(s string) bool { return slices.Contains(want, s) })
}

func (s *Server) getUser(w http.ResponseWriter, _ *http.Request, u User, _ []string) {
	doc := map[string]any{}
	for k, v := range u.Extra {
		doc[k] = v
	}
	doc["id"], doc["login"], doc["type"], doc["site_admin"] = u.ID, u.Login, "User", false
	doc["node_id"] = "U_" + strconv.FormatInt(u.ID, 36)
	doc["name"], doc["email"] = nullable(u.Name), nullable(u.PublicEmail)
	writeJSON(w, http.StatusOK, doc)
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (s *Server) getEmails(w http.ResponseWriter, r *http.Request, u User, scopes []string) {
	if !has(scopes, "user", "user:email") {
		writeJSON(w, http.StatusNotFound, message("Not Found"))
		return
	}
	list := make([]map[string]any, 0, len(u.Emails))
	for _, e := range u.Emails {
		list = append(list, map[string]any{"email": e.Email, "primary": e.Primary, "verified": e.Verified, "visibility": nil})
	}
	s.page(w, r, list)
}

func (s *Server) getOrgs(w http.ResponseWriter, r *http.Request, u User, scopes []string) {
	list := []map[string]any{}
	if has(scopes, "read:org", "write:org", "admin:org", "user") {
		for i, o := range u.Orgs {
			list = append(list, map[string]any{"login": o, "id": 1000 + i})
		}
	}
	s.page(w, r, list)
}

func (s *Server) getTeams(w http.ResponseWriter, r *http.Request, u User, scopes []string) {
	if !has(scopes, "read:org", "write:org", "admin:org", "repo", "user") {
		writeJSON(w, http.StatusForbidden, message("Resource not accessible by integration"))
		return
	}
	list := make([]map[string]any, 0, len(u.Teams))
	for i, t := range u.Teams {
		list = append(list, map[string]any{
			"id": 2000 + i, "slug": t.Slug, "name": t.Slug,
			"organization": map[string]any{"login": t.Org},
		})
	}
	s.page(w, r, list)
}

// page writes one page of list with a Link header. GitHub: page is
// 1-based, per_page defaults to 30 and is at most 100.
func (s *Server) page(w http.ResponseWriter, r *http.Request, list []map[string]any) {
	q := r.URL.Query()
	page, err := strconv.Atoi(q.Get("page"))
	if err != nil || page < 1 {
		page = 1
	}
	per, err := strconv.Atoi(q.Get("per_page"))
	if err != nil || per < 1 {
		per = 30
	}
	per = min(per, 100)
	s.mu.Lock()
	if s.pageSize > 0 {
		per = min(per, s.pageSize)
	}
	foreign := s.foreignNext
	s.mu.Unlock()
	last := max((len(list)+per-1)/per, 1)
	start := min((page-1)*per, len(list))
	end := min(start+per, len(list))
	link := func(p int, rel string) string {
		base := s.base
		if foreign && rel == "next" {
			base = "http://127.0.0.1:1"
		}
		return fmt.Sprintf(`<%s%s?per_page=%d&page=%d>; rel="%s"`, base, strings.TrimPrefix(r.URL.Path, s.prefix), per, p, rel)
	}
	var links []string
	if page > 1 {
		links = append(links, link(page-1, "prev"), link(1, "first"))
	}
	if page < last {
		links = append(links, link(page+1, "next"), link(last, "last"))
	}
	if len(links) > 0 {
		w.Header().Set("Link", strings.Join(links, ", "))
	}
	writeJSON(w, http.StatusOK, list[start:end])
}
