package verify

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
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
		want               int // index into rs, -1: no match or refused
	}{
		{"api.example.com", "/public/index.html", "GET", 0},
		{"API.Example.COM:8443", "/public/x?y=1", "GET", 0},
		{"api.example.com", "/public", "GET", 0}, // the directory itself
		{"api.example.com", "/publicity", "GET", -1},
		{"api.example.com", "/public/../orders/1", "POST", -1},    // refused, never cleaned
		{"api.example.com", "/public/%2e%2e/orders/1", "GET", -1}, // refused, never cleaned
		{"api.example.com", "/public%2F..%2Forders/1", "GET", -1}, // refused
		{"api.example.com", "/public/%zz", "GET", -1},             // undecodable: deny
		{"api.example.com", "/%6frders/1", "GET", 2},              // decoded before matching
		{"api.example.com", "/orders/1", "post", 1},               // method case-insensitive
		{"api.example.com", "/orders/1", "DELETE", 2},             // falls through to the next rule
		{"api.example.com", "//orders//1", "GET", -1},             // empty segments: refused
		{"shop.example.com", "/admin/users", "GET", 3},            //
		{"shop.example.com", "/anything", "GET", 4},               //
		{"shop.example.com.", "/anything", "GET", -1},             // no fuzzy host matching
		{"other.example.com", "/exact", "GET", 5},                 // empty host: any host
		{"other.example.com", "/exact/sub", "GET", 5},             //
		{"other.example.com", "/exactly", "GET", -1},              //
		{"other.example.com", "", "GET", -1},                      // no URI: deny
		{"other.example.com", "relative", "GET", -1},              //
		{"[::1]:8080", "/v6", "GET", 6},                           //
		{"other.example.com", "/other", "GET", -1},                // no rule: deny
	}
	for _, tt := range tests {
		got, err := matchIndex(rs, tt.host, tt.path, tt.method)
		if got != tt.want || (got < 0) != (err != nil) {
			t.Errorf("Match(%q, %q, %q) = rule %d, %v; want %d", tt.host, tt.path, tt.method, got, err, tt.want)
		}
	}
}

// matchIndex returns the index in rs of the rule Match chose (-1 for none)
// and its error.
func matchIndex(rs Rules, host, uri, method string) (int, error) {
	r, err := rs.Match(host, uri, method)
	for i := range rs {
		if &rs[i] == r {
			return i, err
		}
	}
	return -1, err
}

// ambiguityRules are rules where steering a request onto the wrong one
// matters: an anonymous /public/, group-guarded /admin and /files/private/,
// an API carrying %2F inside a segment, a case-insensitive backend's
// /Reports/, and a signed-in catch-all.
var ambiguityRules = Rules{
	{Path: "/public/", Allow: AllowAnonymous},                                       // 0
	{Path: "/admin", Groups: Set{AnyOf: []string{"admins"}}},                        // 1
	{Path: "/files/private/", Groups: Set{AnyOf: []string{"admins"}}},               // 2
	{Path: "/files/", AllowEncodedSlash: true},                                      // 3
	{Path: "/Reports/", CaseInsensitive: true, Groups: Set{AnyOf: []string{"fin"}}}, // 4
	{Path: "/"}, // 5
}

