package federation

import (
	"github.com/keyward/keyward/cmd/config"

	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/keyward/keyward/test/fakeidp"
)

const keywardAud = "https://keyward.test"

// clock is an injected, advanceable time source shared by Trust and the
// fake CI issuer.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: testNow} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// ciIssuer is a fake CI issuer (fakeidp) that can be taken down: while down
// every request gets 503 and is not counted in Hits.
type ciIssuer struct {
	*fakeidp.Server
	down atomic.Bool
}

func newCI(t *testing.T, alg string, clk *clock) *ciIssuer {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	s, err := fakeidp.New(fakeidp.Config{Issuer: "http://" + ts.Listener.Addr().String(), Algorithm: alg, Now: clk.Now})
	if err != nil {
		t.Fatalf("fakeidp.New: %v", err)
	}
	ci := &ciIssuer{Server: s}
	ts.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ci.down.Load() {
			http.Error(w, "issuer down", http.StatusServiceUnavailable)
			return
		}
		s.Handler().ServeHTTP(w, r)
	})
	ts.Start()
	t.Cleanup(ts.Close)
	return ci
}

// hits returns the discovery and keys hit counts.
func (ci *ciIssuer) hits() [2]int64 { return [2]int64{ci.Hits("discovery"), ci.Hits("keys")} }

// ghClaims are GitHub Actions-like claims for aud keywardAud, with over
// applied (nil removes a claim).
func ghClaims(over map[string]any) map[string]any {
	c := map[string]any{
		"aud": keywardAud, "sub": "repo:acme/api:environment:prod", "jti": "jti-1",
		"repository": "acme/api", "repository_owner": "acme", "repository_id": "123",
		"ref": "refs/heads/main", "ref_type": "branch", "environment": "prod",
		"job_workflow_ref": "acme/api/.github/workflows/deploy.yml@refs/heads/main",
	}
	maps.Copy(c, over)
	return c
}

func newTestTrust(t *testing.T, clk *clock, rules ...TrustRule) *Trust {
	t.Helper()
	tr, err := NewTrust(TrustConfig{
		Rules:      rules,
		HTTPClient: &http.Client{Timeout: 5 * time.Second},
		Now:        clk.Now,
	})
	if err != nil {
		t.Fatalf("NewTrust() = %v", err)
	}
	return tr
}

// rule is a valid rule for issuer; modify adjusts it.
func rule(name, issuer string, claims map[string]string, subject string) TrustRule {
	return TrustRule{
		Name: name, Issuer: issuer, Audience: keywardAud, Claims: claims, Subject: subject,
		Audiences: []string{"https://api.example.com"}, Scopes: []string{"deploy"},
	}
}

