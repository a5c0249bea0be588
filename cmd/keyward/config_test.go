package main

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/federation"
	"github.com/keyward/keyward/keys"
	"github.com/keyward/keyward/store/bolt"
	"github.com/keyward/keyward/store/postgres"
)

// validYAML is a small valid config that the Validate cases edit.
const validYAML = `
issuer: https://sso.example.com/
sessionSecret: ${SESSION}
store: {path: /var/lib/keyward/keyward.db}
upstreams:
  - id: corp
    issuer: https://idp.example.com
    clientID: keyward
    clientSecret: ${CORP}
  - id: google
    issuer: https://accounts.google.com
    clientID: kw
    clientSecretFile: /etc/keyward/google
clients:
  - id: grafana
    secret: pre-${GRAFANA}-post
    redirectURIs: [https://grafana.example.com/cb, https://grafana.example.com/cb]
  - id: cli
    applicationType: native
    redirectURIs: [http://127.0.0.1:8085/cb, "com.example.app:/cb"]
    postLogoutRedirectURIs: ["http://[::1]:8085/", http://localhost/]
`

var testEnv = map[string]string{
	"SESSION": "0123456789abcdef0123456789abcdef",
	"CORP":    "corp-secret",
	"GRAFANA": "grafana",
	"EMPTY":   "",
}

func lookupTestEnv(name string) (string, bool) {
	v, ok := testEnv[name]
	return v, ok
}

func mustParse(t *testing.T, data string) *Config {
	t.Helper()
	c, err := parseConfig([]byte(data), lookupTestEnv)
	if err != nil {
		t.Fatalf("parseConfig() = %v", err)
	}
	return c
}

