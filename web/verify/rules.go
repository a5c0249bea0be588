package verify

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"strings"
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
	// match "/orders" and "/orders/1" but never "/ordersx". Requests are
	// percent-decoded and cleaned first, so "/public/../admin" is "/admin".
	// Empty or "/": any path.
	Path string `yaml:"path"`
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

// Validate reports every problem in rs at once. It does no I/O.
func (rs Rules) Validate() error {
	if len(rs) == 0 {
		return errors.New("rules: at least one rule is required (no match denies)")
	}
	var errs []error
	for i := range rs {
		for _, err := range rs[i].problems() {
			errs = append(errs, fmt.Errorf("rules[%d]: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

func (r *Rule) problems() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if r.Host != "" && (strings.ContainsAny(r.Host, "/@ \t") || stripPort(r.Host) != r.Host) {
		bad("host %q: want a bare host name without scheme, port or path", r.Host)
	}
	if r.Path != "" && (r.Path[0] != '/' || cleanPath(r.Path) != r.Path) {
		bad("path %q: want a clean absolute path", r.Path)
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

// Match returns the first rule matching the request, or false (deny). host
// may carry a port; path may carry a query and percent-encoding.
func (rs Rules) Match(host, reqPath, method string) (*Rule, bool) {
	host = stripPort(host)
	reqPath, ok := requestPath(reqPath)
	if !ok {
		return nil, false
	}
	for i := range rs {
		r := &rs[i]
		if r.Host != "" && !strings.EqualFold(r.Host, host) {
			continue
		}
		if !pathMatches(r.Path, reqPath) {
			continue
		}
		if len(r.Methods) > 0 && !methodIn(r.Methods, method) {
			continue
		}
		return r, true
	}
	return nil, false
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

// requestPath turns a request URI into the cleaned, decoded path rules are
// matched against. It allocates only when the path needs decoding or cleaning.
func requestPath(uri string) (string, bool) {
	if i := strings.IndexAny(uri, "?#"); i >= 0 {
		uri = uri[:i]
	}
	if strings.IndexByte(uri, '%') >= 0 {
		p, err := url.PathUnescape(uri)
		if err != nil {
			return "", false
		}
		uri = p
	}
	if uri == "" || uri[0] != '/' {
		return "", false
	}
	return cleanPath(uri), true
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
