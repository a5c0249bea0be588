package verify

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"
)

// AllowAnonymous is the Rule.Allow value that lets requests through without
// a token.
const AllowAnonymous = "anonymous"

// Rule is one entry of verify.yaml's rules. A request matches when its host,
// path and method do; the first matching rule decides, and a request that
// matches none is denied.
type Rule struct {
	// Host is compared case-insensitively, without the port. Empty: any host.
	Host string `yaml:"host"`
	// Path is a prefix on segment boundaries: "/orders" and "/orders/" both
	// match "/orders" and "/orders/1" but never "/ordersx". It is compared
	// with the percent-decoded request path, case-sensitively unless
	// CaseInsensitive. A request path that a backend could resolve to
	// another route is refused before any rule is tried (see Rules.Match),
	// never cleaned. Empty or "/": any path.
	Path string `yaml:"path"`
	// CaseInsensitive compares Path with the request path case-folded
	// ("/admin" then matches "/ADMIN/x"). Set it on every rule whose
	// backend or gateway routes case-insensitively (Caddy's path matchers,
	// ASP.NET, IIS, some Spring setups): without it, a path that matches
	// this rule only case-folded is refused (see Rules.Match) rather than
	// judged by this rule.
	CaseInsensitive bool `yaml:"caseInsensitive"`
	// AllowEncodedSlash lets requests whose path holds an encoded slash
	// (%2F) match this rule, for APIs that carry one inside a segment
	// (/repos/a%2Fb). Risk: a backend that decodes %2F before routing sees
	// more segments than the rules do. Such a request is allowed only when
	// this rule is the first match both with %2F read as data and with %2F
	// read as "/", so the backend's choice cannot change the rule; it is
	// refused otherwise, and always on rules without this.
	AllowEncodedSlash bool `yaml:"allowEncodedSlash"`
	// Methods to match, case-insensitively. Empty: any method.
	Methods []string `yaml:"methods"`
	// Allow is "anonymous" to pass requests without checking any token, or
	// empty to require a valid one.
	Allow string `yaml:"allow"`
	// Audience, when set, must be in the token's aud (on top of the
	// Verifier's audiences). A token for another audience is invalid_token
	// (401), as RFC 9068 §4 requires.
	Audience string `yaml:"audience"`
	// Scopes the token's scope claim must hold (403 insufficient_scope).
	Scopes Set `yaml:"scopes"`
	// Groups the subject must be in (403 insufficient_scope).
	Groups Set `yaml:"groups"`
	// Claims: each named claim must equal one of the listed values; an array
	// claim matches when any element does (403 insufficient_scope).
	Claims map[string][]string `yaml:"claims"`
	// Browser lets a browser session (see Browser) stand in for the bearer
	// token: without either, the handler starts a sign-in. A bearer token,
	// when sent, is still checked first. Without a Browser configured, a
	// browser rule behaves like any token rule: no token is 401.
	Browser bool `yaml:"browser"`
}

// Set is a requirement on a list claim. Both parts, when not empty, must hold.
type Set struct {
	AnyOf []string `yaml:"anyOf"` // at least one of these
	AllOf []string `yaml:"allOf"` // every one of these
}

func (s Set) empty() bool { return len(s.AnyOf) == 0 && len(s.AllOf) == 0 }

func (s Set) satisfiedBy(have []string) bool {
	for _, want := range s.AllOf {
		if !contains(have, want) {
			return false
		}
	}
	if len(s.AnyOf) == 0 {
		return true
	}
	for _, want := range s.AnyOf {
		if contains(have, want) {
			return true
		}
	}
	return false
}

// Rules is an ordered rule list: the first match wins, no match denies.
type Rules []Rule

// Validate reports every problem in rs at once, each a *FieldError at its
// verify.yaml path (rules, rules[2]). It does no I/O.
func (rs Rules) Validate() error {
	var p problems
	if len(rs) == 0 {
		p.add("rules", "at least one rule is required; add one, e.g. {path: /, audience: my-api}; a request no rule matches is denied")
	}
	for i := range rs {
		for _, err := range rs[i].problems() {
			p.add(fmt.Sprintf("rules[%d]", i), "%s", err)
		}
	}
	return p.err()
}