// errorPaths lists the field paths of the problems in err.
func errorPaths(t *testing.T, err error) []string {
	t.Helper()
	var paths []string
	for _, e := range splitErrors(err) {
		var fe *fieldError
		if !errors.As(e, &fe) {
			t.Fatalf("problem %q is not a fieldError", e)
		}
		paths = append(paths, fe.Path)
	}
	return paths
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(c *Config)
		want []string
	}{
		{"valid", func(*Config) {}, nil},
		{"loopback http issuer", func(c *Config) { c.Issuer = "http://localhost:5556" }, nil},
		{"no issuer", func(c *Config) { c.Issuer = "" }, []string{"issuer"}},
		{"http issuer", func(c *Config) { c.Issuer = "http://sso.example.com" }, []string{"issuer"}},
		{"issuer query", func(c *Config) { c.Issuer = "https://sso.example.com?x=1" }, []string{"issuer"}},
		{"issuer fragment", func(c *Config) { c.Issuer = "https://sso.example.com#x" }, []string{"issuer"}},
		{"relative issuer", func(c *Config) { c.Issuer = "sso.example.com" }, []string{"issuer"}},
		{"listen", func(c *Config) { c.Listen = "8080" }, []string{"listen"}},
		{"half tls", func(c *Config) { c.TLS.CertFile = "/tls.crt" }, []string{"tls.keyFile"}},
		{"no session secret", func(c *Config) { c.SessionSecret = "" }, []string{"sessionSecretFile"}},
		{"two session secrets", func(c *Config) { c.SessionSecretFile = "/s" }, []string{"sessionSecret"}},
		{"short session secret", func(c *Config) { c.SessionSecret = "short     \n" }, []string{"sessionSecret"}},
		{"unknown store", func(c *Config) { c.Store = StoreConfig{Type: "mysql"} }, []string{"store.type"}},
		{"postgres without dsn", func(c *Config) { c.Store = StoreConfig{Type: "postgres", Backend: &postgres.Options{}} }, []string{"store.dsnFile"}},
		{"bolt path", func(c *Config) { c.Store.Backend = &bolt.Options{} }, []string{"store.path"}},
		{"algorithm", func(c *Config) { c.Keys.Algorithm = "HS256" }, []string{"keys.algorithm"}},
		{"rotation vs max-age", func(c *Config) { c.Keys.JWKSMaxAge = Duration(13 * time.Hour) }, []string{"keys.rotationPeriod"}},
		{"ttl bounds", func(c *Config) {
			t := &c.Tokens
			t.AccessTokenTTL, t.IDTokenTTL, t.AuthCodeTTL = Duration(2*time.Hour), Duration(25*time.Hour), Duration(11*time.Minute)
			t.RefreshGracePeriod, t.SessionTTL = Duration(2*time.Minute), Duration(-time.Second)
		}, []string{"tokens.accessTokenTTL", "tokens.idTokenTTL", "tokens.authCodeTTL", "tokens.refreshGracePeriod", "tokens.sessionTTL"}},
		{"idle above max", func(c *Config) { c.Tokens.RefreshTokenIdleTTL = Duration(800 * time.Hour) }, []string{"tokens.refreshTokenIdleTTL"}},
		{"claims", func(c *Config) { c.Tokens.Claims = []string{"email", "sub"} }, []string{"tokens.claims[1]"}},
		{"no upstreams or clients", func(c *Config) { c.Upstreams, c.Clients = nil, nil }, []string{"upstreams", "clients"}},
		{"upstream id", func(c *Config) { c.Upstreams[0].ID = "Corp" }, []string{"upstreams[0].id"}},
		{"upstream id empty", func(c *Config) { c.Upstreams[0].ID = "" }, []string{"upstreams[0].id"}},
		{"upstream id twice", func(c *Config) { c.Upstreams[1].ID = "corp" }, []string{"upstreams[1].id"}},
		{"upstream fields", func(c *Config) {
			u := &c.Upstreams[1]
			u.Issuer, u.ClientID, u.ClientSecretFile, u.Scopes = "http://idp.example.com", "", "", []string{"email"}
		}, []string{"upstreams[1].issuer", "upstreams[1].clientID", "upstreams[1].clientSecretFile", "upstreams[1].scopes"}},
		{"upstream two secrets", func(c *Config) { c.Upstreams[0].ClientSecretFile = "/x" }, []string{"upstreams[0].clientSecret"}},
		{"recheck max age", func(c *Config) {
			c.Upstreams[0].Scopes = []string{"openid", "offline_access"}
			c.Upstreams[0].RecheckInterval, c.Upstreams[0].RecheckMaxAge = Duration(time.Hour), Duration(30*time.Minute)
			c.Upstreams[1].RecheckMaxAge = Duration(time.Hour) // without recheckInterval
		}, []string{"upstreams[0].recheckMaxAge", "upstreams[1].recheckMaxAge"}},
		{"recheck max age equal to the interval", func(c *Config) {
			c.Upstreams[0].Scopes = []string{"openid", "offline_access"}
			c.Upstreams[0].RecheckInterval, c.Upstreams[0].RecheckMaxAge = Duration(time.Hour), Duration(time.Hour)
		}, nil},
		{"client ids", func(c *Config) {
			c.Clients = append(c.Clients, c.Clients[0], broker.Client{ID: "has space", GrantTypes: []string{"refresh_token"}})
		}, []string{"clients[2].id", "clients[3].id"}},
		{"client two secrets", func(c *Config) { c.Clients[0].SecretFile = "/x" }, []string{"clients[0].secret"}},
		{"grant types", func(c *Config) {
			c.Clients[1].GrantTypes = []string{"password", broker.GrantClientCredentials, broker.GrantTypeTokenExchange}
		}, []string{"clients[1].grantTypes[0]", "clients[1].grantTypes[1]"}},
		{"code flow without redirect", func(c *Config) { c.Clients[0].RedirectURIs = nil }, []string{"clients[0].redirectURIs"}},
		{"client credentials without redirect", func(c *Config) {
			c.Clients[0].RedirectURIs, c.Clients[0].GrantTypes = nil, []string{broker.GrantClientCredentials}
		}, nil},
		{"redirect URIs", func(c *Config) {
			c.Clients[0].RedirectURIs = []string{"https://a.example.com/cb#x", "/cb", "http://a.example.com/cb", "https:///cb"}
			c.Clients[0].PostLogoutRedirectURIs = []string{"http://a.example.com/"}
		}, []string{"clients[0].redirectURIs[0]", "clients[0].redirectURIs[1]", "clients[0].redirectURIs[2]", "clients[0].redirectURIs[3]", "clients[0].postLogoutRedirectURIs[0]"}},
		{"scopes and audiences", func(c *Config) {
			c.Clients[0].Scopes, c.Clients[0].Audiences = []string{"openid", "a b"}, []string{""}
		}, []string{"clients[0].scopes[1]", "clients[0].audiences[0]"}},
		{"native sign-in", func(c *Config) {
			c.Upstreams[0].NativeClientIDs, c.Upstreams[0].NativePublicClients = []string{"ios-app", "android-app"}, true
		}, nil},
		{"native sign-in fields", func(c *Config) {
			c.Upstreams[0].NativeClientIDs = []string{" ios-app", "android-app", "android-app"}
			c.Upstreams[1].NativePublicClients = true
		}, []string{"upstreams[0].nativeClientIDs[0]", "upstreams[0].nativeClientIDs[2]", "upstreams[1].nativePublicClients"}},
		{"trust rule", func(c *Config) {
			c.Trust = []federation.TrustRule{{
				Name: "deploy", Issuer: "https://token.actions.githubusercontent.com", Audience: "https://sso.example.com",
				Claims: map[string]string{"repository": "acme/*"}, Subject: "github:{repository}", Audiences: []string{"deploy-api"},
			}}
		}, nil},
		{"broken trust rule", func(c *Config) {
			c.Trust = []federation.TrustRule{{
				Name: "Deploy", Issuer: "http://ci.example.com",
				Claims:  map[string]string{"aud": "x", "ref": ""},
				Subject: "github:{repository", Audiences: []string{"api", "api"}, Scopes: []string{"a b"},
				MaxTTL: Duration(48 * time.Hour), Algorithms: []string{"HS256"},
			}}
		}, []string{
			"trust[0].name", "trust[0].issuer", "trust[0].audience", `trust[0].claims["aud"]`, `trust[0].claims["ref"]`,
			"trust[0].subject", "trust[0].audiences[1]", "trust[0].scopes[0]", "trust[0].maxTTL", "trust[0].algorithms[0]",
		}},
		{"trust rule names", func(c *Config) {
			r := federation.TrustRule{Name: "deploy", Issuer: "https://gitlab.com", Audience: "kw", Subject: "gitlab:{project_path}", Audiences: []string{"api"}}
			c.Trust = []federation.TrustRule{r, r}
		}, []string{"trust[1].name"}},
		{"trust subjects of two issuers overlap", func(c *Config) {
			gl := federation.TrustRule{Name: "gl", Issuer: "https://gitlab.com", Audience: "kw", Subject: "ci:{project_path}", Audiences: []string{"api"}}
			gh := federation.TrustRule{Name: "gh", Issuer: "https://token.actions.githubusercontent.com", Audience: "kw", Subject: "ci:{repository}", Audiences: []string{"api"}}
			c.Trust = []federation.TrustRule{gl, gh}
		}, []string{"trust[1].subject"}},
		{"azuread multi-tenant", func(c *Config) {
			u := &c.Upstreams[0]
			u.Profile, u.Issuer, u.Tenants = "azuread", "https://login.microsoftonline.com/{tenantid}/v2.0", []string{"11111111-2222-3333-4444-555555555555"}
			u.GroupsOverage, u.GraphURL = "refuse", "https://graph.microsoft.us"
		}, nil},
		{"azuread email rules without trustEmail", func(c *Config) {
			u := &c.Upstreams[0]
			u.Profile, u.Issuer = "azuread", "https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/v2.0"
			u.Allow.EmailDomains, u.Allow.RequireEmailVerified = []string{"example.com"}, true
		}, []string{"upstreams[0].allow.emailDomains", "upstreams[0].allow.requireEmailVerified"}},
		{"azuread email rules with trustEmail", func(c *Config) {
			u := &c.Upstreams[0]
			u.Profile, u.Issuer, u.TrustEmail = "azuread", "https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/v2.0", true
			u.Allow.EmailDomains = []string{"example.com"}
		}, nil},
		{"azuread email rules with an emailVerified claim", func(c *Config) {
			u := &c.Upstreams[0]
			u.Profile, u.Issuer, u.Claims.EmailVerified = "azuread", "https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/v2.0", "xms_edov"
			u.Allow.EmailDomains = []string{"example.com"}
		}, nil},
		{"google hosted domains", func(c *Config) {
			c.Upstreams[1].Profile, c.Upstreams[1].HostedDomains = "google", []string{"example.com"}
		}, nil},
		{"copied claim in access tokens", func(c *Config) {
			c.Upstreams[0].Claims.Claims = map[string]string{"department": "https://example.com/department"}
			c.Tokens.Claims = []string{"email", "department"}
		}, nil},
		{"unknown profile", func(c *Config) { c.Upstreams[0].Profile = "ping" }, []string{"upstreams[0].profile"}},
		{"templated issuer without tenants", func(c *Config) {
			c.Upstreams[0].Profile, c.Upstreams[0].Issuer = "azuread", "https://login.microsoftonline.com/{tenantid}/v2.0"
		}, []string{"upstreams[0].tenants"}},
		{"templated issuer with native sign-in", func(c *Config) {
			u := &c.Upstreams[0]
			u.Profile, u.Issuer, u.Tenants, u.NativeClientIDs = "azuread", "https://login.microsoftonline.com/{tenantid}/v2.0", []string{"t1"}, []string{"app"}
		}, []string{"upstreams[0].nativeClientIDs"}},
		{"templated issuer without azuread", func(c *Config) {
			c.Upstreams[0].Issuer = "https://login.microsoftonline.com/{tenantid}/v2.0"
		}, []string{"upstreams[0].issuer"}},
		{"quirks of another profile", func(c *Config) {
			u := &c.Upstreams[0]
			u.Tenants, u.HostedDomains, u.GroupsOverage, u.GraphURL = []string{"t1"}, []string{"example.com"}, "graph", "https://graph.microsoft.com"
		}, []string{"upstreams[0].tenants", "upstreams[0].hostedDomains", "upstreams[0].groupsOverage", "upstreams[0].graphURL"}},
		{"bad quirk values", func(c *Config) {
			u := &c.Upstreams[0]
			u.Profile, u.Tenants, u.GroupsOverage, u.Userinfo, u.LogoutURL = "azuread", []string{"a/b"}, "ask", "sometimes", "http://auth.example.com/logout"
		}, []string{"upstreams[0].tenants[0]", "upstreams[0].groupsOverage", "upstreams[0].logoutURL", "upstreams[0].userinfo"}},
		{"claim mapping", func(c *Config) {
			m := &c.Upstreams[0].Claims
			m.Groups, m.GroupsPrefix, m.Claims = StringList{"roles", "roles"}, "kc: ", map[string]string{"sub": "oid", "dept": ""}
		}, []string{"upstreams[0].claimMapping.groupsPrefix", "upstreams[0].claimMapping.groups[1]", `upstreams[0].claimMapping.claims["dept"]`, `upstreams[0].claimMapping.claims["sub"]`}},
		{"allow rules", func(c *Config) {
			c.Upstreams[0].Allow = federation.AllowRules{EmailDomains: []string{"example.com", "bad domain"}, Groups: []string{""}, Claims: map[string]StringList{"hd": {}}}
		}, []string{"upstreams[0].allow.emailDomains[1]", "upstreams[0].allow.groups[0]", `upstreams[0].allow.claims["hd"]`}},
		{"logging", func(c *Config) { c.Logging = LoggingConfig{Level: "trace", Format: "xml"} }, []string{"logging.level", "logging.format"}},
		{"metrics on listen", func(c *Config) { c.Metrics.Listen = c.Listen }, []string{"metrics.listen"}},
		{"metrics address", func(c *Config) { c.Metrics.Listen = "localhost" }, []string{"metrics.listen"}},
		{"many at once", func(c *Config) {
			c.Issuer, c.Keys.Algorithm, c.Upstreams[0].ID, c.Clients[1].ID = "", "none", "-x", "grafana"
		}, []string{"issuer", "keys.algorithm", "upstreams[0].id", "clients[1].id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := mustParse(t, validYAML)
			tt.edit(c)
			err := c.Validate()
			if diff := cmp.Diff(tt.want, errorPaths(t, err)); diff != "" {
				t.Errorf("Validate() = %v\npaths (-want +got):\n%s", err, diff)
			}
		})
	}
}

