package federation

import (
	"github.com/keyward/keyward/cmd/config"

	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/google/go-cmp/cmp"

	"github.com/keyward/keyward/test/fakeidp"
)

// quirkIdP starts a fake upstream with quirks q that signs in users[0].
func quirkIdP(t *testing.T, q fakeidp.Quirks, users ...fakeidp.User) *fakeidp.Server {
	t.Helper()
	return fakeidp.NewTest(t, fakeidp.Config{
		Users:     users,
		Clients:   []fakeidp.Client{{ID: "keyward", Secret: "s3cret", RedirectURIs: []string{redirectURL}}},
		AutoLogin: users[0].Username,
		Quirks:    q,
		Now:       fixedNow,
	})
}

// signIn opens c and runs one browser sign-in through Exchange.
func signIn(t *testing.T, c Config) (Identity, error) {
	t.Helper()
	up, err := c.Open(t.Context(), &http.Client{Timeout: 5 * time.Second}, nil)
	if err != nil {
		t.Fatalf("Open() = %v", err)
	}
	l := authorize(t, up)
	return up.Exchange(t.Context(), l.code, l.verifier, l.nonce)
}

func TestPresets(t *testing.T) {
	tests := []struct {
		p          Profile
		issuer     string
		scopes     []string
		groups     []string
		username   string
		emailFalls []string
		overage    Overage
	}{
		{p: "", scopes: []string{"openid", "email", "profile"}, groups: []string{"groups"}, username: "preferred_username"},
		{p: ProfileGoogle, issuer: GoogleIssuer, scopes: []string{"openid", "email", "profile"}, username: "preferred_username"},
		{p: ProfileAzureAD, scopes: []string{"openid", "email", "profile"}, groups: []string{"groups"}, username: "preferred_username", emailFalls: []string{"upn", "preferred_username"}, overage: OverageGraph},
		{p: ProfileOkta, scopes: []string{"openid", "email", "profile", "groups"}, groups: []string{"groups"}, username: "preferred_username"},
		{p: ProfileAuth0, scopes: []string{"openid", "email", "profile"}, username: "preferred_username"},
		{p: ProfileCognito, scopes: []string{"openid", "email", "profile"}, groups: []string{"cognito:groups"}, username: "cognito:username"},
		{p: ProfileCurity, scopes: []string{"openid", "email", "profile"}, groups: []string{"groups"}, username: "preferred_username"},
		{p: ProfileKeycloak, scopes: []string{"openid", "email", "profile"}, groups: []string{"realm_access.roles"}, username: "preferred_username"},
	}
	for _, tc := range tests {
		c := Config{ID: "x", Profile: tc.p}.withDefaults()
		got := []any{c.Issuer, c.Scopes, []string(c.Claims.Groups), c.Claims.PreferredUsername, c.Claims.EmailFallbacks, c.GroupsOverage}
		want := []any{tc.issuer, tc.scopes, tc.groups, tc.username, tc.emailFalls, tc.overage}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("profile %q defaults (-want +got):\n%s", tc.p, diff)
		}
	}
	// An explicit list replaces the preset.
	c := Config{ID: "x", Profile: ProfileOkta, Scopes: []string{"openid"}, Claims: ClaimMapping{Groups: []string{"roles"}}}.withDefaults()
	if !cmp.Equal(c.Scopes, []string{"openid"}) || !cmp.Equal([]string(c.Claims.Groups), []string{"roles"}) {
		t.Errorf("withDefaults() = scopes %v groups %v, want the explicit ones", c.Scopes, c.Claims.Groups)
	}
}

