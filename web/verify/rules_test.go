package verify

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"
)

// sketchRules is the rules: block of a typical verify.yaml: an API with a
// public part and per-method scopes, and a shop in browser mode.
const sketchRules = `
rules:
  - {host: api.example.com, path: /public/, allow: anonymous}
  - {host: api.example.com, path: /orders/, methods: [POST], audience: orders-api, scopes: {allOf: [orders:write]}}
  - {host: api.example.com, path: /orders/, audience: orders-api, scopes: {anyOf: [orders:read, orders:write]}}
  - {host: shop.example.com, path: /admin/, groups: {anyOf: [shop-admins]}}
  - {host: shop.example.com, path: /, browser: true}
`

func sketch(t *testing.T) Rules {
	t.Helper()
	var doc struct {
		Rules Rules `yaml:"rules"`
	}
	if err := yaml.Unmarshal([]byte(sketchRules), &doc); err != nil {
		t.Fatalf("yaml.Unmarshal() = %v", err)
	}
	if err := doc.Rules.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	return doc.Rules
}

func TestRulesYAML(t *testing.T) {
	got := sketch(t)
	want := Rule{Host: "api.example.com", Path: "/orders/", Methods: []string{"POST"}, Audience: "orders-api",
		Scopes: Set{AllOf: []string{"orders:write"}}}
	if diff := cmp.Diff(want, got[1]); diff != "" {
		t.Errorf("rules[1] (-want +got):\n%s", diff)
	}
}

func TestRulesMatch(t *testing.T) {
	rs := append(sketch(t),
		Rule{Path: "/exact"},
		Rule{Host: "[::1]", Path: "/v6"},
	)
	tests := []struct {
		host, path, method string
		want               int // index into rs, -1: no match
	}{
		{"api.example.com", "/public/index.html", "GET", 0},
		{"API.Example.COM:8443", "/public/x?y=1", "GET", 0},
		{"api.example.com", "/public", "GET", 0}, // the directory itself
		{"api.example.com", "/publicity", "GET", -1},
		{"api.example.com", "/public/../orders/1", "POST", 1},    // cleaned before matching
		{"api.example.com", "/public/%2e%2e/orders/1", "GET", 2}, // decoded, then cleaned
		{"api.example.com", "/public%2F..%2Forders/1", "GET", 2}, // an encoded slash is a slash
		{"api.example.com", "/public/%zz", "GET", -1},            // undecodable: deny
		{"api.example.com", "/orders/1", "post", 1},              // method case-insensitive
		{"api.example.com", "/orders/1", "DELETE", 2},            // falls through to the next rule
		{"api.example.com", "//orders//1", "GET", 2},             // duplicate slashes
		{"shop.example.com", "/admin/users", "GET", 3},           //
		{"shop.example.com", "/anything", "GET", 4},              //
		{"shop.example.com.", "/anything", "GET", -1},            // no fuzzy host matching
		{"other.example.com", "/exact", "GET", 5},                // empty host: any host
		{"other.example.com", "/exact/sub", "GET", 5},            //
		{"other.example.com", "/exactly", "GET", -1},             //
		{"other.example.com", "", "GET", -1},                     // no URI: deny
		{"other.example.com", "relative", "GET", -1},             //
		{"[::1]:8080", "/v6", "GET", 6},                          //
		{"other.example.com", "/other", "GET", -1},               // no rule: deny
	}
	for _, tt := range tests {
		got, ok := rs.Match(tt.host, tt.path, tt.method)
		gotIdx := -1
		if ok {
			for i := range rs {
				if &rs[i] == got {
					gotIdx = i
				}
			}
		}
		if gotIdx != tt.want {
			t.Errorf("Match(%q, %q, %q) = rule %d, want %d", tt.host, tt.path, tt.method, gotIdx, tt.want)
		}
	}
}

