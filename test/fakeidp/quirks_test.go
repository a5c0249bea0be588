package fakeidp_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"

	"github.com/keyward/keyward/test/fakeidp"
)

// idTokenClaims decodes the payload of a signed ID token (the signature is
// checked by the Keyward tests that verify with go-oidc).
func idTokenClaims(t *testing.T, raw string) map[string]any {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("id token has %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// signInWith returns alice's token response from a server with quirks q.
func signInWith(t *testing.T, q fakeidp.Quirks, edit func(u *fakeidp.User)) (*fakeidp.Server, map[string]any) {
	t.Helper()
	s := newServer(t, func(c *fakeidp.Config) {
		c.Quirks = q
		if edit != nil {
			edit(&c.Users[0])
		}
	})
	verifier := oauth2.GenerateVerifier()
	status, tok := token(t, s, codeForm(code(t, s, authParams(verifier)), verifier), nil)
	if status != http.StatusOK {
		t.Fatalf("token = %d %v", status, tok)
	}
	return s, tok
}

func getJSON(t *testing.T, url, bearer string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, body := do(t, req)
	var m map[string]any
	_ = json.Unmarshal([]byte(body), &m)
	return resp.StatusCode, m
}

func TestQuirkAzureMultiTenant(t *testing.T) {
	s, tok := signInWith(t, fakeidp.Quirks{AzureMultiTenant: true, GroupsOverage: true}, func(u *fakeidp.User) {
		u.TenantID, u.ObjectID = "tenant-a", "oid-alice"
	})
	for _, p := range []string{"/.well-known/openid-configuration", "/organizations/v2.0/.well-known/openid-configuration", "/common/v2.0/.well-known/openid-configuration"} {
		if _, doc := getJSON(t, s.URL()+p, ""); doc["issuer"] != s.IssuerTemplate() {
			t.Errorf("GET %s issuer = %v, want %s", p, doc["issuer"], s.IssuerTemplate())
		}
	}
	c := idTokenClaims(t, tok["id_token"].(string))
	if c["iss"] != s.URL()+"/tenant-a/v2.0" || c["tid"] != "tenant-a" || c["oid"] != "oid-alice" {
		t.Errorf("id token iss, tid, oid = %v %v %v, want the tenant's", c["iss"], c["tid"], c["oid"])
	}
	if _, ok := c["groups"]; ok {
		t.Errorf("id token has groups %v despite the overage", c["groups"])
	}
	names, _ := c["_claim_names"].(map[string]any)
	sources, _ := c["_claim_sources"].(map[string]any)
	if names["groups"] != "src1" || sources["src1"] == nil {
		t.Errorf("id token _claim_names %v _claim_sources %v, want a groups source", names, sources)
	}

	graph := func(bearer string) (int, map[string]any) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.GraphURL()+"/v1.0/me/getMemberObjects", strings.NewReader(`{"securityEnabledOnly":false}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+bearer)
		resp, body := do(t, req)
		var m map[string]any
		_ = json.Unmarshal([]byte(body), &m)
		return resp.StatusCode, m
	}
	status, got := graph(tok["access_token"].(string))
	if diff := cmp.Diff(map[string]any{"value": []any{"staff", "admins"}}, got); status != http.StatusOK || diff != "" {
		t.Errorf("graph = %d (-want +got):\n%s", status, diff)
	}
	if status, _ := graph("not-a-token"); status != http.StatusUnauthorized {
		t.Errorf("graph with a bad token = %d, want 401", status)
	}
	if _, info := getJSON(t, s.URL()+"/userinfo", tok["access_token"].(string)); info["groups"] != nil {
		t.Errorf("userinfo groups = %v, want none under the overage", info["groups"])
	}
}

func TestQuirkClaimShapes(t *testing.T) {
	extra := map[string]any{"realm_access": map[string]any{"other": "kept"}}
	s, tok := signInWith(t, fakeidp.Quirks{
		GroupsClaim: "realm_access.roles", UsernameClaim: "cognito:username", NoEndSession: true,
		UserinfoOnly: []string{"name"},
	}, func(u *fakeidp.User) { u.Extra, u.NoEmailVerified = extra, true })
	c := idTokenClaims(t, tok["id_token"].(string))
	want := map[string]any{"other": "kept", "roles": []any{"staff", "admins"}}
	if diff := cmp.Diff(want, c["realm_access"]); diff != "" {
		t.Errorf("id token realm_access (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]any{"other": "kept"}, extra["realm_access"]); diff != "" {
		t.Errorf("User.Extra was changed (-want +got):\n%s", diff)
	}
	if c["cognito:username"] != "alice" || c["preferred_username"] != nil {
		t.Errorf("id token username claims = %v / %v, want cognito:username only", c["cognito:username"], c["preferred_username"])
	}
	if _, ok := c["email_verified"]; ok || c["email"] != "alice@example.com" {
		t.Errorf("id token email %v email_verified present %v, want the email without email_verified", c["email"], ok)
	}
	if _, ok := c["name"]; ok {
		t.Errorf("id token has name, which is userinfo-only")
	}
	if _, info := getJSON(t, s.URL()+"/userinfo", tok["access_token"].(string)); info["name"] != "Alice Example" {
		t.Errorf("userinfo name = %v, want Alice Example", info["name"])
	}
	if _, doc := getJSON(t, s.URL()+"/.well-known/openid-configuration", ""); doc["end_session_endpoint"] != nil {
		t.Errorf("discovery end_session_endpoint = %v, want none", doc["end_session_endpoint"])
	}
}

func TestQuirkTrailingSlashAndLastAuthorize(t *testing.T) {
	s := newServer(t, func(c *fakeidp.Config) { c.Quirks.TrailingSlash = true })
	if !strings.HasSuffix(s.URL(), "/") {
		t.Fatalf("URL() = %q, want a trailing slash", s.URL())
	}
	if _, doc := getJSON(t, s.URL()+".well-known/openid-configuration", ""); doc["issuer"] != s.URL() {
		t.Errorf("discovery issuer = %v, want %s exactly", doc["issuer"], s.URL())
	}
	params := authParams(oauth2.GenerateVerifier())
	params.Set("hd", "example.com")
	resp, _ := get(t, s.URL()+"authorize?"+params.Encode())
	if q := location(t, resp); q.Get("code") == "" {
		t.Fatalf("authorize redirect = %v, want a code", q)
	}
	if got := s.LastAuthorizeRequest().Get("hd"); got != "example.com" {
		t.Errorf("LastAuthorizeRequest() hd = %q, want example.com", got)
	}
}

func TestQuirkAuthResponseIss(t *testing.T) {
	tests := []struct {
		name     string
		quirks   fakeidp.Quirks
		knob     func(s *fakeidp.Server)
		params   func(p url.Values)
		wantIss  func(s *fakeidp.Server) string
		wantDisc bool
	}{
		{name: "off", wantIss: func(*fakeidp.Server) string { return "" }},
		{name: "on", quirks: fakeidp.Quirks{AuthResponseIss: true}, wantDisc: true, wantIss: (*fakeidp.Server).URL},
		{
			name: "on, error response", quirks: fakeidp.Quirks{AuthResponseIss: true}, wantDisc: true,
			params: func(p url.Values) { p.Set("scope", "email") }, wantIss: (*fakeidp.Server).URL,
		},
		{
			name: "azure tenant issuer", quirks: fakeidp.Quirks{AuthResponseIss: true, AzureMultiTenant: true}, wantDisc: true,
			wantIss: func(s *fakeidp.Server) string { return s.TenantIssuer("tenant-a") },
		},
		{
			name: "overridden", quirks: fakeidp.Quirks{AuthResponseIss: true}, wantDisc: true,
			knob:    func(s *fakeidp.Server) { s.SetAuthResponseIssuer("https://other.example", false) },
			wantIss: func(*fakeidp.Server) string { return "https://other.example" },
		},
		{
			name: "sent without the quirk", knob: func(s *fakeidp.Server) { s.SetAuthResponseIssuer("https://other.example", false) },
			wantIss: func(*fakeidp.Server) string { return "https://other.example" },
		},
		{
			name: "omitted", quirks: fakeidp.Quirks{AuthResponseIss: true}, wantDisc: true,
			knob:    func(s *fakeidp.Server) { s.SetAuthResponseIssuer("", true) },
			wantIss: func(*fakeidp.Server) string { return "" },
		},
		{
			name: "restored", quirks: fakeidp.Quirks{AuthResponseIss: true}, wantDisc: true,
			knob: func(s *fakeidp.Server) {
				s.SetAuthResponseIssuer("", true)
				s.SetAuthResponseIssuer("", false)
			},
			wantIss: (*fakeidp.Server).URL,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, func(c *fakeidp.Config) {
				c.Quirks = tt.quirks
				c.Users[0].TenantID = "tenant-a"
			})
			if tt.knob != nil {
				tt.knob(s)
			}
			p := authParams(oauth2.GenerateVerifier())
			if tt.params != nil {
				tt.params(p)
			}
			resp, _ := get(t, s.URL()+"/authorize?"+p.Encode())
			q := location(t, resp)
			if got, want := q.Get("iss"), tt.wantIss(s); got != want || q.Has("iss") != (want != "") {
				t.Errorf("authorize redirect iss = %q (present %t), want %q", got, q.Has("iss"), want)
			}
			_, disc := getJSON(t, s.URL()+"/.well-known/openid-configuration", "")
			if got, _ := disc["authorization_response_iss_parameter_supported"].(bool); got != tt.wantDisc {
				t.Errorf("discovery authorization_response_iss_parameter_supported = %t, want %t", got, tt.wantDisc)
			}
		})
	}
}