func TestValidateProfiles(t *testing.T) {
	const tmpl = "https://login.microsoftonline.com/{tenantid}/v2.0"
	valid := func() Config {
		return Config{ID: "corp", Issuer: "https://idp.example.com", ClientID: "kw", ClientSecret: "s", RedirectURL: redirectURL}
	}
	tests := []struct {
		name string
		edit func(c *Config)
		want []string // parts of the message, "" for valid
	}{
		{"google without issuer", func(c *Config) { c.Profile, c.Issuer, c.HostedDomains = ProfileGoogle, "", []string{"example.com"} }, nil},
		{"azure multi-tenant", func(c *Config) { c.Profile, c.Issuer, c.Tenants = ProfileAzureAD, tmpl, []string{"t-1"} }, nil},
		{"unknown profile", func(c *Config) { c.Profile = "ping" }, []string{"profile: \"ping\" is not a profile"}},
		{"template without tenants", func(c *Config) { c.Profile, c.Issuer = ProfileAzureAD, tmpl }, []string{"tenants: required with a templated issuer"}},
		{"template without azure", func(c *Config) { c.Issuer = tmpl }, []string{"issuer: {tenantid} is only understood with profile: azuread"}},
		{"template and native", func(c *Config) {
			c.Profile, c.Issuer, c.Tenants, c.NativeClientIDs = ProfileAzureAD, tmpl, []string{"t"}, []string{"app"}
		}, []string{"nativeClientIDs: native sign-in needs a single-tenant issuer"}},
		{"quirks on the wrong profile", func(c *Config) {
			c.Tenants, c.HostedDomains, c.GroupsOverage, c.GraphURL = []string{"t"}, []string{"example.com"}, OverageGraph, "https://graph.example.com"
		}, []string{"tenants: only for profile: azuread", "hostedDomains: only for profile: google", "groupsOverage: only for profile: azuread", "graphURL: only for profile: azuread"}},
		{"bad values", func(c *Config) {
			c.Profile, c.Tenants, c.GroupsOverage, c.Userinfo, c.LogoutURL = ProfileAzureAD, []string{"a/b", "a/b"}, "ask", "sometimes", "http://idp.example.com/logout"
		}, []string{`tenants[0]: "a/b" must be a directory (tenant) id`, `tenants[1]: "a/b" is listed twice`, `groupsOverage: "ask" is not graph or refuse`, `userinfo: "sometimes"`, `logoutURL: "http://idp.example.com/logout" must use https (http is allowed only for localhost/127.0.0.1/[::1])`}},
		{"hosted domain wildcard", func(c *Config) { c.Profile, c.HostedDomains = ProfileGoogle, []string{"*.example.com"} }, []string{"hostedDomains[0]"}},
		{"mapping", func(c *Config) {
			c.Claims = ClaimMapping{Groups: []string{"roles", ""}, GroupsPrefix: "a b", Claims: map[string]string{"sub": "x", "dept": ""}}
		}, []string{`claimMapping.groups[1]`, "claimMapping.groupsPrefix", `claimMapping.claims["sub"]: Keyward sets sub itself`, `claimMapping.claims["dept"]: set it to the upstream claim's path`}},
		// aud_ceiling is the private claim that bounds an exchange chain's
		// audiences (broker/accesstoken.go): a copied claim may not pose as it.
		{"mapping onto the exchange ceiling", func(c *Config) {
			c.Claims = ClaimMapping{Claims: map[string]string{"aud_ceiling": "x"}}
		}, []string{`claimMapping.claims["aud_ceiling"]: Keyward sets aud_ceiling itself`}},
		{"allow", func(c *Config) {
			c.Allow = AllowRules{EmailDomains: []string{"ex ample.com"}, Groups: []string{""}, Claims: map[string]config.StringList{"hd": nil}}
		}, []string{"allow.emailDomains[0]", "allow.groups[0]", `allow.claims["hd"]: list at least one`}},
		{"cognito logout URL with query", func(c *Config) {
			c.Profile, c.LogoutURL = ProfileCognito, "https://auth.example.com/logout?client_id=kw&logout_uri=https%3A%2F%2Fsso.example.com%2F"
		}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.edit(&c)
			err := c.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to mention %q", err, w)
				}
			}
		})
	}
}

func azureUser(name, tid string, groups ...string) fakeidp.User {
	return fakeidp.User{
		Subject: "pairwise-" + name, Username: name + "@" + tid + ".example", Email: name + "@corp.example", NoEmailVerified: true,
		Name: name, Groups: groups, TenantID: tid, ObjectID: "oid-" + name,
	}
}

