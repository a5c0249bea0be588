package verify

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"unicode"
)

// Security review of the ambiguous-path fix (issue 11, High). Each test
// sends, over real HTTP, the check request nginx's auth_request makes for a
// client's request path, with a strict rule in front of an anonymous one.
// Each path reaches the anonymous rule although a backend of the kind the
// rule options name would serve the strict route.

func reviewCheck(t *testing.T, rules Rules, uri string) *http.Response {
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

// caseInsensitive folds with strings.ToLower, which is no case fold: Java's
// equalsIgnoreCase (and toUpperCase-based routers) equate "ı" (U+0131)
// with "i" and "ſ" (U+017F) with "s", so a case-insensitive backend serves
// /admin for /admın, while the verifier lets it fall to the next rule.
func TestReviewCaseInsensitiveUnicodeFold(t *testing.T) {
	rules := Rules{
		{Path: "/admin", CaseInsensitive: true, Groups: Set{AnyOf: []string{"admins"}}},
		{Path: "/settings", CaseInsensitive: true, Groups: Set{AnyOf: []string{"admins"}}},
		{Path: "/", Allow: AllowAnonymous},
	}
	for _, uri := range []string{"/ADMIN/x", "/adm%C4%B1n/x", "/%C5%BFettings"} {
		t.Run(uri, func(t *testing.T) {
			if resp := reviewCheck(t, rules, uri); resp.StatusCode == http.StatusOK {
				t.Errorf("check of %q = 200 (anonymous rule), want 401/403: a case-insensitive backend routes it to the admins-only rule's path", uri)
			}
		})
	}
}

// With allowEncodedSlash on a broad rule, "%2F" next to a real "/" makes an
// empty segment the raw-path check never sees: /repos/%2Fadmin is one rule
// with %2F as data and the same rule with %2F as "/" ("/repos//admin"), so
// it passes; a backend that decodes %2F and merges slashes (Spring's
// UrlPathHelper, many path cleaners) serves /repos/admin.
func TestReviewEncodedSlashEmptySegment(t *testing.T) {
	rules := Rules{
		{Path: "/repos/admin", Groups: Set{AnyOf: []string{"admins"}}},
		{Path: "/repos", AllowEncodedSlash: true, Allow: AllowAnonymous},
	}
	for _, uri := range []string{"/repos/%2Fadmin", "/repos/%2F%2Fadmin/x"} {
		t.Run(uri, func(t *testing.T) {
			if resp := reviewCheck(t, rules, uri); resp.StatusCode == http.StatusOK {
				t.Errorf("check of %q = 200 (anonymous /repos rule), want 403: decoded, it is /repos//admin", uri)
			}
		})
	}
}

// parsePath refuses "%25" followed by two hex digits as double encoding, but
// not "%25" followed by encoded hex digits: /public/%25%32%65%25%32%65/admin
// decodes once to /public/%2e%2e/admin (judged by /public) and twice to
// /public/../admin.
func TestReviewDoubleEncodingViaEncodedHex(t *testing.T) {
	rules := Rules{
		{Path: "/admin", Groups: Set{AnyOf: []string{"admins"}}},
		{Path: "/public", Allow: AllowAnonymous},
	}
	for _, uri := range []string{"/public/%25%32%65%25%32%65/admin", "/public/x%25%32%46..%25%32%46..%25%32%46admin"} {
		t.Run(uri, func(t *testing.T) {
			if resp := reviewCheck(t, rules, uri); resp.StatusCode == http.StatusOK {
				t.Errorf("check of %q = 200 (anonymous /public rule), want 403 invalid_request (double encoding)", uri)
			}
		})
	}
}

// parsePath refuses a raw '#' but keeps a decoded '#' or '?' in the path:
// /admin%3F/x and /admin%23x are judged as "/admin?/x" and "/admin#x",
// which the /admin rule does not match, while an intermediary that decodes
// the path once and parses it again (a rewrite, a proxy_pass with a URI
// part, a decoding router) serves /admin with a query or a fragment.
func TestReviewEncodedDelimiters(t *testing.T) {
	rules := Rules{
		{Path: "/admin", Groups: Set{AnyOf: []string{"admins"}}},
		{Path: "/", Allow: AllowAnonymous},
	}
	for _, uri := range []string{"/admin%3F/x", "/admin%23x"} {
		t.Run(uri, func(t *testing.T) {
			if resp := reviewCheck(t, rules, uri); resp.StatusCode == http.StatusOK {
				t.Errorf("check of %q = 200 (anonymous rule), want 403 invalid_request (an encoded query or fragment delimiter)", uri)
			}
		})
	}
}

// escapeGroup percent-encodes a space at either end of a group name
// ("apps often trim after splitting") but not other white space: a group
// named "\u00a0admins" (NO-BREAK SPACE, which Python's str.strip, Java's
// String.strip and .NET's Trim remove) reaches the app as the bytes
// C2 A0 then "admins", and an app that splits, decodes and trims as
// docs/gateways/nginx.md describes reads "admins". Upstreams where people
// may name groups (Entra ID lets every user create Microsoft 365 groups by
// default) make that a privilege escalation in the app.
func TestReviewGroupNameUnicodeSpace(t *testing.T) {
	e := newEnv(t)
	v := newVerifier(t, e.ks, e.clock, nil)
	srv := httptest.NewServer(NewHandler(v, Rules{{Path: "/"}}, HandlerOptions{}))
	t.Cleanup(srv.Close)
	token := mint(t, e.rsa, nil, with(e.claims, "groups", []string{"staff", "\u00a0admins", "admins\u3000"}))
	resp := rawRequest(t, srv.Listener.Addr().String(), "GET /oauth2/auth HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Original-URI: /x"+
		"\r\nX-Original-Method: GET\r\nX-Forwarded-Host: api.example.com\r\nAuthorization: Bearer "+token+"\r\nConnection: close\r\n\r\n")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("check = %d, want 200", resp.StatusCode)
	}
	got := resp.Header.Get("X-Auth-Request-Groups")
	for g := range strings.SplitSeq(got, ",") {
		if name, err := url.PathUnescape(g); err == nil && strings.TrimSpace(name) != name && strings.TrimFunc(name, unicode.IsSpace) == "admins" {
			t.Errorf("X-Auth-Request-Groups = %q: the name %q trims (Unicode white space) to admins; escape every white space at either end, not only ' '", got, name)
		}
	}
}

// A segment with a trailing dot is not refused: /admin./x is judged by the
// anonymous rule, while Windows path normalisation (IIS, which the
// caseInsensitive doc names) drops trailing dots from a segment and serves
// /admin/x; Spring MVC before 5.3 (suffix pattern matching on by default)
// serves an @RequestMapping("/admin") handler for /admin.json.
func TestReviewTrailingDotSegment(t *testing.T) {
	rules := Rules{
		{Path: "/admin", CaseInsensitive: true, Groups: Set{AnyOf: []string{"admins"}}},
		{Path: "/", Allow: AllowAnonymous},
	}
	for _, uri := range []string{"/admin./x", "/ADMIN./x"} {
		t.Run(uri, func(t *testing.T) {
			if resp := reviewCheck(t, rules, uri); resp.StatusCode == http.StatusOK {
				t.Errorf("check of %q = 200 (anonymous rule), want 403: a trailing dot is dropped by Windows path normalisation", uri)
			}
		})
	}
}
