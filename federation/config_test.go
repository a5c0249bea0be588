package federation

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestValidate(t *testing.T) {
	valid := Config{
		ID: "corp-1", Issuer: "https://idp.example.com/realms/x", ClientID: "keyward",
		ClientSecret: "s", RedirectURL: "https://sso.example.com/callback",
	}
	tests := []struct {
		name   string
		modify func(*Config)
		want   []string // substrings, one per expected problem
	}{
		{name: "valid", modify: func(*Config) {}},
		{name: "loopback http issuer", modify: func(c *Config) { c.Issuer = "http://127.0.0.1:5556"; c.RedirectURL = "http://localhost:8080/callback" }},
		{name: "ipv6 loopback", modify: func(c *Config) { c.Issuer = "http://[::1]:5556/dex" }},
		{name: "explicit scopes", modify: func(c *Config) { c.Scopes = []string{"openid", "groups"} }},
		{
			name:   "empty",
			modify: func(c *Config) { *c = Config{} },
			want: []string{
				"id: set it", "issuer: set it to the issuer URL", "clientID: set it",
				"clientSecretFile: set it", "redirectURL: must not be empty",
			},
		},
		{name: "id pattern", modify: func(c *Config) { c.ID = "Corp_1" }, want: []string{`id: "Corp_1" must match [a-z0-9][a-z0-9-_.]*`}},
		{
			name:   "http issuer",
			modify: func(c *Config) { c.Issuer = "http://idp.example.com" },
			want:   []string{`issuer: "http://idp.example.com" must use https (http is allowed only for localhost/127.0.0.1/[::1])`},
		},
		{name: "relative issuer", modify: func(c *Config) { c.Issuer = "idp.example.com" }, want: []string{`issuer: "idp.example.com" must be an absolute https URL with a host`}},
		{name: "issuer with query", modify: func(c *Config) { c.Issuer = "https://idp.example.com?tenant=1" }, want: []string{`issuer: "https://idp.example.com?tenant=1" must not have a query, fragment or user info`}},
		{name: "issuer with userinfo", modify: func(c *Config) { c.Issuer = "https://u:p@idp.example.com" }, want: []string{"must not have a query, fragment or user info"}},
		{name: "redirect fragment", modify: func(c *Config) { c.RedirectURL = "https://sso.example.com/cb#x" }, want: []string{`redirectURL: "https://sso.example.com/cb#x" must not have a query, fragment or user info`}},
		{name: "scopes without openid", modify: func(c *Config) { c.Scopes = []string{"email"} }, want: []string{"scopes: add openid"}},
		{
			name:   "bad scope tokens",
			modify: func(c *Config) { c.Scopes = []string{"openid", "a b", ""} },
			want:   []string{`scopes[1]: "a b" is not a scope token`, `scopes[2]: "" must be non-empty`},
		},
		{name: "native sign-in", modify: func(c *Config) { c.NativeClientIDs, c.NativePublicClients = []string{"ios", "keyward"}, true }},
		{
			name:   "native client ids",
			modify: func(c *Config) { c.NativeClientIDs = []string{"ios", "", "ios "} },
			want:   []string{`nativeClientIDs[1]: "" must be a client ID without surrounding space`, `nativeClientIDs[2]: "ios " must be a client ID`},
		},
		{name: "native duplicate", modify: func(c *Config) { c.NativeClientIDs = []string{"ios", "ios"} }, want: []string{`nativeClientIDs[1]: "ios" is listed twice`}},
		{name: "native public without ids", modify: func(c *Config) { c.NativePublicClients = true }, want: []string{"nativePublicClients: needs nativeClientIDs"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := valid
			tc.modify(&cfg)
			cfg.SetDefaults()
			err := cfg.validateOpen()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tc.want)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.want) {
				t.Errorf("Validate() = %d problems %q, want %d", len(lines), lines, len(tc.want))
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to mention %q", err, w)
				}
			}
		})
	}
}