func TestAzureMultiTenant(t *testing.T) {
	tests := []struct {
		name      string
		quirks    fakeidp.Quirks
		user      fakeidp.User
		edit      func(c *Config, idp *fakeidp.Server)
		want      Identity
		wantRule  string
		wantErr   error
		wantGraph int64
		failGraph bool
	}{
		{
			name: "listed tenant, subject from oid",
			user: azureUser("ann", "tenant-a", "g1", "g2"),
			edit: func(c *Config, _ *fakeidp.Server) { c.Claims.Subject = "oid" },
			want: Identity{Subject: "oid-ann", Email: "ann@corp.example", Name: "ann", PreferredUsername: "ann@tenant-a.example", Groups: []string{"g1", "g2"}},
		},
		{name: "other tenant", user: azureUser("bob", "tenant-x"), wantRule: "tenants"},
		{
			name: "overage through graph", quirks: fakeidp.Quirks{GroupsOverage: true}, user: azureUser("ann", "tenant-a", "g1", "g2", "g3"),
			edit: func(c *Config, _ *fakeidp.Server) { c.Claims.GroupsPrefix = "aad:" },
			want: Identity{
				Subject: "pairwise-ann", Email: "ann@corp.example", Name: "ann", PreferredUsername: "ann@tenant-a.example",
				Groups: []string{"aad:g1", "aad:g2", "aad:g3"},
			},
			wantGraph: 1,
		},
		{
			name: "overage refused", quirks: fakeidp.Quirks{GroupsOverage: true}, user: azureUser("ann", "tenant-a", "g1"),
			edit:     func(c *Config, _ *fakeidp.Server) { c.GroupsOverage = OverageRefuse },
			wantRule: "groups_overage",
		},
		{
			name: "graph refuses", quirks: fakeidp.Quirks{GroupsOverage: true}, user: azureUser("ann", "tenant-a", "g1"),
			edit:    func(c *Config, idp *fakeidp.Server) { c.GraphURL = idp.GraphURL() + "/nowhere" },
			wantErr: ErrGraph,
		},
		{
			name: "allow groups after graph", quirks: fakeidp.Quirks{GroupsOverage: true}, user: azureUser("ann", "tenant-a", "g1"),
			edit:     func(c *Config, _ *fakeidp.Server) { c.Allow.Groups = []string{"admins"} },
			wantRule: "allow.groups", wantGraph: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.quirks
			q.AzureMultiTenant = true
			idp := quirkIdP(t, q, tc.user)
			c := testConfig(idp.IssuerTemplate())
			c.Profile, c.Tenants, c.GraphURL = ProfileAzureAD, []string{"tenant-a"}, idp.GraphURL()
			if tc.edit != nil {
				tc.edit(&c, idp)
			}
			got, err := signIn(t, c)
			var na *NotAllowedError
			switch {
			case tc.wantRule != "":
				if !errors.As(err, &na) || na.Rule != tc.wantRule {
					t.Fatalf("Exchange() = %v, want a refusal by %s", err, tc.wantRule)
				}
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Exchange() = %v, want %v", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "Bearer") {
					t.Errorf("Exchange() error %q holds the authorization header", err)
				}
			case err != nil:
				t.Fatalf("Exchange() = %v", err)
			default:
				if diff := cmp.Diff(tc.want.Groups, got.Groups); diff != "" {
					t.Errorf("Exchange() groups (-want +got):\n%s", diff)
				}
				got.Groups, got.Claims, got.AuthTime, got.RefreshToken = nil, nil, time.Time{}, ""
				tc.want.Groups = nil
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("Exchange() (-want +got):\n%s", diff)
				}
			}
			if n := idp.Hits("graph"); n != tc.wantGraph && tc.wantErr == nil {
				t.Errorf("graph hits = %d, want %d", n, tc.wantGraph)
			}
			if n := idp.Hits("userinfo"); n != 0 {
				t.Errorf("userinfo hits = %d, want 0 (email and name are in the ID token; groups come from Graph)", n)
			}
		})
	}
}