func TestValidateMessages(t *testing.T) {
	tests := []struct {
		edit func(c *Config)
		want string
	}{
		{func(c *Config) { c.Upstreams[1].Issuer = "http://idp.example.com" },
			`upstreams[1].issuer: "http://idp.example.com" must use https (http is allowed only for localhost/127.0.0.1/[::1])`},
		{func(c *Config) { c.Clients[0].RedirectURIs[1] = "https://a.example.com/#frag" },
			`clients[0].redirectURIs[1]: "https://a.example.com/#frag" has a fragment, which a redirect URI must not have (RFC 6749 §3.1.2); remove the part from #`},
		{func(c *Config) { c.Clients = append(c.Clients, c.Clients[0]) },
			`clients[2].id: "grafana" is used twice (also clients[0])`},
		{func(c *Config) { c.Tokens.AccessTokenTTL = Duration(2 * time.Hour) },
			`tokens.accessTokenTTL: 2h is too long; use at most 1h`},
		{func(c *Config) { c.SessionSecret = "" },
			`sessionSecretFile: set it (or sessionSecret) to a file holding at least 32 random bytes, e.g. head -c32 /dev/urandom | base64 > /etc/keyward/session-secret`},
		{func(c *Config) { c.Store = StoreConfig{Type: "postgres", Backend: &postgres.Options{}} },
			`store.dsnFile: set it (or store.dsn) to a file holding the connection string, e.g. ` + postgres.DSNHint},
		{func(c *Config) { c.RevocationFeed.Readers = []string{"grafana", "nobody"} },
			`revocationFeed.readers[1]: "nobody" is not a configured client; add it under clients (with a secretFile) or remove it`},
		{func(c *Config) { c.RevocationFeed.Readers = []string{"cli"} },
			`revocationFeed.readers[0]: client "cli" has no secret; feed readers authenticate with HTTP Basic, so give it a secretFile`},
		{func(c *Config) { c.RevocationFeed.Readers = []string{"grafana", "grafana"} },
			`revocationFeed.readers[1]: "grafana" is listed twice (also revocationFeed.readers[0])`},
		{func(c *Config) {
			c.Upstreams[0].Scopes = []string{"openid", "offline_access"}
			c.Upstreams[0].RecheckInterval, c.Upstreams[0].RecheckMaxAge = Duration(time.Hour), Duration(30*time.Minute)
		}, `upstreams[0].recheckMaxAge: 30m0s is shorter than recheckInterval (1h0m0s); it must be at least as long`},
		{func(c *Config) { c.Admin = AdminConfig{Listen: c.Listen, TokenFile: "/t"} },
			`admin.listen: "127.0.0.1:5556" is also listen; the admin API needs its own port`},
		{func(c *Config) { c.Pages.AccessRemovedContactURL = "mailto:it@example.com" },
			`pages.accessRemovedContactURL: needs accessRemovedContact, the text of the link, e.g. "the IT service desk"`},
	}
	for _, tt := range tests {
		c := mustParse(t, validYAML)
		tt.edit(c)
		if err := c.Validate(); err == nil || err.Error() != tt.want {
			t.Errorf("Validate() = %v, want %s", err, tt.want)
		}
	}
}