func TestTrustRuleValidate(t *testing.T) {
	valid := rule("gh", "https://token.actions.githubusercontent.com",
		map[string]string{"repository": "acme/api", "ref": "refs/heads/*"}, "github:{repository}:{ref}")
	tests := []struct {
		name   string
		modify func(r *TrustRule)
		want   []string // substrings, one per expected problem
	}{
		{name: "valid", modify: func(*TrustRule) {}},
		{name: "valid minimal", modify: func(r *TrustRule) { r.Claims, r.Scopes, r.Subject = nil, nil, "fixed-bot" }},
		{name: "valid ES384 and literal star", modify: func(r *TrustRule) {
			r.Algorithms = []string{"ES384"}
			r.Claims = map[string]string{"x": `\*`}
		}},
		{name: "empty", modify: func(r *TrustRule) { *r = TrustRule{} }, want: []string{
			"name: must not be empty", "issuer: set it to the issuer URL", "audience: must not be empty",
			"subject: must not be empty", "audiences: must list at least one",
		}},
		{name: "bad name", modify: func(r *TrustRule) { r.Name = "GitHub Deploy" }, want: []string{`name: "GitHub Deploy" must match`}},
		{name: "http issuer", modify: func(r *TrustRule) { r.Issuer = "http://ci.example.com" }, want: []string{`issuer: "http://ci.example.com" must use https`}},
		{name: "empty pinned value", modify: func(r *TrustRule) { r.Claims["ref"] = "" }, want: []string{`claims["ref"]: pattern must not be empty`}},
		{name: "lone backslash", modify: func(r *TrustRule) { r.Claims["ref"] = `refs\` }, want: []string{`claims["ref"]: pattern ends with a lone '\'`}},
		{name: "empty claim name", modify: func(r *TrustRule) { r.Claims[""] = "x" }, want: []string{`claims[""]: claim name must not be empty`}},
		{name: "reserved claims", modify: func(r *TrustRule) {
			r.Claims = map[string]string{"aud": "x", "iss": "y", "exp": "1"}
		}, want: []string{`claims["aud"]: cannot be pinned (use audience)`, `claims["exp"]: cannot be pinned`, `claims["iss"]: cannot be pinned (use issuer)`}},
		{name: "subject unterminated", modify: func(r *TrustRule) { r.Subject = "github:{repository" }, want: []string{`subject: "github:{repository": '{' without '}'`}},
		{name: "subject stray close", modify: func(r *TrustRule) { r.Subject = "github:repository}" }, want: []string{"'}' without '{'"}},
		{name: "subject empty placeholder", modify: func(r *TrustRule) { r.Subject = "github:{}" }, want: []string{"empty {}"}},
		{name: "subject nested", modify: func(r *TrustRule) { r.Subject = "{a{b}}" }, want: []string{"'{' without '}'"}},
		// A person's subject is 32 characters of a-z and 2-7: a template
		// without another literal character could render one (a CI user
		// name chosen to equal it).
		{name: "subject only a claim", modify: func(r *TrustRule) { r.Subject = "{actor}" }, want: []string{`subject: "{actor}" needs a literal character other than a-z and 2-7`}},
		{name: "subject literal in the person alphabet", modify: func(r *TrustRule) { r.Subject = "ci{actor}z" }, want: []string{`subject: "ci{actor}z" needs a literal character`}},
		{name: "valid literal outside the person alphabet", modify: func(r *TrustRule) { r.Subject = "{actor}@ci" }},
		{name: "audiences", modify: func(r *TrustRule) { r.Audiences = []string{"a", "", "a", " b"} }, want: []string{
			`audiences[1]: ""`, `audiences[2]: "a" is listed twice`, `audiences[3]: " b"`,
		}},
		{name: "scopes", modify: func(r *TrustRule) { r.Scopes = []string{"ok", "two words", ""} }, want: []string{`scopes[1]: "two words"`, `scopes[2]: ""`}},
		{name: "negative ttl", modify: func(r *TrustRule) { r.MaxTTL = config.Duration(-time.Second) }, want: []string{"maxTTL: -1s must be between"}},
		{name: "long ttl", modify: func(r *TrustRule) { r.MaxTTL = config.Duration(25 * time.Hour) }, want: []string{"maxTTL: 25h0m0s"}},
		{name: "symmetric and none", modify: func(r *TrustRule) { r.Algorithms = []string{"HS256", "none", "RS256"} }, want: []string{
			`algorithms[0]: "HS256" is not one of`, `algorithms[1]: "none"`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := valid
			r.Claims = maps.Clone(valid.Claims)
			tt.modify(&r)
			err := r.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tt.want)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Errorf("Validate() has %d problems, want %d:\n%v", len(lines), len(tt.want), err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %v\nwant it to contain %q", err, w)
				}
			}
		})
	}
}

func TestNewTrustConfig(t *testing.T) {
	good := rule("gh", "https://token.actions.githubusercontent.com", nil, "github:{repository}")
	bad := good
	bad.Claims = map[string]string{"ref": ""}
	_, err := NewTrust(TrustConfig{Rules: []TrustRule{good, good, bad}, Leeway: 2 * time.Minute, MinRefreshInterval: -1})
	if err == nil {
		t.Fatal("NewTrust() = nil, want errors")
	}
	for _, w := range []string{
		`rules[1].name: "gh" is used by an earlier rule`,
		`rules[2].name: "gh" is used`,
		`rules[2].claims["ref"]: pattern must not be empty`,
		"leeway: must be between 0 and 1m",
		"min_refresh_interval: must not be negative",
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("NewTrust() = %v\nwant it to contain %q", err, w)
		}
	}

	other := rule("gl", "https://gitlab.com", nil, "gitlab:{project_path}")
	tr, err := NewTrust(TrustConfig{Rules: []TrustRule{good, other, good2(good)}})
	if err != nil {
		t.Fatalf("NewTrust() = %v", err)
	}
	if diff := cmp.Diff([]string{"https://gitlab.com", "https://token.actions.githubusercontent.com"}, tr.Issuers()); diff != "" {
		t.Errorf("Issuers() (-want +got):\n%s", diff)
	}
	got := tr.issuers["https://token.actions.githubusercontent.com"].rules[0].TrustRule
	if got.MaxTTL != config.Duration(10*time.Minute) || !cmp.Equal(got.Algorithms, []string{"RS256", "ES256"}) {
		t.Errorf("defaults: MaxTTL = %s, Algorithms = %v; want 10m, [RS256 ES256]", got.MaxTTL, got.Algorithms)
	}
}