// TestMatchAmbiguousPaths is the regression test of the review's "steer the
// edge onto a weaker rule": every path shape a backend may resolve
// differently from the rules is refused (403 invalid_request, cause
// ErrAmbiguousPath, with its own reason), never cleaned into another rule.
func TestMatchAmbiguousPaths(t *testing.T) {
	tests := []struct {
		name, uri string
		want      int    // rule index; -1: refused
		reason    string // substring of the refusal's description
	}{
		{"review: encoded slash climbs out of /admin", "/admin/..%2Fpublic/x", -1, "dot segment"},
		{"raw dot-dot", "/public/../admin", -1, "dot segment"},
		{"raw dot-dot at the end", "/admin/x/..", -1, "dot segment"},
		{"raw dot", "/public/./x", -1, "dot segment"},
		{"encoded dot-dot", "/public/%2e%2e/admin", -1, "dot segment"},
		{"encoded dot-dot mixed case", "/public/%2E%2e/admin", -1, "dot segment"},
		{"half-encoded dot-dot", "/public/.%2e/admin", -1, "dot segment"},
		{"encoded dot", "/public/%2e/x", -1, "dot segment"},
		{"dot-dot between encoded slashes", "/files/a%2F..%2F..%2Fadmin", -1, "dot segment"},
		{"lower-case encoded slash", "/public%2fadmin", -1, "encoded slash"},
		{"encoded slash on a rule without opt-in", "/public/a%2Fb", -1, "allowEncodedSlash"},
		{"encoded slash leaves the opted-in rule", "/files%2Fa", -1, "allowEncodedSlash"},
		{"encoded slash would change the rule", "/files/private%2Fx", -1, "changes which rule"},
		{"encoded backslash", "/public/..%5Cadmin", -1, "backslash"},
		{"encoded backslash lower case", "/public/a%5cb", -1, "backslash"},
		{"raw backslash", "/public\\..\\admin", -1, "backslash"},
		{"semicolon path parameter", "/admin;x=1", -1, "semicolon"},
		{"semicolon before dot-dot", "/public/..;/admin", -1, "semicolon"},
		{"encoded semicolon", "/admin%3bx", -1, "semicolon"},
		{"encoded NUL", "/public/x%00/../../admin", -1, "control character"},
		{"raw NUL", "/public/x\x00", -1, "control character"},
		{"encoded CR LF", "/public/a%0D%0Ab", -1, "control character"},
		{"raw tab", "/public/a\tb", -1, "control character"},
		{"raw space", "/public/a b", -1, "control character"},
		{"encoded DEL", "/public/a%7f", -1, "control character"},
		{"bad escape", "/public/%zz", -1, "invalid percent-encoding"},
		{"truncated escape", "/public/%4", -1, "invalid percent-encoding"},
		{"lone percent", "/public/%", -1, "invalid percent-encoding"},
		{"double encoding", "/public/%252e%252e/admin", -1, "double percent-encoding"},
		{"double-encoded slash", "/public/..%252Fadmin", -1, "double percent-encoding"},
		{"empty segment", "//admin", -1, "empty segment"},
		{"empty segment inside", "/public//x", -1, "empty segment"},
		{"fragment", "/public/x#/../admin", -1, "fragment"},
		{"no path", "", -1, "not absolute"},
		{"absolute form", "http://evil.example/admin", -1, "not absolute"},

		{"plain", "/admin/users", 1, ""},
		{"trailing slash", "/admin/", 1, ""},
		{"query is not the path", "/public/x?next=/../admin;x", 0, ""},
		{"decoded letters", "/%61dmin/x", 1, ""},
		{"dots inside a name", "/public/..hidden/a.b", 0, ""},
		{"encoded percent", "/public/100%25", -1, "double percent-encoding"},
		{"encoded percent before encoded hex digits", "/public/%25%32%65%25%32%65/admin", -1, "double percent-encoding"},
		{"encoded question mark", "/admin%3F/x", -1, "query or fragment delimiter"},
		{"encoded hash", "/admin%23x", -1, "query or fragment delimiter"},
		{"segment ending in a dot", "/admin./x", -1, "ending in a dot"},
		{"last segment ending in a dot", "/public/x.", -1, "ending in a dot"},
		{"segment of dots", "/public/...", -1, "ending in a dot"},
		{"encoded slash next to a slash", "/files/%2Fadmin", -1, "empty segment"},
		{"encoded slash ending a segment before a slash", "/files/a%2F/b", -1, "empty segment"},
		{"segment ending in a dot before an encoded slash", "/files/a.%2Fb", -1, "ending in a dot"},
		{"upper case reaches a case-sensitive rule", "/ADMIN/users", -1, "case-insensitively"},
		{"mixed case reaches a case-sensitive rule", "/Admin", -1, "case-insensitively"},
		{"dotless i folds to i upper-cased", "/adm%C4%B1n/x", -1, "case-insensitively"},
		{"long s folds to s upper-cased", "/reports/q%C5%BF", 4, ""},
		{"long s reaches another rule", "/file%C5%BF/x", -1, "case-insensitively"},
		{"Kelvin sign folds to k lower-cased", "/files/private/%E2%84%AA", 2, ""},
		{"non-ASCII without case", "/public/%E6%97%A5%E6%9C%AC", 0, ""},
		{"non-ASCII letter with case", "/public/Z%C3%BCrich", 0, ""},
		{"encoded slash on an opted-in rule", "/files/a%2Fb", 3, ""},
		{"case-sensitive, no other rule in any case", "/Other/x", 5, ""},
		{"case-insensitive rule", "/REPORTS/q4", 4, ""},
		{"case-insensitive rule, encoded letter", "/%52eports/q4", 4, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := matchIndex(ambiguityRules, "api.example.com", tt.uri, "GET")
			if got != tt.want {
				t.Fatalf("Match(%q) = rule %d, %v; want rule %d", tt.uri, got, err, tt.want)
			}
			if tt.want >= 0 {
				if err != nil {
					t.Fatalf("Match(%q) = %v, want nil", tt.uri, err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || !errors.Is(err, ErrAmbiguousPath) || e.Status != http.StatusForbidden ||
				e.Code != CodeInvalidRequest || !strings.Contains(e.Description, tt.reason) {
				t.Errorf("Match(%q) = %v, want a 403 %s refusal (ErrAmbiguousPath) saying %q", tt.uri, err, CodeInvalidRequest, tt.reason)
			}
		})
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
		{"encoded path", Rules{{Path: "/a%2Fb"}}, []string{"written decoded"}},
		{"path with a semicolon", Rules{{Path: "/a;b"}}, []string{"path"}},
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

// FuzzParsePath: a path parsePath accepts is one no backend resolves
// further: cleaning leaves it as it is, and it holds no byte a backend
// might read as a separator (an encoded ? or # is data once decoded). Run: go test -fuzz=FuzzParsePath
// -fuzztime=30s ./web/verify/
func FuzzParsePath(f *testing.F) {
	for _, seed := range []string{
		"/", "/a/b/", "/admin/..%2Fpublic/x", "/public/..;/admin", "/%2e%2E/", "/a%2Fb", "/a%252Fb", "/a%25", "/%zz",
		"//x", "/a\\b", "/a%00", "/files/a%2F..%2Fb", "/x?y=/../", "/%61%2F%2e", "/a#b", "/.../..a",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		p, encodedSlash, err := parsePath(uri)
		if err != nil {
			if !errors.Is(err, ErrAmbiguousPath) {
				t.Fatalf("parsePath(%q) = %v, want an ErrAmbiguousPath refusal", uri, err)
			}
			return
		}
		slashed := strings.ReplaceAll(p, "%2F", "/")
		if encodedSlash != (slashed != p) {
			t.Errorf("parsePath(%q) = %q, encodedSlash %v", uri, p, encodedSlash)
		}
		for _, q := range []string{p, slashed} {
			if cleanPath(q) != q && !strings.Contains(q, "//") {
				t.Errorf("parsePath(%q) = %q: cleaning changes %q", uri, p, q)
			}
		}
		if strings.Contains(p, "//") || strings.ContainsFunc(p, func(r rune) bool {
			return r == '\\' || r == ';' || r <= ' ' || r == 0x7f // decoded ? and # are data
		}) {
			t.Errorf("parsePath(%q) = %q, which holds a byte a backend may read differently", uri, p)
		}
	})
}

// checkOverHTTP sends, over real HTTP, the check request nginx's
// auth_request makes for a client's request to uri, to a handler with rules.
func checkOverHTTP(t *testing.T, rules Rules, uri string) *http.Response {
	t.Helper()
	e := newEnv(t)
	v := newVerifier(t, e.ks, e.clock, nil)
	if err := rules.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	srv := httptest.NewServer(NewHandler(v, rules, HandlerOptions{}))
	t.Cleanup(srv.Close)
	return rawRequest(t, srv.Listener.Addr().String(), "GET /oauth2/auth HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Original-URI: "+uri+
		"\r\nX-Original-Method: GET\r\nX-Forwarded-Host: api.example.com\r\nConnection: close\r\n\r\n")
}

// The following tests (issue 11 review) each put a strict rule in front of
// an anonymous one and send a path that a backend of some kind serves from
// the strict route: the check must not answer 200.

// TestMatchCaseFoldBeyondASCII: Java's equalsIgnoreCase (and upper-case
// based routers) equate "ı" (U+0131) with "i" and "ſ" (U+017F) with "s",
// which strings.ToLower does not; and Caddy's path matchers route "/ADMIN"
// to a "/admin" handler even when the rule is case-sensitive.
func TestMatchCaseFoldBeyondASCII(t *testing.T) {
	rules := Rules{
		{Path: "/admin", CaseInsensitive: true, Groups: Set{AnyOf: []string{"admins"}}},
		{Path: "/settings", CaseInsensitive: true, Groups: Set{AnyOf: []string{"admins"}}},
		{Path: "/staff", Groups: Set{AnyOf: []string{"staff"}}},
		{Path: "/", Allow: AllowAnonymous},
	}
	for _, uri := range []string{"/ADMIN/x", "/adm%C4%B1n/x", "/%C5%BFettings", "/STAFF/x", "/%C5%BFtaff"} {
		t.Run(uri, func(t *testing.T) {
			if resp := checkOverHTTP(t, rules, uri); resp.StatusCode == http.StatusOK {
				t.Errorf("check of %q = 200 (anonymous rule), want 401/403: a case-insensitive router serves it from a guarded path", uri)
			}
		})
	}
}

// TestMatchEncodedSlashHidesEmptySegment: with allowEncodedSlash on a broad
// rule, "%2F" next to a real "/" makes an empty segment: /repos/%2Fadmin
// decoded is /repos//admin, which a backend that merges slashes (Spring's
// UrlPathHelper, many path cleaners) serves as /repos/admin.
func TestMatchEncodedSlashHidesEmptySegment(t *testing.T) {
	rules := Rules{
		{Path: "/repos/admin", Groups: Set{AnyOf: []string{"admins"}}},
		{Path: "/repos", AllowEncodedSlash: true, Allow: AllowAnonymous},
	}
	for _, uri := range []string{"/repos/%2Fadmin", "/repos/%2F%2Fadmin/x"} {
		t.Run(uri, func(t *testing.T) {
			if resp := checkOverHTTP(t, rules, uri); resp.StatusCode != http.StatusForbidden {
				t.Errorf("check of %q = %d, want 403: decoded, it is /repos//admin", uri, resp.StatusCode)
			}
		})
	}
}

// TestMatchDoubleEncodingViaEncodedHexDigits: "%25" followed by encoded hex
// digits decodes once to /public/%2e%2e/admin and twice to /public/../admin.
func TestMatchDoubleEncodingViaEncodedHexDigits(t *testing.T) {
	rules := Rules{
		{Path: "/admin", Groups: Set{AnyOf: []string{"admins"}}},
		{Path: "/public", Allow: AllowAnonymous},
	}
	for _, uri := range []string{"/public/%25%32%65%25%32%65/admin", "/public/x%25%32%46..%25%32%46..%25%32%46admin"} {
		t.Run(uri, func(t *testing.T) {
			if resp := checkOverHTTP(t, rules, uri); resp.StatusCode != http.StatusForbidden {
				t.Errorf("check of %q = %d, want 403 invalid_request (double encoding)", uri, resp.StatusCode)
			}
		})
	}
}

// TestMatchEncodedQueryAndFragmentDelimiters: /admin%3F/x and /admin%23x
// must not be judged as the paths "/admin?/x" and "/admin#x": an
// intermediary that decodes the path once and parses it again (a rewrite,
// a proxy_pass with a URI part, a decoding router) serves /admin.
func TestMatchEncodedQueryAndFragmentDelimiters(t *testing.T) {
	rules := Rules{
		{Path: "/admin", Groups: Set{AnyOf: []string{"admins"}}},
		{Path: "/", Allow: AllowAnonymous},
	}
	for _, uri := range []string{"/admin%3F/x", "/admin%23x", "/admin%3f"} {
		t.Run(uri, func(t *testing.T) {
			if resp := checkOverHTTP(t, rules, uri); resp.StatusCode != http.StatusForbidden {
				t.Errorf("check of %q = %d, want 403 invalid_request (an encoded query or fragment delimiter)", uri, resp.StatusCode)
			}
		})
	}
}

// TestMatchSegmentEndingInDot: Windows path normalisation (IIS) drops
// trailing dots from a segment and serves /admin./x as /admin/x.
func TestMatchSegmentEndingInDot(t *testing.T) {
	rules := Rules{
		{Path: "/admin", CaseInsensitive: true, Groups: Set{AnyOf: []string{"admins"}}},
		{Path: "/", Allow: AllowAnonymous},
	}
	for _, uri := range []string{"/admin./x", "/ADMIN./x", "/admin..", "/admin%2e/x"} {
		t.Run(uri, func(t *testing.T) {
			if resp := checkOverHTTP(t, rules, uri); resp.StatusCode != http.StatusForbidden {
				t.Errorf("check of %q = %d, want 403: a trailing dot is dropped by Windows path normalisation", uri, resp.StatusCode)
			}
		})
	}
}