func TestAzureDiscoveryMustAdvertiseTheTemplate(t *testing.T) {
	idp := quirkIdP(t, fakeidp.Quirks{AzureMultiTenant: true}, azureUser("ann", "tenant-a"))
	idp.SetDiscoveryIssuer(idp.TenantIssuer("tenant-a"))
	c := testConfig(idp.IssuerTemplate())
	c.Profile, c.Tenants = ProfileAzureAD, []string{"tenant-a"}
	_, err := c.Open(t.Context(), nil, nil)
	var mismatch *oidc.IssuerMismatchError
	if !errors.As(err, &mismatch) || mismatch.Discovered != idp.TenantIssuer("tenant-a") {
		t.Fatalf("Open() = %v, want an issuer mismatch naming the discovered issuer", err)
	}
}

func TestProviderQuirks(t *testing.T) {
	alice := fakeidp.User{Subject: "s-alice", Username: "alice", Email: "alice@example.com", EmailVerified: true, Name: "Alice", Groups: []string{"staff"}}
	tests := []struct {
		name         string
		quirks       fakeidp.Quirks
		user         func(u *fakeidp.User)
		edit         func(c *Config)
		check        func(t *testing.T, up *Upstream, idp *fakeidp.Server)
		want         func(id *Identity)
		wantRule     string
		wantUserinfo int64
	}{
		{
			name: "google hosted domain", user: func(u *fakeidp.User) { u.Extra = map[string]any{"hd": "example.com"}; u.Groups = nil },
			edit: func(c *Config) { c.Profile, c.HostedDomains = ProfileGoogle, []string{"example.com"} },
			check: func(t *testing.T, _ *Upstream, idp *fakeidp.Server) {
				if got := idp.LastAuthorizeRequest().Get("hd"); got != "example.com" {
					t.Errorf("authorize hd = %q, want example.com", got)
				}
			},
			want: func(id *Identity) { id.Groups = nil },
		},
		{
			name: "google consumer account", user: func(u *fakeidp.User) { u.Email = "alice@gmail.com" },
			edit:     func(c *Config) { c.Profile, c.HostedDomains = ProfileGoogle, []string{"example.com"} },
			wantRule: "hosted_domains",
		},
		{
			name: "cognito", quirks: fakeidp.Quirks{GroupsClaim: "cognito:groups", UsernameClaim: "cognito:username", NoEndSession: true},
			edit: func(c *Config) {
				c.Profile, c.LogoutURL = ProfileCognito, "https://auth.example.com/logout?client_id=kw"
			},
			check: func(t *testing.T, up *Upstream, _ *fakeidp.Server) {
				if got := up.EndSessionURL(); got != "https://auth.example.com/logout?client_id=kw" {
					t.Errorf("EndSessionURL() = %q, want the logoutURL", got)
				}
			},
		},
		{
			name: "keycloak realm and client roles", quirks: fakeidp.Quirks{GroupsClaim: "realm_access.roles"},
			user: func(u *fakeidp.User) {
				u.Extra = map[string]any{"resource_access": map[string]any{"keyward": map[string]any{"roles": []any{"editor"}}}}
			},
			edit: func(c *Config) {
				c.Profile = ProfileKeycloak
				c.Claims.Groups = []string{"realm_access.roles", "resource_access.keyward.roles"}
				c.Claims.GroupsPrefix = "kc:"
			},
			check: func(t *testing.T, up *Upstream, idp *fakeidp.Server) {
				if got := up.EndSessionURL(); got != idp.URL()+"/logout" {
					t.Errorf("EndSessionURL() = %q, want discovery's", got)
				}
			},
			want: func(id *Identity) { id.Groups = []string{"kc:staff", "kc:editor"} },
		},
		{
			name: "auth0 trailing slash and namespaced roles", quirks: fakeidp.Quirks{TrailingSlash: true, GroupsClaim: "https://example.com/roles"},
			edit: func(c *Config) { c.Profile, c.Claims.Groups = ProfileAuth0, []string{"https://example.com/roles"} },
		},
		{
			name: "claims only in userinfo", quirks: fakeidp.Quirks{UserinfoOnly: []string{"email", "email_verified", "groups"}},
			wantUserinfo: 1,
		},
		{
			name: "userinfo never", quirks: fakeidp.Quirks{UserinfoOnly: []string{"email", "email_verified", "groups"}},
			edit: func(c *Config) { c.Userinfo = UserinfoNever },
			want: func(id *Identity) { id.Email, id.EmailVerified, id.Groups = "", false, nil },
		},
		{
			name: "userinfo always", edit: func(c *Config) { c.Userinfo = UserinfoAlways }, wantUserinfo: 1,
		},
		{
			name: "allow rule on a userinfo claim", quirks: fakeidp.Quirks{UserinfoOnly: []string{"email", "email_verified"}},
			edit:     func(c *Config) { c.Allow.EmailDomains = []string{"other.example"} },
			wantRule: "allow.email_domains", wantUserinfo: 1,
		},
		{
			name: "email_verified missing refused", user: func(u *fakeidp.User) { u.NoEmailVerified = true },
			edit:     func(c *Config) { c.Allow.RequireEmailVerified = true },
			wantRule: "allow.require_email_verified",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := alice
			if tc.user != nil {
				tc.user(&u)
			}
			idp := quirkIdP(t, tc.quirks, u)
			c := testConfig(idp.URL())
			if tc.edit != nil {
				tc.edit(&c)
			}
			if c.Profile == ProfileGoogle {
				c.Issuer = idp.URL() // the fake stands in for accounts.google.com
			}
			up, err := c.Open(t.Context(), &http.Client{Timeout: 5 * time.Second}, nil)
			if err != nil {
				t.Fatalf("Open() = %v", err)
			}
			l := authorize(t, up)
			got, err := up.Exchange(t.Context(), l.code, l.verifier, l.nonce)
			var na *NotAllowedError
			switch {
			case tc.wantRule != "":
				if !errors.As(err, &na) || na.Rule != tc.wantRule {
					t.Fatalf("Exchange() = %v, want a refusal by %s", err, tc.wantRule)
				}
			case err != nil:
				t.Fatalf("Exchange() = %v", err)
			default:
				want := Identity{Subject: "s-alice", Email: "alice@example.com", EmailVerified: true, Name: "Alice", PreferredUsername: "alice", Groups: []string{"staff"}}
				if tc.want != nil {
					tc.want(&want)
				}
				got.Claims, got.AuthTime, got.RefreshToken = nil, time.Time{}, ""
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("Exchange() (-want +got):\n%s", diff)
				}
			}
			if tc.check != nil {
				tc.check(t, up, idp)
			}
			if n := idp.Hits("userinfo"); n != tc.wantUserinfo {
				t.Errorf("userinfo hits = %d, want %d", n, tc.wantUserinfo)
			}
		})
	}
}