// TestNewTrustOverlappingSubjects: rules trusting different issuers must
// render disjoint subjects, or one issuer's token could carry another's
// workload subject.
func TestNewTrustOverlappingSubjects(t *testing.T) {
	const gh, gl = "https://token.actions.githubusercontent.com", "https://gitlab.com"
	tests := []struct {
		name  string
		rules []TrustRule
		want  string // "" valid
	}{
		{"distinct prefixes", []TrustRule{rule("a", gh, nil, "github:{repository}"), rule("b", gl, nil, "gitlab:{project_path}")}, ""},
		{"same issuer may share a prefix", []TrustRule{rule("a", gh, nil, "github:{repository}"), rule("b", gh, nil, "github:{repository}:{ref}")}, ""},
		{"same prefix, two issuers", []TrustRule{rule("a", gh, nil, "ci:{repository}"), rule("b", gl, nil, "ci:{project_path}")},
			`rules[1].subject: "ci:{project_path}" may render the same subjects as rules[0] ("ci:{repository}"), which trusts another issuer`},
		{"one prefix begins the other", []TrustRule{rule("a", gh, nil, "ci:{repository}"), rule("b", gl, nil, "ci:gl:{project_path}")},
			`rules[1].subject: "ci:gl:{project_path}" may render the same subjects as rules[0]`},
		{"no prefix", []TrustRule{rule("a", gh, nil, "{repository}@github"), rule("b", gl, nil, "gitlab:{project_path}")},
			`rules[1].subject: "gitlab:{project_path}" may render the same subjects as rules[0]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewTrust(TrustConfig{Rules: tt.rules})
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("NewTrust() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("NewTrust() = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func good2(r TrustRule) TrustRule {
	r.Name = "gh-2"
	return r
}

func TestGlob(t *testing.T) {
	tests := []struct {
		pattern string
		value   any
		want    bool
	}{
		{"acme/api", "acme/api", true},
		{"acme/api", "acme/api2", false},
		{"acme/api", "Acme/api", false},
		{"acme/api", "", false},
		{"refs/heads/*", "refs/heads/main", true},
		{"refs/heads/*", "refs/heads/", true}, // '*' matches the empty run
		{"refs/heads/*", "refs/heads/feature/x", false},
		{"refs/heads/*", "refs/heads", false},
		{"refs/heads/**", "refs/heads/feature/x", true},
		{"refs/heads/**", "refs/heads/", true},
		{"refs/heads/***", "refs/heads/a/b", true}, // a run of stars is '**'
		{"refs/*/main", "refs/heads/main", true},
		{"refs/*/main", "refs/heads/x/main", false},
		{"refs/**/main", "refs/heads/x/main", true},
		{"*", "anything-without-slash", true},
		{"*", "", true},
		{"*", "a/b", false},
		{"**", "a/b", true},
		{"**", "", true},
		{"v?.*", "v1.2", true},
		{"v?.*", "v10.2", false},
		{"v?", "v/", false},                                          // '?' never matches '/'
		{"v?", "vé", true},                                           // one character, not one byte
		{"v?", "v", false},                                           // exactly one
		{`\*`, "*", true},                                            // literal star
		{`\*`, "x", false},                                           // literal star
		{`a\?`, "a?", true},                                          // literal question mark
		{`a\\`, `a\`, true},                                          // literal backslash
		{"a*b*c*d*e*f*g*h*i*j*k", strings.Repeat("ab", 4000), false}, // no backtracking blow-up
		// Non-string claims: JSON text.
		{"true", true, true},
		{"false", true, false},
		{"42", json.Number("42"), true},
		{"4?", json.Number("42"), true},
		{"4?", json.Number("4.5"), false},
		{"1.5", json.Number("1.5"), true},
		{"12345678901", json.Number("12345678901"), true},
		// Never match.
		{"**", nil, false},
		{"**", []any{"a"}, false},
		{"**", map[string]any{"a": "b"}, false},
		{"[a]", []any{"a"}, false},
	}
	for _, tt := range tests {
		g, err := parseGlob(tt.pattern)
		if err != nil {
			t.Errorf("parseGlob(%q) = %v", tt.pattern, err)
			continue
		}
		if got := g.match(tt.value); got != tt.want {
			t.Errorf("glob %q match(%#v) = %t, want %t", tt.pattern, tt.value, got, tt.want)
		}
	}
}

func TestSubjectTemplate(t *testing.T) {
	claims := map[string]any{
		"repository": "acme/api", "ref": "refs/heads/main", "empty": "", "num": json.Number("7"),
		"bool": true, "braces": "{ref}", "ctl": "a\nb", "arr": []any{"x"},
	}
	tests := []struct {
		template string
		want     string
		wantErr  string
	}{
		{template: "github:{repository}:{ref}", want: "github:acme/api:refs/heads/main"},
		{template: "deploy-bot", want: "deploy-bot"},
		{template: "{repository}{ref}", want: "acme/apirefs/heads/main"},
		{template: "{repository}", want: "acme/api"},
		{template: "x:{braces}", want: "x:{ref}"}, // one pass: values are never re-expanded
		{template: "x:{missing}", wantErr: `claim "missing" is missing`},
		{template: "x:{empty}", wantErr: `claim "empty" is empty`},
		{template: "x:{num}", wantErr: `claim "num" is not a string`},
		{template: "x:{bool}", wantErr: `claim "bool" is not a string`},
		{template: "x:{arr}", wantErr: `claim "arr" is not a string`},
		{template: "x:{ctl}", wantErr: `claim "ctl" has control characters`},
	}
	for _, tt := range tests {
		r := compile(TrustRule{Subject: tt.template})
		got, err := r.render(claims)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("render(%q) = %q, %v; want error %q", tt.template, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("render(%q) = %q, %v; want %q", tt.template, got, err, tt.want)
		}
	}
}

func TestTrustVerifyClaims(t *testing.T) {
	clk := newClock()
	ci := newCI(t, "RS256", clk)
	iss := ci.URL()
	other := rule("other-aud", iss, map[string]string{"repository": "acme/api"}, "b:{repository}")
	other.Audience = "https://other.test"
	tr := newTestTrust(t, clk,
		rule("needs-sha", iss, map[string]string{"repository": "acme/sha-only"}, "sha:{sha}"),
		rule("prod", iss, map[string]string{"repository": "acme/api", "ref": "refs/heads/main", "environment": "prod"}, "github:{repository}:env:{environment}"),
		rule("branches", iss, map[string]string{"repository": "acme/*", "ref": "refs/heads/*"}, "github:{repository}:{ref}"),
		rule("releases", iss, map[string]string{"repository_owner": "acme", "ref": "refs/heads/release/**"}, "release:{repository}"),
		rule("tags", iss, map[string]string{"ref": "refs/tags/v?.*", "ref_type": "tag"}, "tag:{ref}"),
		rule("typed", iss, map[string]string{"fork": "false", "run_number": "4?", "weird": `\*`}, "typed:{repository}"),
		other,
	)
	tests := []struct {
		name     string
		over     map[string]any
		wantRule string
		wantSub  string
	}{
		{name: "exact", wantRule: "prod", wantSub: "github:acme/api:env:prod"},
		{name: "other environment falls to glob", over: map[string]any{"environment": "staging"}, wantRule: "branches", wantSub: "github:acme/api:refs/heads/main"},
		{name: "missing pinned claim", over: map[string]any{"environment": nil}, wantRule: "branches", wantSub: "github:acme/api:refs/heads/main"},
		{name: "star does not cross slash", over: map[string]any{"environment": nil, "ref": "refs/heads/feature/x"}},
		{name: "double star crosses slash", over: map[string]any{"ref": "refs/heads/release/2030/q1"}, wantRule: "releases", wantSub: "release:acme/api"},
		{name: "star matches empty", over: map[string]any{"repository": "acme/", "environment": nil}, wantRule: "branches", wantSub: "github:acme/:refs/heads/main"},
		{name: "case sensitive", over: map[string]any{"repository": "ACME/api", "repository_owner": "ACME"}},
		{name: "other owner", over: map[string]any{"repository": "evil/api", "repository_owner": "evil"}},
		{name: "question mark", over: map[string]any{"ref": "refs/tags/v1.2.3", "ref_type": "tag"}, wantRule: "tags", wantSub: "tag:refs/tags/v1.2.3"},
		{name: "question mark is one char", over: map[string]any{"ref": "refs/tags/v10.0", "ref_type": "tag"}},
		{name: "non-string claims", over: map[string]any{"ref": "refs/pull/1/merge", "fork": false, "run_number": 42, "weird": "*"}, wantRule: "typed", wantSub: "typed:acme/api"},
		{name: "string that reads like bool", over: map[string]any{"ref": "refs/pull/1/merge", "fork": "false", "run_number": "40", "weird": "*"}, wantRule: "typed", wantSub: "typed:acme/api"},
		{name: "bool mismatch", over: map[string]any{"ref": "refs/pull/1/merge", "fork": true, "run_number": 42, "weird": "*"}},
		{name: "number mismatch", over: map[string]any{"ref": "refs/pull/1/merge", "fork": false, "run_number": 4.5, "weird": "*"}},
		{name: "literal star mismatch", over: map[string]any{"ref": "refs/pull/1/merge", "fork": false, "run_number": 42, "weird": "x"}},
		{name: "array never matches", over: map[string]any{"ref": "refs/pull/1/merge", "fork": []any{false}, "run_number": 42, "weird": "*"}},
		{name: "object never matches", over: map[string]any{"ref": "refs/pull/1/merge", "fork": false, "run_number": map[string]any{"n": 42}, "weird": "*"}},
		{name: "other audience", over: map[string]any{"aud": "https://other.test"}, wantRule: "other-aud", wantSub: "b:acme/api"},
		{name: "both audiences: config order", over: map[string]any{"aud": []string{"https://other.test", keywardAud}}, wantRule: "prod", wantSub: "github:acme/api:env:prod"},
		{name: "other audience, claims mismatch", over: map[string]any{"aud": "https://other.test", "repository": "acme/web"}},
		{name: "subject claim missing: no fall-through", over: map[string]any{"repository": "acme/sha-only"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := ci.MintJWT(ghClaims(tt.over))
			m, err := tr.Verify(t.Context(), raw)
			if tt.wantRule == "" {
				if !errors.Is(err, ErrNoRuleMatched) {
					t.Fatalf("Verify() = %+v, %v; want ErrNoRuleMatched", m.Rule, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify() = %v", err)
			}
			if m.Rule.Name != tt.wantRule || m.Subject != tt.wantSub {
				t.Errorf("Verify() = rule %q subject %q, want %q %q", m.Rule.Name, m.Subject, tt.wantRule, tt.wantSub)
			}
		})
	}
	if h := ci.hits(); h != [2]int64{1, 1} {
		t.Errorf("discovery, keys hits = %v, want [1 1]", h)
	}
}

func TestTrustVerifyMatch(t *testing.T) {
	clk := newClock()
	ci := newCI(t, "ES256", clk)
	r := rule("gh", ci.URL(), map[string]string{"repository": "acme/api"}, "github:{repository}")
	r.SingleUse = true
	tr := newTestTrust(t, clk, r)

	m, err := tr.Verify(t.Context(), ci.MintJWT(ghClaims(map[string]any{"jti": "abc", "run_number": 7})))
	if err != nil {
		t.Fatalf("Verify() = %v", err)
	}
	want := TrustMatch{
		Subject:  "github:acme/api",
		Expiry:   testNow.Add(5 * time.Minute),
		IssuedAt: testNow,
		JTI:      "abc",
		Issuer:   ci.URL(),
	}
	if m.Rule == nil || m.Rule.Name != "gh" || m.Rule.MaxTTL != config.Duration(10*time.Minute) {
		t.Errorf("Verify().Rule = %+v, want gh with defaults", m.Rule)
	}
	if m.Claims["run_number"] != json.Number("7") || m.Claims["repository"] != "acme/api" {
		t.Errorf("Verify().Claims = %v", m.Claims)
	}
	m.Rule, m.Claims = nil, nil
	if diff := cmp.Diff(want, m); diff != "" {
		t.Errorf("Verify() (-want +got):\n%s", diff)
	}

	// Single use needs a jti to hand to the replay check.
	_, err = tr.Verify(t.Context(), ci.MintJWT(ghClaims(map[string]any{"jti": nil})))
	if !errors.Is(err, ErrNoRuleMatched) {
		t.Errorf("Verify(no jti) = %v, want ErrNoRuleMatched", err)
	}
}

// TestTrustUntrustedIssuer: a validly signed token from an issuer no rule
// names is refused without a single request to it (or to the trusted one).
func TestTrustUntrustedIssuer(t *testing.T) {
	clk := newClock()
	trusted := newCI(t, "RS256", clk)
	evil := newCI(t, "RS256", clk) // same fixture keys: signs "validly"
	tr := newTestTrust(t, clk, rule("gh", trusted.URL(), nil, "github:{repository}"))

	for _, raw := range []string{
		evil.MintJWT(ghClaims(nil)),
		evil.MintJWT(ghClaims(map[string]any{"iss": evil.URL() + "/"})),
		evil.MintJWT(ghClaims(map[string]any{"iss": nil})),
		evil.MintJWT(ghClaims(map[string]any{"iss": strings.ToUpper(trusted.URL())})),
	} {
		if _, err := tr.Verify(t.Context(), raw); !errors.Is(err, ErrUntrustedIssuer) {
			t.Errorf("Verify(untrusted) = %v, want ErrUntrustedIssuer", err)
		}
	}
	for _, ci := range []*ciIssuer{evil, trusted} {
		if h := ci.hits(); h != [2]int64{0, 0} {
			t.Errorf("%s: discovery, keys hits = %v, want none", ci.URL(), h)
		}
	}
}

// TestTrustUnknownKid: an unknown kid refetches the key set at most once
// per MinRefreshInterval, however many tokens carry it.
func TestTrustUnknownKid(t *testing.T) {
	clk := newClock()
	ci := newCI(t, "RS256", clk)
	tr := newTestTrust(t, clk, rule("gh", ci.URL(), nil, "github:{repository}"))
	ctx := t.Context()
	if _, err := tr.Verify(ctx, ci.MintJWT(ghClaims(nil))); err != nil {
		t.Fatalf("Verify(valid) = %v", err)
	}
	if h := ci.hits(); h != [2]int64{1, 1} {
		t.Fatalf("after first token: discovery, keys hits = %v, want [1 1]", h)
	}

	unknown := ci.MintJWTWithKid(ghClaims(nil), "rotated-away")
	verifyUnknown := func() {
		t.Helper()
		if _, err := tr.Verify(ctx, unknown); !errors.Is(err, ErrInvalidIDToken) {
			t.Fatalf("Verify(unknown kid) = %v, want ErrInvalidIDToken", err)
		}
	}
	clk.Advance(31 * time.Second) // the first fetch no longer limits
	for range 5 {
		verifyUnknown()
	}
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := tr.Verify(ctx, unknown); !errors.Is(err, ErrInvalidIDToken) {
				t.Errorf("Verify(unknown kid) = %v, want ErrInvalidIDToken", err)
			}
		})
	}
	wg.Wait()
	if got := ci.Hits("keys"); got != 2 {
		t.Fatalf("keys hits after 25 unknown-kid tokens in one interval = %d, want 2", got)
	}
	// Known keys still verify without a fetch.
	if _, err := tr.Verify(ctx, ci.MintJWT(ghClaims(nil))); err != nil {
		t.Fatalf("Verify(valid) = %v", err)
	}

	clk.Advance(29 * time.Second)
	verifyUnknown()
	if got := ci.Hits("keys"); got != 2 {
		t.Fatalf("keys hits 29s later = %d, want 2", got)
	}
	clk.Advance(2 * time.Second)
	verifyUnknown()
	verifyUnknown()
	if got := ci.Hits("keys"); got != 3 {
		t.Fatalf("keys hits past the interval = %d, want 3", got)
	}

	// A rotation is picked up by the next fetch the limit allows.
	next := ci.MintJWTNextKey(ghClaims(nil))
	ci.RotateKey()
	if _, err := tr.Verify(ctx, next); !errors.Is(err, ErrInvalidIDToken) {
		t.Fatalf("Verify(rotated key, within interval) = %v, want ErrInvalidIDToken", err)
	}
	clk.Advance(31 * time.Second)
	if _, err := tr.Verify(ctx, next); err != nil {
		t.Fatalf("Verify(rotated key, after interval) = %v", err)
	}
	if got := ci.hits(); got != [2]int64{1, 4} {
		t.Fatalf("discovery, keys hits = %v, want [1 4]", got)
	}
}

// TestTrustIssuerOutage: cached keys keep working while the issuer is down,
// also past their max age; discovery failures back off.
func TestTrustIssuerOutage(t *testing.T) {
	clk := newClock()
	ci := newCI(t, "RS256", clk)
	tr := newTestTrust(t, clk, rule("gh", ci.URL(), nil, "github:{repository}"))
	ctx := t.Context()
	if _, err := tr.Verify(ctx, ci.MintJWT(ghClaims(nil))); err != nil {
		t.Fatalf("Verify(valid) = %v", err)
	}

	ci.down.Store(true)
	clk.Advance(time.Minute)
	if _, err := tr.Verify(ctx, ci.MintJWT(ghClaims(nil))); err != nil {
		t.Errorf("Verify(known kid, issuer down) = %v", err)
	}
	if _, err := tr.Verify(ctx, ci.MintJWTWithKid(ghClaims(nil), "new-kid")); !errors.Is(err, ErrIssuerUnavailable) {
		t.Errorf("Verify(unknown kid, issuer down) = %v, want ErrIssuerUnavailable", err)
	}
	clk.Advance(2 * time.Hour) // past keysMaxAge: a background refresh fails
	for range 3 {
		if _, err := tr.Verify(ctx, ci.MintJWT(ghClaims(nil))); err != nil {
			t.Errorf("Verify(known kid, stale keys, issuer down) = %v", err)
		}
	}

	// A cold issuer that is down: one discovery attempt, then backoff.
	cold := newCI(t, "RS256", clk)
	cold.down.Store(true)
	tr = newTestTrust(t, clk, rule("gh", cold.URL(), nil, "github:{repository}"))
	tok := func() string { return cold.MintJWT(ghClaims(nil)) }
	for range 3 {
		if _, err := tr.Verify(ctx, tok()); !errors.Is(err, ErrIssuerUnavailable) {
			t.Fatalf("Verify(issuer down) = %v, want ErrIssuerUnavailable", err)
		}
	}
	is := tr.issuers[cold.URL()]
	is.mu.Lock()
	failures, retryAt := is.failures, is.retryAt
	is.mu.Unlock()
	if failures != 1 || !retryAt.Equal(clk.Now().Add(time.Second)) {
		t.Errorf("after 3 tries: failures = %d, retry at %s; want 1, now+1s", failures, retryAt)
	}
	cold.down.Store(false)
	if _, err := tr.Verify(ctx, tok()); !errors.Is(err, ErrIssuerUnavailable) {
		t.Errorf("Verify(within backoff) = %v, want ErrIssuerUnavailable", err)
	}
	if h := cold.hits(); h != [2]int64{0, 0} {
		t.Errorf("hits within backoff = %v, want none", h)
	}
	clk.Advance(time.Second)
	if _, err := tr.Verify(ctx, tok()); err != nil {
		t.Errorf("Verify(after backoff) = %v", err)
	}
}

func TestTrustDiscoveryIssuerMismatch(t *testing.T) {
	clk := newClock()
	ci := newCI(t, "RS256", clk)
	ci.SetDiscoveryIssuer("https://evil.example.com")
	tr := newTestTrust(t, clk, rule("gh", ci.URL(), nil, "github:{repository}"))
	_, err := tr.Verify(t.Context(), ci.MintJWT(ghClaims(nil)))
	if !errors.Is(err, ErrIssuerUnavailable) {
		t.Fatalf("Verify() = %v, want ErrIssuerUnavailable", err)
	}
	if got := ci.Hits("keys"); got != 0 {
		t.Errorf("keys hits = %d, want 0", got)
	}
}

// TestTrustColdConcurrent: concurrent first tokens share one discovery and
// one key fetch.
func TestTrustColdConcurrent(t *testing.T) {
	clk := newClock()
	ci := newCI(t, "ES256", clk)
	ci.SetLatency(50 * time.Millisecond)
	tr := newTestTrust(t, clk, rule("gh", ci.URL(), nil, "github:{repository}"))
	raw := ci.MintJWT(ghClaims(nil))
	var wg sync.WaitGroup
	for range 25 {
		wg.Go(func() {
			if _, err := tr.Verify(t.Context(), raw); err != nil {
				t.Errorf("Verify() = %v", err)
			}
		})
	}
	wg.Wait()
	if h := ci.hits(); h != [2]int64{1, 1} {
		t.Errorf("discovery, keys hits = %v, want [1 1]", h)
	}
}

func TestTrustInvalidTokens(t *testing.T) {
	clk := newClock()
	ci := newCI(t, "RS256", clk)
	es := newCI(t, "ES256", clk)
	rs256Only := rule("es-rs-only", es.URL(), nil, "x:{repository}")
	rs256Only.Algorithms = []string{"RS256"}
	tr := newTestTrust(t, clk, rule("gh", ci.URL(), nil, "github:{repository}"), rs256Only)
	ctx := t.Context()
	if _, err := tr.Verify(ctx, ci.MintJWT(ghClaims(nil))); err != nil { // warm: discovery and keys
		t.Fatalf("Verify(valid) = %v", err)
	}
	now := testNow.Unix()
	tests := []struct {
		name    string
		raw     func() string
		wantErr error // nil: accepted
	}{
		{name: "expired", raw: func() string { return ci.MintJWT(ghClaims(map[string]any{"exp": now - 31})) }, wantErr: ErrInvalidIDToken},
		{name: "expired within leeway", raw: func() string { return ci.MintJWT(ghClaims(map[string]any{"exp": now - 29})) }},
		{name: "no exp", raw: func() string { return ci.MintJWT(ghClaims(map[string]any{"exp": nil})) }, wantErr: ErrInvalidIDToken},
		{name: "not yet valid", raw: func() string { return ci.MintJWT(ghClaims(map[string]any{"nbf": now + 31})) }, wantErr: ErrInvalidIDToken},
		{name: "nbf within leeway", raw: func() string { return ci.MintJWT(ghClaims(map[string]any{"nbf": now + 29})) }},
		{name: "issued in the future", raw: func() string { return ci.MintJWT(ghClaims(map[string]any{"iat": now + 120})) }, wantErr: ErrInvalidIDToken},
		{name: "no iat", raw: func() string { return ci.MintJWT(ghClaims(map[string]any{"iat": nil})) }},
		{name: "wrong audience", raw: func() string { return ci.MintJWT(ghClaims(map[string]any{"aud": "https://elsewhere.test"})) }, wantErr: ErrInvalidIDToken},
		{name: "no audience", raw: func() string { return ci.MintJWT(ghClaims(map[string]any{"aud": nil})) }, wantErr: ErrInvalidIDToken},
		{name: "tampered signature", raw: func() string { return flipSignature(ci.MintJWT(ghClaims(nil))) }, wantErr: ErrInvalidIDToken},
		{name: "tampered payload", raw: func() string {
			return swapPayload(ci.MintJWT(ghClaims(nil)), ghClaims(map[string]any{"iss": ci.URL(), "exp": now + 60, "repository": "evil/x"}))
		}, wantErr: ErrInvalidIDToken},
		{name: "signed by another key, same kid", raw: func() string { return withKid(ci.MintJWTNextKey(ghClaims(nil)), ci.KeyID()) }, wantErr: ErrInvalidIDToken},
		{name: "alg none", raw: func() string { return unsigned(ghClaims(map[string]any{"iss": ci.URL(), "exp": now + 60})) }, wantErr: ErrInvalidIDToken},
		{name: "HS256", raw: func() string { return hs256(ghClaims(map[string]any{"iss": ci.URL(), "exp": now + 60})) }, wantErr: ErrInvalidIDToken},
		{name: "alg not allowed by the rule", raw: func() string { return es.MintJWT(ghClaims(nil)) }, wantErr: ErrInvalidIDToken},
		{name: "garbage", raw: func() string { return "not.a.jwt" }, wantErr: ErrInvalidIDToken},
		{name: "empty", raw: func() string { return "" }, wantErr: ErrInvalidIDToken},
		{name: "too large", raw: func() string { return ci.MintJWT(ghClaims(map[string]any{"pad": strings.Repeat("x", 16<<10)})) }, wantErr: ErrInvalidIDToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := tt.raw()
			_, err := tr.Verify(ctx, raw)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Verify() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Verify() = %v, want %v", err, tt.wantErr)
			}
			if len(raw) > 20 && strings.Contains(err.Error(), raw[len(raw)-20:]) {
				t.Errorf("Verify() error %q contains the token", err)
			}
		})
	}
	if h := ci.hits(); h != [2]int64{1, 1} {
		t.Errorf("trusted issuer: discovery, keys hits = %v, want [1 1] (no refetch for forged tokens)", h)
	}
	if h := es.hits(); h != [2]int64{0, 0} {
		t.Errorf("ES256 issuer: discovery, keys hits = %v, want none", h)
	}
}

// TestTrustVerifierRejectsSymmetric: behind the precheck, the issuer's key
// set refuses none and HS256 on its own, and so does the signature check
// even for a key it is handed.
func TestTrustVerifierRejectsSymmetric(t *testing.T) {
	clk := newClock()
	ci := newCI(t, "RS256", clk)
	tr := newTestTrust(t, clk, rule("gh", ci.URL(), nil, "github:{repository}"))
	keys, err := tr.issuers[ci.URL()].ready(t.Context())
	if err != nil {
		t.Fatalf("ready() = %v", err)
	}
	if err := keys.ensure(t.Context(), ""); err != nil {
		t.Fatalf("ensure() = %v", err)
	}
	claims := ghClaims(map[string]any{"iss": ci.URL(), "exp": testNow.Unix() + 60})
	for _, raw := range []string{unsigned(claims), hs256(claims)} {
		tok, err := ParseSubjectToken(raw)
		if err != nil {
			t.Fatalf("ParseSubjectToken(%.20s…) = %v", raw, err)
		}
		if err := keys.verify(t.Context(), tok); err == nil {
			t.Errorf("keys.verify(%.20s…) = nil, want error", raw)
		}
		for _, k := range keys.cached(t.Context()) {
			if err := verifySignature(tok.alg, k.Key, tok.signingInput, tok.sig); err == nil {
				t.Errorf("verifySignature(%s) = nil, want error", tok.alg)
			}
			if err := verifySignature(tok.alg, []byte("guessable"), tok.signingInput, tok.sig); err == nil {
				t.Errorf("verifySignature(%s, secret) = nil, want error", tok.alg)
			}
		}
		if _, err := keys.VerifySignature(t.Context(), raw); err == nil {
			t.Errorf("keys.VerifySignature(%.20s…) = nil, want error", raw)
		}
	}
}

// TestTrustCancelledWaiter: a caller giving up does not cancel the shared
// discovery.
func TestTrustCancelledWaiter(t *testing.T) {
	clk := newClock()
	ci := newCI(t, "RS256", clk)
	ci.SetLatency(100 * time.Millisecond)
	tr := newTestTrust(t, clk, rule("gh", ci.URL(), nil, "github:{repository}"))
	raw := ci.MintJWT(ghClaims(nil))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	if _, err := tr.Verify(ctx, raw); !errors.Is(err, ErrIssuerUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Verify(short deadline) = %v, want ErrIssuerUnavailable and DeadlineExceeded", err)
	}
	if _, err := tr.Verify(t.Context(), raw); err != nil {
		t.Fatalf("Verify() = %v", err)
	}
	if h := ci.hits(); h != [2]int64{1, 1} {
		t.Errorf("discovery, keys hits = %v, want [1 1]", h)
	}
}

func flipSignature(raw string) string {
	i := strings.LastIndexByte(raw, '.')
	sig, _ := base64.RawURLEncoding.DecodeString(raw[i+1:])
	sig[len(sig)/2] ^= 0x01
	return raw[:i+1] + base64.RawURLEncoding.EncodeToString(sig)
}

func swapPayload(raw string, claims map[string]any) string {
	parts := strings.Split(raw, ".")
	b, _ := json.Marshal(claims)
	parts[1] = base64.RawURLEncoding.EncodeToString(b)
	return strings.Join(parts, ".")
}

// withKid rewrites the header kid; the signature no longer covers it, but
// that is the point: the key under kid must not verify.
func withKid(raw, kid string) string {
	parts := strings.Split(raw, ".")
	h, _ := base64.RawURLEncoding.DecodeString(parts[0])
	var hdr map[string]any
	_ = json.Unmarshal(h, &hdr)
	hdr["kid"] = kid
	h, _ = json.Marshal(hdr)
	parts[0] = base64.RawURLEncoding.EncodeToString(h)
	return strings.Join(parts, ".")
}

func unsigned(claims map[string]any) string {
	s, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims(claims)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		panic(err)
	}
	return s
}

func hs256(claims map[string]any) string {
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(claims))
	tok.Header["kid"] = "fakeidp-rs256-0"
	s, err := tok.SignedString([]byte("guessable"))
	if err != nil {
		panic(err)
	}
	return s
}