func TestRuleAuthorize(t *testing.T) {
	c := &Claims{
		Subject: "corp|1", Audience: []string{"orders-api", "shop-web"},
		Scopes: []string{"openid", "orders:read"}, Groups: []string{"staff"},
		Raw: map[string]any{"idp": "corp", "amr": []any{"pwd", "mfa"}, "email_verified": true, "level": float64(3)},
	}
	tests := []struct {
		name       string
		rule       Rule
		claims     *Claims
		wantStatus int // 0: allowed
	}{
		{"no requirements", Rule{}, c, 0},
		{"anonymous without claims", Rule{Allow: AllowAnonymous}, nil, 0},
		{"no claims", Rule{}, nil, http.StatusUnauthorized},
		{"audience held", Rule{Audience: "shop-web"}, c, 0},
		{"audience not held", Rule{Audience: "billing-api"}, c, http.StatusUnauthorized},
		{"scope anyOf", Rule{Scopes: Set{AnyOf: []string{"orders:write", "orders:read"}}}, c, 0},
		{"scope anyOf missing", Rule{Scopes: Set{AnyOf: []string{"orders:write"}}}, c, http.StatusForbidden},
		{"scope allOf", Rule{Scopes: Set{AllOf: []string{"openid", "orders:read"}}}, c, 0},
		{"scope allOf partly", Rule{Scopes: Set{AllOf: []string{"openid", "orders:write"}}}, c, http.StatusForbidden},
		{"group", Rule{Groups: Set{AnyOf: []string{"admins", "staff"}}}, c, 0},
		{"group missing", Rule{Groups: Set{AnyOf: []string{"admins"}}}, c, http.StatusForbidden},
		{"claim string", Rule{Claims: map[string][]string{"idp": {"google", "corp"}}}, c, 0},
		{"claim string mismatch", Rule{Claims: map[string][]string{"idp": {"google"}}}, c, http.StatusForbidden},
		{"claim array element", Rule{Claims: map[string][]string{"amr": {"mfa"}}}, c, 0},
		{"claim bool", Rule{Claims: map[string][]string{"email_verified": {"true"}}}, c, 0},
		{"claim number", Rule{Claims: map[string][]string{"level": {"3"}}}, c, 0},
		{"claim absent", Rule{Claims: map[string][]string{"tenant": {"a"}}}, c, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.rule.Authorize(tt.claims)
			if got := statusOf(err); got != tt.wantStatus {
				t.Errorf("Authorize() = %v, want status %d", err, tt.wantStatus)
			}
			if tt.wantStatus == http.StatusForbidden && !strings.Contains(err.Error(), CodeInsufficientScope) {
				t.Errorf("Authorize() = %v, want %s", err, CodeInsufficientScope)
			}
		})
	}
}

func TestRulesValidate(t *testing.T) {
	tests := []struct {
		name  string
		rules Rules
		want  []string // substrings of the error; nil: valid
	}{
		{"sketch-like", Rules{{Host: "api.example.com", Path: "/orders/", Methods: []string{"GET"}}}, nil},
		{"empty", Rules{}, []string{"at least one rule"}},
		{"bad allow", Rules{{Allow: "everyone"}}, []string{`allow "everyone"`}},
		{"anonymous with scopes", Rules{{Allow: AllowAnonymous, Scopes: Set{AnyOf: []string{"a"}}}}, []string{"anonymous rule"}},
		{"host with port", Rules{{Host: "api.example.com:443"}}, []string{"host"}},
		{"host with scheme", Rules{{Host: "https://api.example.com"}}, []string{"host"}},
		{"relative path", Rules{{Path: "orders"}}, []string{"path"}},
		{"unclean path", Rules{{Path: "/a/../b"}}, []string{"path"}},
		{"bad method", Rules{{Methods: []string{"GET POST"}}}, []string{"methods"}},
		{"scope with a space", Rules{{Scopes: Set{AllOf: []string{"a b"}}}}, []string{"scopes"}},
		{"claim without values", Rules{{Claims: map[string][]string{"idp": nil}}}, []string{"claims"}},
		{"all problems at once", Rules{{Path: "x"}, {Allow: "x"}}, []string{"rules[0]: path", "rules[1]: allow"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.rules.Validate()
			if tt.want == nil {
				if err != nil {
					t.Errorf("Validate() = %v, want nil", err)
				}
				return
			}
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %v, want an error containing %q", err, w)
				}
			}
		})
	}
}