func TestLoadConfigErrors(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"unknown field", "isuer: x\n", []string{"line 1: isuer: unknown field"}},
		{"unknown nested field", "issuer: x\nupstreams:\n  - id: corp\n    clientSecretFil: /x\n",
			[]string{"line 4: upstreams[0].clientSecretFil: unknown field"}},
		{"unknown flow field", "tls: {certFile: a, kyFile: b}\n", []string{"line 1: tls.kyFile: unknown field"}},
		{"unknown field in flow list", "upstreams: [{id: corp, foo: x}]\n", []string{"line 1: upstreams[0].foo: unknown field"}},
		{"unknown store field", "store:\n  type: bolt\n  paht: x\n", []string{"line 3: store.paht: unknown field"}},
		{"field of another store type", "store:\n  dsnFile: x\n", []string{"line 2: store.dsnFile: unknown field"}},
		{"bad duration", "tokens:\n  accessTokenTTL: 5 minutes\n",
			[]string{`line 2: tokens.accessTokenTTL: "5 minutes" is not a duration; write one such as 90s, 15m or 24h`}},
		{"bare number", "keys:\n  rotationPeriod: 86400\n", []string{`line 2: keys.rotationPeriod: "86400" is not a duration`}},
		{"several at once", "isuer: x\ntokens:\n  idTokenTTL: soon\nclients:\n  - id: a\n    grantTypes: authorization_code\n",
			[]string{"line 1: isuer: unknown field", "line 3: tokens.idTokenTTL:", `line 6: clients[0].grantTypes: got "authori...", want a list`}},
		{"empty", "", []string{"the file is empty"}},
		{"two documents", "issuer: a\n---\nissuer: b\n", []string{"a second YAML document"}},
		{"syntax", "issuer: [\n", []string{"yaml: line"}},
		{"unset env", "sessionSecret: ${NOPE}\n", []string{"sessionSecret: environment variable NOPE is not set"}},
		{"empty env", "clients:\n  - id: a\n    secret: ${EMPTY}\n", []string{"clients[0].secret: environment variable EMPTY is empty"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := parseConfig([]byte(tt.yaml), lookupTestEnv)
			for _, want := range tt.want {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("parseConfig(%q) = %v, want it to contain %q", tt.yaml, err, want)
				}
			}
		})
	}
}

