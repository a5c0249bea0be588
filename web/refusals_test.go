package web

import (
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"strings"
	"testing"

	"github.com/keyward/keyward/broker"
)

// TestRefusalPageCoversEveryKind: every broker.RefusalKind declared in
// broker has its own page here, not the server-error page. The kinds are
// read from broker's source, so a new kind without a page fails.
func TestRefusalPageCoversEveryKind(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "../broker/errors.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	ast.Inspect(f, func(n ast.Node) bool {
		if vs, ok := n.(*ast.ValueSpec); ok {
			if id, ok := vs.Type.(*ast.Ident); ok && id.Name == "RefusalKind" {
				for _, v := range vs.Values {
					if lit, ok := v.(*ast.BasicLit); ok {
						kinds = append(kinds, strings.Trim(lit.Value, `"`))
					}
				}
			}
		}
		return true
	})
	if len(kinds) < 20 {
		t.Fatalf("found %d refusal kinds in broker/errors.go, want them all", len(kinds))
	}
	server := serverErrorPage()
	for _, k := range kinds {
		p := refusalPage(&broker.Refusal{Kind: broker.RefusalKind(k), Upstream: "Corp", Detail: "detail"})
		if p.Title == server.Title || p.Status < 400 || p.Status >= 600 || p.Message == "" {
			t.Errorf("%s: page %+v, want its own 4xx/5xx page", k, p)
		}
	}
	if p := refusalPage(&broker.Refusal{Kind: "no-such-kind"}); p.Status != http.StatusInternalServerError {
		t.Errorf("unknown kind: %+v, want the server-error page", p)
	}
}

// TestRefusalPageNamesTheFacts: the page quotes what broker names.
func TestRefusalPageNamesTheFacts(t *testing.T) {
	for _, tt := range []struct {
		r      broker.Refusal
		status int
		want   string
	}{
		{broker.Refusal{Kind: broker.RefusedUpstreamUnavailable, Upstream: "Okta", OtherUpstreams: true}, 503,
			"Okta sign-in is temporarily unavailable. Keyward cannot reach it and keeps trying; try again in a few minutes, or go back and choose another way to sign in."},
		{broker.Refusal{Kind: broker.RefusedUpstreamUnavailable, Upstream: "Okta"}, 503,
			"Okta sign-in is temporarily unavailable. Keyward cannot reach it and keeps trying; try again in a few minutes."},
		{broker.Refusal{Kind: broker.RefusedNotAllowed, Detail: "Only engineers may sign in."}, 403, "Only engineers may sign in."},
		{broker.Refusal{Kind: broker.RefusedAuthorizeForm, Detail: "it names the parameter nonce more than once"}, 400,
			"The application sent a sign-in request that Keyward does not accept: it names the parameter nonce more than once. Nothing was stored."},
		{broker.Refusal{Kind: broker.RefusedLoginLimited, Limited: &broker.LoginLimitedError{Scope: broker.LimitGlobal}}, 429,
			"Keyward is receiving more sign-in attempts than it can take just now."},
		{broker.Refusal{Kind: broker.RefusedUpstreamFailed, Upstream: "Corp"}, 502, "Keyward could not verify the answer of Corp."},
	} {
		p := refusalPage(&tt.r)
		if p.Status != tt.status || !strings.Contains(p.Message, tt.want) {
			t.Errorf("%s: %d %q, want %d containing %q", tt.r.Kind, p.Status, p.Message, tt.status, tt.want)
		}
	}
}

// TestPagesConfigValidate: the pages section's problems, each named by
// its field.
func TestPagesConfigValidate(t *testing.T) {
	for _, tt := range []struct {
		c    PagesConfig
		want string // "" for valid
	}{
		{PagesConfig{}, ""},
		{PagesConfig{AccessRemovedContact: "the IT service desk (+1 555 0100)"}, ""},
		{PagesConfig{AccessRemovedContact: "IT", AccessRemovedContactURL: "https://help.example.com/access"}, ""},
		{PagesConfig{AccessRemovedContact: "IT", AccessRemovedContactURL: "mailto:it@example.com"}, ""},
		{PagesConfig{AccessRemovedContactURL: "mailto:it@example.com"}, "accessRemovedContactURL: needs accessRemovedContact"},
		{PagesConfig{AccessRemovedContact: "IT", AccessRemovedContactURL: "javascript:alert(1)"}, "accessRemovedContactURL: \"javascript:alert(1)\" must be an https:// or mailto: URL"},
		{PagesConfig{AccessRemovedContact: "IT", AccessRemovedContactURL: "http://help.example.com/"}, "accessRemovedContactURL: \"http://help.example.com/\" "},
		{PagesConfig{AccessRemovedContact: "IT", AccessRemovedContactURL: "mailto:"}, "names no address"},
		{PagesConfig{AccessRemovedContact: "line\nbreak"}, "accessRemovedContact: must be one line"},
		{PagesConfig{AccessRemovedContact: strings.Repeat("x", 201)}, "accessRemovedContact: is 201 characters"},
	} {
		err := tt.c.Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%+v: Validate() = %v, want nil", tt.c, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%+v: Validate() = %v, want %q", tt.c, err, tt.want)
		}
	}
}
