package fakeidp

import (
	"cmp"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// discovery serves the provider metadata. OIDC Discovery §3
func (s *Server) discovery(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	iss := s.issuer
	if s.discIss != "" {
		iss = s.discIss
	}
	s.mu.Unlock()
	if s.quirks.AzureMultiTenant && s.discIss == "" {
		iss = s.IssuerTemplate()
	}
	doc := map[string]any{
		"issuer":                                iss,
		"authorization_endpoint":                s.base + "/authorize",
		"token_endpoint":                        s.base + "/token",
		"userinfo_endpoint":                     s.base + "/userinfo",
		"jwks_uri":                              s.base + "/keys",
		"end_session_endpoint":                  s.base + "/logout",
		"response_types_supported":              []string{"code"},
		"grant_types_supported":                 []string{"authorization_code", "refresh_token"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{s.alg},
		"code_challenge_methods_supported":      []string{"S256"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
		"scopes_supported":                      []string{"openid", "email", "profile", "groups", "offline_access"},
		"claims_supported": []string{
			"iss", "sub", "aud", "exp", "iat", "nonce", "auth_time", "at_hash",
			"email", "email_verified", "name", "preferred_username", "groups",
		},
	}
	if s.quirks.AuthResponseIss {
		doc["authorization_response_iss_parameter_supported"] = true
	}
	if s.quirks.NoEndSession {
		delete(doc, "end_session_endpoint")
	}
	writeJSON(w, http.StatusOK, doc)
}

func (s *Server) keys(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	key := s.key
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, publicJWKS(key))
}

// token handles POST /token. RFC 6749 §4.1.3, §6; RFC 7636 §4.6
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	failStatus := s.failStatus
	s.mu.Unlock()
	if failStatus != 0 {
		http.Error(w, "fakeidp: injected failure", failStatus)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		tokenError(w, http.StatusBadRequest, "invalid_request", "malformed form body")
		return
	}
	if r.PostForm.Get("grant_type") == "refresh_token" && !s.answerRefresh(w, r) {
		return
	}
	client, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	f := r.PostForm
	var g grant
	now := s.now()
	switch f.Get("grant_type") {
	case "authorization_code":
		s.mu.Lock()
		g, ok = s.codes[f.Get("code")]
		delete(s.codes, f.Get("code")) // once only, whatever happens next
		s.mu.Unlock()
		switch {
		case !ok || g.expires.Before(now):
			tokenError(w, http.StatusBadRequest, "invalid_grant", "unknown, used or expired code")
			return
		case g.clientID != client.ID:
			tokenError(w, http.StatusBadRequest, "invalid_grant", "code was issued to another client")
			return
		case f.Get("redirect_uri") != g.redirectURI:
			tokenError(w, http.StatusBadRequest, "invalid_grant", "redirect_uri does not match the authorization request")
			return
		case !pkceMatches(f.Get("code_verifier"), g.challenge):
			tokenError(w, http.StatusBadRequest, "invalid_grant", "code_verifier does not match code_challenge")
			return
		}
	case "refresh_token":
		s.mu.Lock()
		g, ok = s.refresh[f.Get("refresh_token")]
		delete(s.refresh, f.Get("refresh_token")) // rotated on every use
		s.mu.Unlock()
		if !ok || g.expires.Before(now) || g.clientID != client.ID {
			tokenError(w, http.StatusBadRequest, "invalid_grant", "unknown, used or expired refresh token")
			return
		}
		g.nonce = "" // OIDC Core §12.2
	default:
		tokenError(w, http.StatusBadRequest, "unsupported_grant_type", "only authorization_code and refresh_token")
		return
	}
	resp, err := s.mint(g)
	if err != nil {
		s.logger.ErrorContext(r.Context(), "mint tokens", "err", err)
		tokenError(w, http.StatusInternalServerError, "server_error", "")
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// answerRefresh answers a refresh_token grant as SetRefreshAnswer says;
// false when it wrote the answer itself.
func (s *Server) answerRefresh(w http.ResponseWriter, r *http.Request) bool {
	s.mu.Lock()
	a := s.refreshAnswer
	s.mu.Unlock()
	switch a {
	case RefreshInvalidGrant:
		tokenError(w, http.StatusBadRequest, "invalid_grant", "refresh token revoked")
	case RefreshDexDeletedUser:
		tokenError(w, http.StatusInternalServerError, "invalid_request", "")
	case RefreshInvalidClient:
		tokenError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
	case RefreshUnauthorizedClient:
		tokenError(w, http.StatusBadRequest, "unauthorized_client", "the refresh_token grant is not allowed for this client")
	case RefreshUnavailable:
		http.Error(w, "fakeidp: service unavailable", http.StatusServiceUnavailable)
	case RefreshHang:
		<-r.Context().Done()
	default:
		return true
	}
	return false
}

// authenticate checks client_secret_basic or client_secret_post (one, not
// both) and writes the error itself. RFC 6749 §2.3.1
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (Client, bool) {
	id, secret, basic := r.BasicAuth()
	if basic {
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil || r.PostForm.Has("client_secret") {
			tokenError(w, http.StatusBadRequest, "invalid_request", "malformed or duplicated client credentials")
			return Client{}, false
		}
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	c, ok := s.clients[id]
	if !ok || subtle.ConstantTimeCompare([]byte(c.Secret), []byte(secret)) != 1 {
		if basic {
			w.Header().Set("WWW-Authenticate", `Basic realm="fakeidp"`)
		}
		tokenError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return Client{}, false
	}
	return c, true
}

func pkceMatches(verifier, challenge string) bool {
	if len(verifier) < 43 || len(verifier) > 128 {
		return false
	}
	sum := sha256.Sum256([]byte(verifier))
	got := base64.RawURLEncoding.EncodeToString(sum[:])
	return subtle.ConstantTimeCompare([]byte(got), []byte(challenge)) == 1
}

// mint issues an access token, an ID token and, with offline_access, a
// refresh token for g, applying the tamper knobs and the next claims.
func (s *Server) mint(g grant) (map[string]any, error) {
	now := s.now()
	usr := s.users[g.username]
	at := rand.Text()
	g.expires = now.Add(tokenTTL)

	claims := s.userClaims(usr, true)
	claims["iss"] = s.tokenIssuer(usr)
	claims["aud"] = g.clientID
	claims["iat"] = now.Unix()
	claims["exp"] = g.expires.Unix()
	claims["auth_time"] = g.authTime.Unix()
	claims["at_hash"] = accessTokenHash(at)
	if g.nonce != "" {
		claims["nonce"] = g.nonce
	}

	s.mu.Lock()
	t, key, next := s.tamper, s.key, s.nextClaims
	s.nextClaims = nil
	prune(s.access, now)
	s.access[at] = g
	resp := map[string]any{"access_token": at, "token_type": "Bearer", "expires_in": int(tokenTTL.Seconds()), "scope": g.scope}
	if slices.Contains(strings.Fields(g.scope), "offline_access") {
		rt := rand.Text()
		prune(s.refresh, now)
		s.refresh[rt] = grant{
			clientID: g.clientID, username: g.username, scope: g.scope,
			authTime: g.authTime, expires: now.Add(24 * tokenTTL),
		}
		resp["refresh_token"] = rt
	}
	s.mu.Unlock()

	if t.WrongNonce {
		claims["nonce"] = "tampered-" + g.nonce
	}
	if t.WrongIssuer {
		claims["iss"] = s.tokenIssuer(usr) + "/wrong"
	}
	if t.WrongAudience {
		claims["aud"] = "some-other-client"
	}
	if t.Expired {
		claims["iat"] = now.Add(-2 * tokenTTL).Unix()
		claims["exp"] = now.Add(-tokenTTL).Unix()
	}
	for k, v := range next {
		if v == nil {
			delete(claims, k)
		} else {
			claims[k] = v
		}
	}
	if t.OmitIDToken {
		return resp, nil
	}
	idToken, err := signJWT(key, claims, t.BadSignature)
	if err != nil {
		return nil, err
	}
	resp["id_token"] = idToken
	return resp, nil
}

// userClaims are the claims about usr in an ID token (idToken) or at
// userinfo, shaped by the quirks.
func (s *Server) userClaims(usr User, idToken bool) map[string]any {
	q := s.quirks
	c := map[string]any{}
	for k, v := range usr.Extra {
		c[k] = v
	}
	c["sub"] = usr.Subject
	c[cmp.Or(q.UsernameClaim, "preferred_username")] = usr.Username
	if usr.Email != "" {
		c["email"] = usr.Email
		if !usr.NoEmailVerified {
			c["email_verified"] = usr.EmailVerified
		}
	}
	if usr.Name != "" {
		c["name"] = usr.Name
	}
	if usr.TenantID != "" {
		c["tid"] = usr.TenantID
	}
	if usr.ObjectID != "" {
		c["oid"] = usr.ObjectID
	}
	switch {
	case usr.Groups == nil:
	case q.GroupsOverage && idToken:
		// Azure AD: the groups did not fit; a distributed claim points at
		// the directory instead.
		c["_claim_names"] = map[string]any{"groups": "src1"}
		c["_claim_sources"] = map[string]any{"src1": map[string]any{
			"endpoint": s.base + "/v1.0/users/" + cmp.Or(usr.ObjectID, usr.Subject) + "/getMemberObjects",
		}}
	case q.GroupsOverage:
	default:
		setPath(c, cmp.Or(q.GroupsClaim, "groups"), usr.Groups)
	}
	if idToken {
		for _, name := range q.UserinfoOnly {
			delete(c, name)
		}
	}
	return c
}

// userinfo serves the claims for a bearer access token. OIDC Core §5.3
func (s *Server) userinfo(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	at, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	g, found := s.access[at]
	s.mu.Unlock()
	if !ok || !found || g.expires.Before(s.now()) {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`) // RFC 6750 §3
		http.Error(w, "invalid access token", http.StatusUnauthorized)
		return
	}
	writeJSON(w, http.StatusOK, s.userClaims(s.users[g.username], false))
}

// logout ends the session and returns to a registered
// post_logout_redirect_uri (OIDC RP-Initiated Logout §2), or, as Cognito
// does, to a registered logout_uri, without state.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "fakeidp: malformed request", http.StatusBadRequest)
		return
	}
	s.recordLogout(r.Form)
	http.SetCookie(w, &http.Cookie{Name: csrfCookie, Path: s.prefix + "/authorize", MaxAge: -1})
	target, state := r.Form.Get("post_logout_redirect_uri"), r.Form.Get("state")
	if target == "" { // Cognito
		target, state = r.Form.Get("logout_uri"), ""
	}
	if target != "" && s.logoutAllowed(r.Form.Get("client_id"), target) {
		redirect(w, r, target, url.Values{"state": {state}})
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte("<!doctype html><title>Signed out</title><p>You are signed out of the fake IdP.</p>\n"))
}

// logoutAllowed reports whether uri is registered with clientID, or with
// any client when clientID is empty.
func (s *Server) logoutAllowed(clientID, uri string) bool {
	if clientID != "" {
		return slices.Contains(s.clients[clientID].RedirectURIs, uri)
	}
	for _, c := range s.clients {
		if slices.Contains(c.RedirectURIs, uri) {
			return true
		}
	}
	return false
}

func tokenError(w http.ResponseWriter, status int, code, desc string) {
	body := map[string]string{"error": code}
	if desc != "" {
		body["error_description"] = desc
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