func TestLoadConfigExpandsEnvOnlyInSecretFields(t *testing.T) {
	c := mustParse(t, strings.NewReplacer("https://idp.example.com", "https://${CORP}.example.com",
		"clientID: keyward", "clientID: ${CORP}", "/var/lib/keyward/keyward.db", `"/${CORP}/keyward/keyward.db"`).Replace(validYAML))
	got := []string{c.SessionSecret, c.Upstreams[0].ClientSecret, c.Clients[0].Secret,
		c.Upstreams[0].Issuer, c.Upstreams[0].ClientID, c.Store.Backend.(*bolt.Options).Path}
	want := []string{testEnv["SESSION"], "corp-secret", "pre-grafana-post",
		"https://${CORP}.example.com", "${CORP}", "/${CORP}/keyward/keyward.db"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("expanded fields (-want +got):\n%s", diff)
	}
	c = mustParse(t, "sessionSecret: pa$$word$CORP${}\n")
	if c.SessionSecret != "pa$$word$CORP${}" {
		t.Errorf("SessionSecret = %q, want it literal", c.SessionSecret)
	}
}

func TestLoadConfigDefaults(t *testing.T) {
	c := mustParse(t, `
issuer: https://sso.example.com//
sessionSecretFile: /s
upstreams: [{id: corp, issuer: https://idp.example.com/, clientID: kw, clientSecretFile: /u}]
clients: [{id: app, redirectURIs: ["https://app.example.com/cb"]}, {id: web, secretFile: /w}]
`)
	client := func(id string) broker.Client {
		return broker.Client{
			ID: id, Name: id, GrantTypes: []string{"authorization_code", "refresh_token"},
			Scopes: []string{"openid", "email", "profile", "groups", "offline_access"}, Audiences: []string{id},
		}
	}
	want := &Config{
		Issuer: "https://sso.example.com", Listen: "127.0.0.1:5556", SessionSecretFile: "/s",
		Store: StoreConfig{Type: "bolt", Backend: &bolt.Options{}},
		Keys:  keys.Config{Algorithm: "RS256", AccessTokenAlgorithm: "RS256", RotationPeriod: Duration(24 * time.Hour), JWKSMaxAge: Duration(time.Hour)},
		Tokens: broker.TokensConfig{
			AccessTokenTTL: Duration(5 * time.Minute), IDTokenTTL: Duration(15 * time.Minute), AuthCodeTTL: Duration(time.Minute),
			RefreshTokenIdleTTL: Duration(168 * time.Hour), RefreshTokenMaxTTL: Duration(720 * time.Hour),
			RefreshGracePeriod: Duration(10 * time.Second), SessionTTL: Duration(24 * time.Hour),
			Claims: []string{"email", "name", "groups", "preferred_username"},
		},
		Upstreams: []federation.Config{{
			ID: "corp", Name: "corp", Profile: federation.ProfileGeneric, Issuer: "https://idp.example.com/", ClientID: "kw", ClientSecretFile: "/u",
			Scopes: []string{"openid", "email", "profile"}, Userinfo: federation.UserinfoAuto,
			Claims: federation.ClaimMapping{
				Subject: "sub", Email: "email", EmailVerified: "email_verified", Name: "name",
				PreferredUsername: "preferred_username", Groups: StringList{"groups"},
			},
		}},
		Clients: []broker.Client{client("app"), client("web")},
		Logging: LoggingConfig{Level: "info", Format: "json"},
		Admin:   AdminConfig{Listen: "127.0.0.1:8081"},
	}
	want.Clients[0].RedirectURIs = []string{"https://app.example.com/cb"}
	want.Clients[1].SecretFile = "/w"
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("parseConfig() (-want +got):\n%s", diff)
	}
	c.Clients[0].Scopes[0] = "changed"
	if c.Clients[1].Scopes[0] != "openid" {
		t.Errorf("clients share their default scopes")
	}
	if got := c.Tokens.MaxSignedTTL(); got != 15*time.Minute {
		t.Errorf("MaxSignedTTL() = %v, want 15m", got)
	}
}