func (r *Rule) problems() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if r.Host != "" && (strings.ContainsAny(r.Host, "/@ \t") || stripPort(r.Host) != r.Host) {
		bad("host %q: want a bare host name without scheme, port or path", r.Host)
	}
	if r.Path != "" && (r.Path[0] != '/' || cleanPath(r.Path) != r.Path || strings.ContainsFunc(r.Path, refusedInRulePath)) {
		bad("path %q: want a clean absolute path, written decoded, without %%, ;, \\, ?, # or control characters", r.Path)
	}
	for _, m := range r.Methods {
		if m == "" || strings.ContainsFunc(m, func(c rune) bool { return (c < 'A' || c > 'Z') && (c < 'a' || c > 'z') }) {
			bad("methods: %q is not a method", m)
		}
	}
	switch r.Allow {
	case "":
	case AllowAnonymous:
		if r.Audience != "" || !r.Scopes.empty() || !r.Groups.empty() || len(r.Claims) > 0 || r.Browser {
			bad("an anonymous rule cannot also require audience, scopes, groups, claims or browser")
		}
	default:
		bad("allow %q: want %q or nothing", r.Allow, AllowAnonymous)
	}
	for _, s := range append(append([]string{}, r.Scopes.AnyOf...), r.Scopes.AllOf...) {
		if s == "" || strings.ContainsAny(s, " \t") {
			bad("scopes: %q is not a scope", s)
		}
	}
	for _, g := range append(append([]string{}, r.Groups.AnyOf...), r.Groups.AllOf...) {
		if g == "" {
			bad("groups: empty group")
		}
	}
	for name, values := range r.Claims {
		if name == "" || len(values) == 0 {
			bad("claims: %q needs a name and at least one value", name)
		}
	}
	return errs
}

// Match returns the first rule matching the request. host may carry a port;
// uri may carry a query and percent-encoding. It returns an *Error (403)
// when no rule matches, and one whose cause is ErrAmbiguousPath when the
// path is refused before any rule is tried (see parsePath) or when another
// reading of it would pick another rule: with %2F read as "/" (see
// Rule.AllowEncodedSlash), or case-folded (Caddy's handle, handle_path and
// path matchers, ASP.NET and IIS route case-insensitively, so every rule is
// also tried with path and rule case-folded, once with strings.ToLower and
// once upper-cased then lower-cased as Java's equalsIgnoreCase does, which
// folds "ı" and "ſ" to "i" and "s"; the request is refused unless each
// reading picks the same rule). The rules judge the path as the backend
// will route it, or not at all.
func (rs Rules) Match(host, uri, method string) (*Rule, error) {
	p, encodedSlash, err := parsePath(uri)
	if err != nil {
		return nil, err
	}
	host = stripPort(host)
	r := rs.first(host, p, method, nil)
	var slashed string
	if encodedSlash {
		slashed = strings.ReplaceAll(p, "%2F", "/")
		switch {
		case r == nil || !r.AllowEncodedSlash:
			return nil, errPathEncodedSlash
		case rs.first(host, slashed, method, nil) != r:
			return nil, errPathSlashRule
		}
	}
	if !foldInvariant(p) || !rs.pathsFoldInvariant() { // else every reading is p's
		for _, fold := range caseFolds {
			if rs.first(host, p, method, fold) != r || (encodedSlash && rs.first(host, slashed, method, fold) != r) {
				return nil, errPathCase
			}
		}
	}
	if r == nil {
		return nil, errNoRule
	}
	return r, nil
}

// caseFolds are the case-insensitive readings Match tries every path in:
// Go's (and so Caddy's) strings.ToLower, and upper- then lower-casing
// rune by rune, as Java's equalsIgnoreCase and .NET's OrdinalIgnoreCase
// compare.
var caseFolds = []func(string) string{strings.ToLower, upperLower}