func TestNativeAllowRules(t *testing.T) {
	idp := newIdP(t, "")
	c := testConfig(idp.URL())
	c.NativeClientIDs = []string{"app"}
	c.Allow.EmailDomains = []string{"example.com"}
	up, err := c.Open(t.Context(), nil, nil)
	if err != nil {
		t.Fatalf("Open() = %v", err)
	}
	claims := func(email string) map[string]any {
		return map[string]any{"sub": "s1", "aud": "app", "email": email, "email_verified": true, "exp": testNow.Add(time.Minute).Unix()}
	}
	if _, err := up.VerifyIDToken(t.Context(), idp.MintJWT(claims("a@example.com"))); err != nil {
		t.Fatalf("VerifyIDToken(allowed) = %v", err)
	}
	_, err = up.VerifyIDToken(t.Context(), idp.MintJWT(claims("a@other.com")))
	var na *NotAllowedError
	if !errors.As(err, &na) || na.Rule != "allow.email_domains" || na.Subject != "s1" {
		t.Fatalf("VerifyIDToken(other domain) = %v, want a refusal by allow.email_domains", err)
	}
}

func TestAuthCodeURLHostedDomains(t *testing.T) {
	idp := newIdP(t, "")
	c := testConfig(idp.URL())
	c.Profile, c.HostedDomains = ProfileGoogle, []string{"example.com", "example.org"}
	up, err := c.Open(t.Context(), nil, nil)
	if err != nil {
		t.Fatalf("Open() = %v", err)
	}
	u, _ := url.Parse(up.AuthCodeURL("s", "n", "v-0123456789012345678901234567890123456789", AuthOptions{}))
	if got := u.Query().Get("hd"); got != "*" {
		t.Errorf("AuthCodeURL() hd = %q, want * for several domains", got)
	}
}