func TestLoadConfigProfiles(t *testing.T) {
	c := mustParse(t, `
issuer: https://sso.example.com
sessionSecretFile: /s
store: {path: /var/lib/keyward/keyward.db}
upstreams:
  - id: google
    profile: google
    clientID: kw
    clientSecretFile: /g
    hostedDomains: [example.com]
    allow: {requireEmailVerified: true, claims: {hd: example.com}}
  - id: kc
    profile: keycloak
    issuer: https://kc.example.com/realms/staff
    clientID: kw
    clientSecretFile: /k
    claimMapping: {groups: resource_access.keyward.roles, groupsPrefix: "kc:"}
    allow: {groups: [kc:admin], claims: {acr: [gold, silver]}}
  - id: cognito
    profile: cognito
    issuer: https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc
    clientID: kw
    clientSecretFile: /c
    logoutURL: https://auth.example.com/logout?client_id=kw&logout_uri=https://sso.example.com/
clients: [{id: app, redirectURIs: ["https://app.example.com/cb"]}]
`)
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	g, kc, cg := c.Upstreams[0], c.Upstreams[1], c.Upstreams[2]
	got := []any{
		g.Issuer, g.Scopes, []string(g.Claims.Groups), g.Allow.Claims["hd"],
		[]string(kc.Claims.Groups), kc.Allow.Claims["acr"], kc.Claims.PreferredUsername,
		[]string(cg.Claims.Groups), cg.Claims.PreferredUsername,
	}
	want := []any{
		"https://accounts.google.com", []string{"openid", "email", "profile"}, []string(nil), StringList{"example.com"},
		[]string{"resource_access.keyward.roles"}, StringList{"gold", "silver"}, "preferred_username",
		[]string{"cognito:groups"}, "cognito:username",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("profile defaults and string-or-list fields (-want +got):\n%s", diff)
	}
	if _, err := parseConfig([]byte("upstreams: [{claimMapping: {groups: {a: b}}}]"), lookupTestEnv); err == nil || !strings.Contains(err.Error(), "want a string or a list of strings") {
		t.Errorf("parseConfig(groups as a mapping) = %v, want a string-or-list error", err)
	}
}