// foldInvariant reports whether every case fold leaves s as it is: ASCII
// without upper-case letters.
func foldInvariant(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf || ('A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

func (rs Rules) pathsFoldInvariant() bool {
	for i := range rs {
		if !foldInvariant(rs[i].Path) {
			return false
		}
	}
	return true
}

// upperLower upper-cases then lower-cases s rune by rune ("ſ" → "S" → "s").
// It returns s itself when s is ASCII without upper-case letters.
func upperLower(s string) string {
	if foldInvariant(s) {
		return s
	}
	return strings.Map(func(r rune) rune { return unicode.ToLower(unicode.ToUpper(r)) }, s)
}

// first returns the first rule matching the parsed path p, or nil. With
// fold nil, a rule's Path is compared as written, or case-folded with
// strings.ToLower when it is CaseInsensitive; otherwise every rule's Path
// and p are compared after fold.
func (rs Rules) first(host, p, method string, fold func(string) string) *Rule {
	folded := "" // p case-folded, once a rule needs it
	for i := range rs {
		r := &rs[i]
		if r.Host != "" && !strings.EqualFold(r.Host, host) {
			continue
		}
		switch f := fold; {
		case f == nil && !r.CaseInsensitive:
			if !pathMatches(r.Path, p) {
				continue
			}
		default:
			if f == nil {
				f = strings.ToLower
			}
			if folded == "" {
				folded = f(p)
			}
			if !pathMatches(f(r.Path), folded) {
				continue
			}
		}
		if len(r.Methods) > 0 && !methodIn(r.Methods, method) {
			continue
		}
		return r
	}
	return nil
}

// restrictMethods reports whether a rule has methods, so that the method a
// backend runs can change the rule.
func (rs Rules) restrictMethods() bool {
	for i := range rs {
		if len(rs[i].Methods) > 0 {
			return true
		}
	}
	return false
}

// methodOverrideHeaders are the request headers with which frameworks let a
// client run another method than the request line's (ASP.NET, Spring's
// HiddenHttpMethodFilter variants, Express's method-override, Symfony).
var methodOverrideHeaders = []string{"X-Http-Method-Override", "X-Http-Method", "X-Method-Override"}

// errMethodOverride refuses a request that names another method for the
// backend than the one the rules judge.
var errMethodOverride = &Error{Status: http.StatusForbidden, Code: CodeInvalidRequest,
	Description: "request overrides its method (X-HTTP-Method-Override, X-HTTP-Method, X-Method-Override or _method in the query) and the rules depend on the method"}

// methodOverridden reports whether the original request carries a method
// override: one of methodOverrideHeaders, or a _method query parameter
// (Spring's HiddenHttpMethodFilter, Rails, Laravel; they also read it from
// a form body, which the verifier never sees).
func methodOverridden(h http.Header, uri string) bool {
	for _, name := range methodOverrideHeaders {
		if _, ok := h[name]; ok {
			return true
		}
	}
	_, q, ok := strings.Cut(uri, "?")
	if !ok || (!strings.Contains(q, "method") && !strings.Contains(q, "%")) {
		return false
	}
	vals, _ := url.ParseQuery(q) // what it could parse
	_, ok = vals["_method"]
	return ok
}

func methodIn(methods []string, m string) bool {
	for _, x := range methods {
		if strings.EqualFold(x, m) {
			return true
		}
	}
	return false
}

func pathMatches(prefix, p string) bool {
	prefix = strings.TrimSuffix(prefix, "/")
	if prefix == "" {
		return true
	}
	return strings.HasPrefix(p, prefix) && (len(p) == len(prefix) || p[len(prefix)] == '/')
}

// ErrAmbiguousPath is the cause (errors.Is) of every refusal of a request
// path that the verifier cannot map to one route unambiguously: the rules
// would judge one path while a backend may serve another.
var ErrAmbiguousPath = errors.New("verify: request path is ambiguous")

// Refused request paths: 403 invalid_request, before any rule is tried.
var (
	errPathMissing      = refusedPath("request path missing or not absolute")
	errPathEscape       = refusedPath("request path has invalid percent-encoding")
	errPathDoubleEscape = refusedPath("request path has double percent-encoding (an encoded percent sign, %25)")
	errPathDelimiter    = refusedPath("request path has an encoded query or fragment delimiter (%3F or %23)")
	errPathDotSegment   = refusedPath("request path has a dot segment (. or ..)")
	errPathTrailingDot  = refusedPath("request path has a segment ending in a dot, which Windows path normalisation drops")
	errPathEmptySegment = refusedPath("request path has an empty segment (//)")
	errPathBackslash    = refusedPath("request path has a backslash")
	errPathSemicolon    = refusedPath("request path has a semicolon")
	errPathControl      = refusedPath("request path has a control character or space")
	errPathFragment     = refusedPath("request path has a fragment (#)")
	errPathEncodedSlash = refusedPath("request path has an encoded slash (%2F) and the matching rule does not set allowEncodedSlash")
	errPathSlashRule    = refusedPath("request path has an encoded slash (%2F) that changes which rule matches")
	errPathCase         = refusedPath("request path matches another rule when compared case-insensitively, as Caddy, ASP.NET and IIS route")
)

// parsePath turns a request URI into the path rules are matched against:
// the query dropped, percent-encoding decoded except %2F, which stays as
// "%2F" (encodedSlash reports it). It never cleans: a path that a backend
// could resolve differently is an error, namely dot segments ("." or "..",
// raw or encoded), segments ending in a dot ("admin.", which Windows path
// normalisation reads as "admin"), empty segments ("//"), a backslash or
// semicolon (raw or encoded: Windows, Tomcat and Spring treat them as
// separators), control characters and spaces (raw or encoded), invalid
// percent-encoding, an encoded '%' ("%25": a second decoding would read
// what follows as another escape, even when that is itself encoded, as in
// "%25%32%65"), an encoded '?' or '#' (an intermediary that decodes and
// parses the path again would cut the path there) and a fragment. The
// segment checks run on both readings of an encoded slash, as data and as
// "/" ("a%2F..%2Fb", "/repos/%2Fadmin"). It allocates only when the path
// holds a '%'.
func parsePath(uri string) (p string, encodedSlash bool, err error) {
	if i := strings.IndexByte(uri, '?'); i >= 0 {
		uri = uri[:i]
	}
	if uri == "" || uri[0] != '/' {
		return "", false, errPathMissing
	}
	var buf []byte // the decoded path, once a '%' needs decoding
	for i := 0; i < len(uri); i++ {
		c := uri[i]
		switch {
		case c == '%':
			if buf == nil {
				buf = append(make([]byte, 0, len(uri)), uri[:i]...)
			}
			if i+2 >= len(uri) || !isHex(uri[i+1]) || !isHex(uri[i+2]) {
				return "", false, errPathEscape
			}
			d := unhex(uri[i+1])<<4 | unhex(uri[i+2])
			i += 2
			switch d {
			case '/':
				encodedSlash = true
				buf = append(buf, "%2F"...)
				continue
			case '%':
				return "", false, errPathDoubleEscape
			case '?', '#':
				return "", false, errPathDelimiter
			}
			if err := refusedByte(d); err != nil {
				return "", false, err
			}
			buf = append(buf, d)
		default:
			if err := refusedByte(c); err != nil {
				return "", false, err
			}
			if c == '#' {
				return "", false, errPathFragment
			}
			if buf != nil {
				buf = append(buf, c)
			}
		}
	}
	p = uri
	if buf != nil {
		p = string(buf)
	}
	if err := checkSegments(p); err != nil {
		return "", false, err
	}
	if encodedSlash {
		if err := checkSegments(strings.ReplaceAll(p, "%2F", "/")); err != nil {
			return "", false, err
		}
	}
	return p, encodedSlash, nil
}

// checkSegments refuses empty segments, dot segments and segments ending in
// a dot in p, where p[0] is '/' and an empty last segment is a trailing
// slash.
func checkSegments(p string) error {
	for rest := p[1:]; ; {
		seg, more, found := strings.Cut(rest, "/")
		switch {
		case seg == "" && found:
			return errPathEmptySegment
		case isDotSegment(seg):
			return errPathDotSegment
		case strings.HasSuffix(seg, "."):
			return errPathTrailingDot
		}
		if !found {
			return nil
		}
		rest = more
	}
}

// refusedByte is the error for a path byte (raw or decoded) that makes the
// path ambiguous, or nil.
func refusedByte(c byte) error {
	switch {
	case c == '\\':
		return errPathBackslash
	case c == ';':
		return errPathSemicolon
	case c <= ' ' || c == 0x7f:
		return errPathControl
	}
	return nil
}

func isDotSegment(s string) bool { return s == "." || s == ".." }

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	default:
		return c - 'a' + 10
	}
}

