package verify

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"unicode"
)

// TestGroupsHeaderEscapesUnicodeSpaceAtEnds: a group named "\u00a0admins"
// (NO-BREAK SPACE) or "admins\u3000" (IDEOGRAPHIC SPACE) must not reach an
// app as raw white space, which Python's str.strip, Java's String.strip and
// .NET's Trim remove: an app that splits and trims before it decodes would
// read "admins". Upstreams where people may name groups (Entra ID lets
// every user create Microsoft 365 groups by default) would make that a
// privilege escalation. An app that follows docs/gateways/nginx.md (split
// on ',', percent-decode, never trim) still gets every name exactly.
func TestGroupsHeaderEscapesUnicodeSpaceAtEnds(t *testing.T) {
	e := newEnv(t)
	v := newVerifier(t, e.ks, e.clock, nil)
	srv := httptest.NewServer(NewHandler(v, Rules{{Path: "/"}}, HandlerOptions{}))
	t.Cleanup(srv.Close)
	groups := []string{"staff", "\u00a0admins", "admins\u3000", "\u2003\tadmins\u0085", "Domain\u00a0Users"}
	token := mint(t, e.rsa, nil, with(e.claims, "groups", groups))
	resp := rawRequest(t, srv.Listener.Addr().String(), "GET /oauth2/auth HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Original-URI: /x"+
		"\r\nX-Original-Method: GET\r\nX-Forwarded-Host: api.example.com\r\nAuthorization: Bearer "+token+"\r\nConnection: close\r\n\r\n")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("check = %d, want 200", resp.StatusCode)
	}
	got := resp.Header.Get("X-Auth-Request-Groups")
	if want := "staff,%C2%A0admins,admins%E3%80%80,%E2%80%83%09admins%C2%85,Domain\u00a0Users"; got != want {
		t.Errorf("X-Auth-Request-Groups = %q, want %q", got, want)
	}
	var decoded []string
	for g := range strings.SplitSeq(got, ",") {
		if trimmed := strings.TrimFunc(g, unicode.IsSpace); trimmed == "admins" {
			t.Errorf("X-Auth-Request-Groups = %q: %q trims (Unicode white space) to admins before decoding", got, g)
		}
		name, err := url.PathUnescape(g)
		if err != nil {
			t.Fatalf("PathUnescape(%q) = %v", g, err)
		}
		decoded = append(decoded, name)
	}
	if strings.Join(decoded, "\n") != strings.Join(groups, "\n") {
		t.Errorf("split and decoded = %q, want %q", decoded, groups)
	}
}