func TestConfigMarshalRoundTrip(t *testing.T) {
	c := mustParse(t, validYAML)
	data, err := yaml.Marshal(c)
	if err != nil {
		t.Fatalf("yaml.Marshal() = %v", err)
	}
	for _, want := range []string{"type: bolt", "path: /var/lib/keyward/keyward.db", "accessTokenTTL: 5m", "refreshTokenMaxTTL: 720h"} {
		if !bytes.Contains(data, []byte(want)) {
			t.Errorf("yaml.Marshal() lacks %q:\n%s", want, data)
		}
	}
	if diff := cmp.Diff(c, mustParse(t, string(data))); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

// writeFile writes data to a new file in dir and returns its path.
func writeFile(t *testing.T, dir, name, data string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestResolveSecrets(t *testing.T) {
	dir := t.TempDir()
	key := bytes.Repeat([]byte{7}, 32)
	c := mustParse(t, validYAML)
	c.SessionSecret, c.SessionSecretFile = "", writeFile(t, dir, "session", "  "+testEnv["SESSION"]+"\n")
	c.Keys.EncryptionKeyFile = writeFile(t, dir, "kek", base64.StdEncoding.EncodeToString(key)+"\n")
	c.Upstreams[1].ClientSecretFile = writeFile(t, dir, "google", "google-secret\r\n")
	c.Clients[0].Secret, c.Clients[0].SecretFile = "", writeFile(t, dir, "grafana", "grafana-secret\n")
	got, err := c.ResolveSecrets()
	if err != nil {
		t.Fatalf("ResolveSecrets() = %v", err)
	}
	want := Secrets{
		SessionSecret: []byte(testEnv["SESSION"]), EncryptionKey: key,
		UpstreamClientSecrets: map[string]string{"corp": "corp-secret", "google": "google-secret"},
		ClientSecrets:         map[string]string{"grafana": "grafana-secret"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ResolveSecrets() (-want +got):\n%s", diff)
	}
	if s := fmt.Sprintf("%v %+v %#v", got, got, got); strings.Contains(s, "secret") {
		t.Errorf("formatted Secrets = %s, want them redacted", s)
	}

	c.SessionSecretFile = writeFile(t, dir, "short", "short\n")
	c.Keys.EncryptionKeyFile = writeFile(t, dir, "badkek", "tooshort")
	c.Upstreams[1].ClientSecretFile = filepath.Join(dir, "missing")
	c.Clients[0].SecretFile = writeFile(t, dir, "empty", "\n")
	_, err = c.ResolveSecrets()
	for _, want := range []string{
		"sessionSecretFile: " + dir + "/short holds 5 bytes; write at least 32 random bytes",
		"keys.encryptionKeyFile: " + dir + "/badkek: holds 8 bytes that are not a 32-byte key",
		"upstreams[1].clientSecretFile: open " + dir + "/missing: no such file or directory",
		"clients[0].secretFile: " + dir + "/empty is empty",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ResolveSecrets() = %v, want it to contain %q", err, want)
		}
	}
}

func TestParseEncryptionKey(t *testing.T) {
	key := bytes.Repeat([]byte{'\n'}, 32) // Raw bytes are not trimmed.
	key[0] = 0xff
	tests := []struct {
		name, data string
		ok         bool
	}{
		{"raw", string(key), true},
		{"hex", hex.EncodeToString(key) + "\n", true},
		{"base64", base64.StdEncoding.EncodeToString(key) + "\n", true},
		{"base64url unpadded", base64.RawURLEncoding.EncodeToString(key), true},
		{"16 bytes", base64.StdEncoding.EncodeToString(key[:16]), false},
		{"31 raw bytes", string(key[:31]), false},
	}
	for _, tt := range tests {
		got, err := parseEncryptionKey([]byte(tt.data))
		if tt.ok && !bytes.Equal(got, key) || !tt.ok && err == nil {
			t.Errorf("%s: parseEncryptionKey() = %x, %v; want ok %v", tt.name, got, err, tt.ok)
		}
	}
}

// exampleConfig loads examples/NAME with its secret files replaced by
// temporary ones, as an operator would provide them.
func exampleConfig(t *testing.T, name string) *Config {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "examples", name))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"KEYWARD_GOOGLE_CLIENT_SECRET": "g", "KEYWARD_UPSTREAM_SECRET": "u", "APP_SECRET": "a"}
	c, err := parseConfig(data, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatalf("parse %s: %v", name, err)
	}
	dir := t.TempDir()
	replace := func(p *string, content string) {
		if *p != "" {
			*p = writeFile(t, dir, fmt.Sprint(len(content), filepath.Base(*p)), content)
		}
	}
	replace(&c.SessionSecretFile, base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))+"\n")
	replace(&c.Keys.EncryptionKeyFile, hex.EncodeToString(bytes.Repeat([]byte{2}, 32))+"\n")
	for i := range c.Upstreams {
		replace(&c.Upstreams[i].ClientSecretFile, "upstream-secret\n")
	}
	for i := range c.Clients {
		replace(&c.Clients[i].SecretFile, "client-secret\n")
	}
	return c
}

