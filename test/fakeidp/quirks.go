package fakeidp

import (
	"maps"
	"net/http"
	"net/url"
	"strings"
)

// Quirks make the server behave like a particular provider. They are read
// once by New. Claims that need no behaviour (Google's hd, Auth0's
// namespaced claims, Keycloak's resource_access) go in User.Extra, which
// may hold nested objects.
type Quirks struct {
	// AzureMultiTenant behaves like Microsoft Entra ID's multi-tenant
	// endpoint: discovery (also served at <issuer>/organizations/v2.0 and
	// <issuer>/common/v2.0) advertises IssuerTemplate, and each ID token's
	// iss is TenantIssuer(user.TenantID), with tid and oid.
	AzureMultiTenant bool
	// GroupsOverage leaves the groups out of ID tokens and userinfo and
	// puts Azure AD's _claim_names/_claim_sources in the ID token instead;
	// the fake Graph at GraphURL (POST /v1.0/me/getMemberObjects with an
	// access token of this server) lists the user's groups.
	GroupsOverage bool
	// GroupsClaim is where the groups go: a claim name such as
	// "cognito:groups" or "https://example.com/roles", or a dotted path
	// such as "realm_access.roles" (nested objects). Default: groups.
	GroupsClaim string
	// UsernameClaim carries the username instead of preferred_username,
	// e.g. "cognito:username".
	UsernameClaim string
	// NoEndSession leaves end_session_endpoint out of discovery (Cognito).
	NoEndSession bool
	// TrailingSlash makes NewTest's issuer end in "/" (Auth0).
	TrailingSlash bool
	// UserinfoOnly names top-level claims left out of ID tokens but served
	// by userinfo.
	UserinfoOnly []string
	// AuthResponseIss sends iss with every authorization response (RFC
	// 9207): the issuer, or under AzureMultiTenant the user's tenant issuer
	// (left out of error responses there, which know no user); discovery
	// then says authorization_response_iss_parameter_supported.
	// SetAuthResponseIssuer overrides the value.
	AuthResponseIss bool
}

// IssuerTemplate is the issuer that discovery advertises under
// Quirks.AzureMultiTenant: <issuer>/{tenantid}/v2.0.
func (s *Server) IssuerTemplate() string { return s.base + "/{tenantid}/v2.0" }

// TenantIssuer is the iss of tenant tid's ID tokens under
// Quirks.AzureMultiTenant.
func (s *Server) TenantIssuer(tid string) string {
	return strings.Replace(s.IssuerTemplate(), "{tenantid}", tid, 1)
}

// GraphURL is the base URL of the fake Microsoft Graph.
func (s *Server) GraphURL() string { return s.base }

// tokenIssuer is the iss of usr's ID tokens.
func (s *Server) tokenIssuer(usr User) string {
	if s.quirks.AzureMultiTenant {
		return s.TenantIssuer(usr.TenantID)
	}
	return s.issuer
}

// LastAuthorizeRequest returns the query of the last GET /authorize (e.g.
// to see the hd parameter), or nil.
func (s *Server) LastAuthorizeRequest() url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.lastAuth)
}

// LastLogoutRequest returns the parameters of the last /logout request,
// or nil.
func (s *Server) LastLogoutRequest() url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.lastLogout)
}

func (s *Server) recordLogout(form url.Values) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastLogout = maps.Clone(form)
}

// graph serves POST /v1.0/me/getMemberObjects as Microsoft Graph does for
// the user of a bearer access token: {"value": [group ids]}.
func (s *Server) graph(w http.ResponseWriter, r *http.Request) {
	at, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	g, found := s.access[at]
	s.mu.Unlock()
	if !ok || !found || g.expires.Before(s.now()) {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]string{"code": "InvalidAuthenticationToken", "message": "Access token is empty or invalid."}})
		return
	}
	groups := s.users[g.username].Groups
	if groups == nil {
		groups = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": groups})
}

// setPath sets v at path in c: a top-level name, or for a dotted path,
// nested objects (created as needed, copied when they exist, so User.Extra
// is never changed).
func setPath(c map[string]any, path string, v any) {
	parts := strings.Split(path, ".")
	if strings.Contains(path, "://") || len(parts) == 1 {
		c[path] = v
		return
	}
	for _, p := range parts[:len(parts)-1] {
		next, _ := c[p].(map[string]any)
		next = maps.Clone(next)
		if next == nil {
			next = map[string]any{}
		}
		c[p] = next
		c = next
	}
	c[parts[len(parts)-1]] = v
}