// refusedInRulePath reports the characters a rule's path may not hold: it
// is compared with decoded request paths, which never hold them.
func refusedInRulePath(c rune) bool {
	return c == '%' || c == ';' || c == '\\' || c == '?' || c == '#' || c < ' ' || c == 0x7f
}

// cleanPath is path.Clean keeping a trailing slash.
func cleanPath(p string) string {
	c := path.Clean(p)
	if c != "/" && strings.HasSuffix(p, "/") {
		if len(c)+1 == len(p) && p[:len(c)] == c {
			return p
		}
		return c + "/"
	}
	return c
}

// stripPort removes a :port from host ("[::1]:80" → "[::1]").
func stripPort(host string) string {
	if strings.HasPrefix(host, "[") {
		if i := strings.IndexByte(host, ']'); i >= 0 {
			return host[:i+1]
		}
		return host
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 && strings.IndexByte(host, ':') == i {
		return host[:i]
	}
	return host
}

var (
	errScope = insufficientScope("token lacks a required scope")
	errGroup = insufficientScope("subject lacks a required group")
	errClaim = insufficientScope("token lacks a required claim value")
)

// Authorize checks c against r: nil when allowed. An anonymous rule allows
// anything, c may then be nil. Otherwise a nil c is 401, an audience outside
// the token's aud 401 invalid_token, and missing scopes, groups or claim
// values 403 insufficient_scope.
func (r *Rule) Authorize(c *Claims) error {
	if r.Allow == AllowAnonymous {
		return nil
	}
	if c == nil {
		return errNoToken
	}
	if r.Audience != "" && !contains(c.Audience, r.Audience) {
		return errAudience
	}
	if !r.Scopes.satisfiedBy(c.Scopes) {
		return errScope
	}
	if !r.Groups.satisfiedBy(c.Groups) {
		return errGroup
	}
	for name, want := range r.Claims {
		if !claimEquals(c.Raw, name, want) {
			return errClaim
		}
	}
	return nil
}