func TestExamples(t *testing.T) {
	tests := []struct {
		file                       string
		upstreams, clients, public int
	}{
		{"keyward.yaml", 2, 7, 3},
		{"keyward-minimal.yaml", 1, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			c := exampleConfig(t, tt.file)
			if err := c.Validate(); err != nil {
				t.Fatalf("Validate() = %v", err)
			}
			s, err := c.ResolveSecrets()
			if err != nil {
				t.Fatalf("ResolveSecrets() = %v", err)
			}
			got := []int{len(c.Upstreams), len(c.Clients), len(c.Clients) - len(s.ClientSecrets), len(s.UpstreamClientSecrets)}
			if diff := cmp.Diff([]int{tt.upstreams, tt.clients, tt.public, tt.upstreams}, got); diff != "" {
				t.Errorf("upstreams, clients, public clients, upstream secrets (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	c := exampleConfig(t, "keyward.yaml")
	c.Upstreams[1].ClientSecret = "inline"
	data, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	good := writeFile(t, dir, "keyward.yaml", string(data))
	var out bytes.Buffer
	if err := checkConfig(good, &out); err != nil || out.String() != good+": OK (2 upstreams, 7 clients)\n" {
		t.Errorf("checkConfig() = %v, output %q", err, out.String())
	}

	c.Issuer, c.Clients[0].SecretFile = "http://sso.example.com", filepath.Join(dir, "missing")
	data, _ = yaml.Marshal(c)
	bad := writeFile(t, dir, "bad.yaml", string(data))
	out.Reset()
	err = checkConfig(bad, &out)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if err == nil || err.Error() != bad+": 2 problems" || len(lines) != 2 ||
		!strings.HasPrefix(lines[0], bad+": issuer: ") || !strings.HasPrefix(lines[1], bad+": clients[0].secretFile: open ") {
		t.Errorf("checkConfig() = %v, output:\n%s", err, out.String())
	}

	out.Reset()
	// A good file with one typo: that is its only problem (every stage
	// runs, so a file with other mistakes lists them too).
	data, _ = yaml.Marshal(exampleConfig(t, "keyward.yaml"))
	unknown := writeFile(t, dir, "unknown.yaml", "lsten: :8080\n"+string(data))
	if err := checkConfig(unknown, &out); err == nil || out.String() != unknown+": line 1: lsten: unknown field; check its spelling and place (see examples/keyward.yaml)\n" {
		t.Errorf("checkConfig() = %v, output %q", err, out.String())
	}
}

// TestValidateLoopbackRule: check-config allows http on exactly the hosts
// that federation and broker allow it on (web/loopback): every
// 127.0.0.0/8 address and any spelling of ::1 and localhost, not only
// localhost, 127.0.0.1 and ::1 as written.
func TestValidateLoopbackRule(t *testing.T) {
	for _, host := range []string{"127.0.0.2", "[0:0:0:0:0:0:0:1]", "LOCALHOST"} {
		c := mustParse(t, validYAML)
		c.Upstreams[1].Issuer = "http://" + host + ":5557"
		if err := c.Validate(); err != nil {
			t.Errorf("Validate() with an upstream issuer on %s = %v, want nil", host, err)
		}
	}
	c := mustParse(t, validYAML)
	c.Upstreams[1].Issuer = "http://127.0.0.1.nip.io:5557"
	if diff := cmp.Diff([]string{"upstreams[1].issuer"}, errorPaths(t, c.Validate())); diff != "" {
		t.Errorf("Validate() with http on a name that only resolves to loopback, paths (-want +got):\n%s", diff)
	}
}

// TestPagesSectionParses: keyward.yaml's pages section reaches web's type.
func TestPagesSectionParses(t *testing.T) {
	c := mustParse(t, validYAML+"\npages:\n  accessRemovedContact: the IT service desk\n  accessRemovedContactURL: mailto:it@example.com\n")
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	if c.Pages.AccessRemovedContact != "the IT service desk" || c.Pages.AccessRemovedContactURL != "mailto:it@example.com" {
		t.Errorf("pages = %+v", c.Pages)
	}
}