func TestWithDefaults(t *testing.T) {
	got := Config{ID: "corp"}.withDefaults()
	if got.Name != "corp" || got.Now == nil {
		t.Errorf("withDefaults() Name = %q, Now set %v; want corp, true", got.Name, got.Now != nil)
	}
	if diff := cmp.Diff([]string{"openid", "email", "profile"}, got.Scopes); diff != "" {
		t.Errorf("withDefaults() scopes (-want +got):\n%s", diff)
	}
	want := ClaimMapping{
		Subject: "sub", Email: "email", EmailVerified: "email_verified", Name: "name",
		PreferredUsername: "preferred_username", Groups: []string{"groups"},
	}
	if diff := cmp.Diff(want, got.Claims); diff != "" {
		t.Errorf("withDefaults() claims (-want +got):\n%s", diff)
	}
}

func TestClaimMapping(t *testing.T) {
	m := Config{Claims: ClaimMapping{Groups: []string{"https://example.com/roles"}, Email: "upn"}}.withDefaults().Claims
	claims := map[string]any{
		"sub": "sub-1", "upn": "a@example.com", "email_verified": "TRUE", "name": "A",
		"https://example.com/roles": []any{"x", 7, "", "y"}, "auth_time": float64(1700000000),
	}
	mm, err := m.identity(claims, false)
	if err != nil {
		t.Fatalf("identity() = %v", err)
	}
	got := mm.Identity
	got.Claims = nil
	want := Identity{
		Subject: "sub-1", Email: "a@example.com", EmailVerified: true, Name: "A",
		Groups: []string{"x", "y"}, AuthTime: got.AuthTime,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("identity() (-want +got):\n%s", diff)
	}
	if got.AuthTime.Unix() != 1700000000 {
		t.Errorf("identity() AuthTime = %v, want unix 1700000000", got.AuthTime)
	}
}

func TestCallbackError(t *testing.T) {
	tests := []struct {
		name string
		q    url.Values
		want error
	}{
		{name: "success", q: url.Values{"code": {"c"}, "state": {"s"}}},
		{name: "access denied", q: url.Values{"error": {"access_denied"}}, want: &UpstreamError{Code: "access_denied"}},
		{
			name: "description",
			q:    url.Values{"error": {"login_required"}, "error_description": {"User must sign in"}},
			want: &UpstreamError{Code: "login_required", Description: "User must sign in"},
		},
		{
			name: "control characters stripped",
			q:    url.Values{"error": {"bad\r\ncode"}, "error_description": {"line1\nline2\x1b[31m"}},
			want: &UpstreamError{Code: "badcode", Description: "line1line2[31m"},
		},
		{name: "empty code", q: url.Values{"error": {""}}, want: &UpstreamError{Code: "unknown_error"}},
		{
			name: "long description",
			q:    url.Values{"error": {"x"}, "error_description": {strings.Repeat("d", 1000)}},
			want: &UpstreamError{Code: "x", Description: strings.Repeat("d", 256) + "…"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := CallbackError(tc.q)
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b error) bool { return fmt.Sprint(a) == fmt.Sprint(b) })); diff != "" {
				t.Errorf("CallbackError(%v) (-want +got):\n%s", tc.q, diff)
			}
			var ue *UpstreamError
			if tc.want != nil && !errors.As(got, &ue) {
				t.Errorf("CallbackError(%v) = %T, want *UpstreamError", tc.q, got)
			}
		})
	}
}

// rawError stands for a library error whose message embeds a response body.
type rawError string

func (e rawError) Error() string { return string(e) }

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"oidc: get keys failed: 503 Service Unavailable upstream down secret", "oidc: get keys failed: 503 Service Unavailable (response body omitted)"},
		{"401 Unauthorized: invalid token abc", "401 Unauthorized (response body omitted)"},
		{"oauth2: cannot fetch token: 500 Internal Server Error\nResponse: body", "oauth2: cannot fetch token: 500 Internal Server Error (response body omitted)"},
		{`oidc: failed to decode keys: bad {"keys":1}`, "oidc: failed to decode keys: bad (response body omitted)"},
		{`oidc: expected audience "a" got ["b"]`, `oidc: expected audience "a" got ["b"]`},
		{"has 200 apples", "has 200 apples"},
	}
	for _, tc := range tests {
		err := redact(rawError(tc.in))
		if got := err.Error(); got != tc.want {
			t.Errorf("redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if !errors.Is(err, rawError(tc.in)) {
			t.Errorf("redact(%q) lost its cause", tc.in)
		}
	}
}
