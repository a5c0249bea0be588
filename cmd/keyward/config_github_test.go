package main

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyward/keyward/federation"
)

// githubYAML is validYAML with a third upstream of type github; the cases
// add fields to it.
var githubYAML = strings.Replace(validYAML, "clients:\n", `  - id: github
    type: github
    clientID: Iv1.abc
    clientSecret: ${CORP}
clients:
`, 1)

// withGitHubFields puts extra YAML lines (indented as upstream fields)
// into the github upstream of githubYAML.
func withGitHubFields(lines ...string) string {
	extra := ""
	for _, l := range lines {
		extra += "    " + l + "\n"
	}
	return strings.Replace(githubYAML, "    clientID: Iv1.abc\n", "    clientID: Iv1.abc\n"+extra, 1)
}

func TestValidateGitHubUpstream(t *testing.T) {
	tests := []struct {
		name   string
		fields []string
		want   []string // the problems' field paths
	}{
		{name: "minimal"},
		{name: "enterprise", fields: []string{"githubURL: https://github.example.com", "githubAPIURL: https://github.example.com/api/v3"}},
		{name: "mapping and allow", fields: []string{
			"claimMapping: {groupsPrefix: 'gh:', claims: {company: company}}",
			"allow: {groups: [acme, 'acme:platform'], emailDomains: [example.com], requireEmailVerified: true}",
			"scopes: [read:user, user:email, read:org]",
		}},
		{name: "profile", fields: []string{"profile: generic"}, want: []string{"upstreams[2].profile"}},
		{name: "issuer", fields: []string{"issuer: https://github.com"}, want: []string{"upstreams[2].issuer"}},
		{name: "native sign-in", fields: []string{"nativeClientIDs: [app]", "nativePublicClients: true"},
			want: []string{"upstreams[2].nativeClientIDs", "upstreams[2].nativePublicClients"}},
		{name: "recheck", fields: []string{"recheckInterval: 1h"}, want: []string{"upstreams[2].recheckInterval"}},
		{name: "trust email", fields: []string{"trustEmail: true"}, want: []string{"upstreams[2].trustEmail"}},
		{name: "logout", fields: []string{"upstreamLogout: true", "logoutURL: https://github.com/logout"},
			want: []string{"upstreams[2].logoutURL", "upstreams[2].upstreamLogout"}},
		{name: "fixed mapping", fields: []string{"claimMapping: {subject: login, groups: [orgs]}"},
			want: []string{"upstreams[2].claimMapping.groups", "upstreams[2].claimMapping.subject"}},
		{name: "http github url", fields: []string{"githubURL: http://github.example.com"}, want: []string{"upstreams[2].githubURL"}},
		{name: "comma scopes", fields: []string{"scopes: ['read:user,read:org']"}, want: []string{"upstreams[2].scopes[0]"}},
		{name: "unknown type", fields: []string{"type: saml"}, want: []string{"upstreams[2].type"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := withGitHubFields(tc.fields...)
			if tc.name == "unknown type" {
				data = strings.Replace(githubYAML, "type: github", "type: saml", 1)
			}
			c := mustParse(t, data)
			err := c.Validate()
			got := errorPaths(t, err)
			slices.Sort(got)
			if tc.name == "unknown type" { // the OIDC checks do not run either
				got = slices.DeleteFunc(got, func(p string) bool { return p != "upstreams[2].type" })
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Validate() problems (-want +got):\n%s\nerr: %v", diff, err)
			}
		})
	}
	// GitHub's fields on an OIDC upstream.
	c := mustParse(t, strings.Replace(validYAML, "    clientID: keyward\n", "    clientID: keyward\n    githubURL: https://github.com\n", 1))
	if got := errorPaths(t, c.Validate()); !slices.Equal(got, []string{"upstreams[0].githubURL"}) {
		t.Errorf("githubURL on an oidc upstream: problems %q, want upstreams[0].githubURL", got)
	}
}

func TestGitHubUpstreamDefaults(t *testing.T) {
	c := mustParse(t, githubYAML)
	u := c.Upstreams[2]
	want := federation.Config{ID: "github", Name: "github", Type: "github", GitHubURL: "https://github.com", ClientID: "Iv1.abc", ClientSecret: "corp-secret"}
	if diff := cmp.Diff(want, u); diff != "" {
		t.Errorf("github upstream after defaults (-want +got):\n%s", diff)
	}
}

func TestBuildUpstreamsGitHub(t *testing.T) {
	c := mustParse(t, withGitHubFields("githubURL: https://github.example.com", "allow: {groups: [acme]}"))
	c.Upstreams = c.Upstreams[2:]
	sec := Secrets{UpstreamClientSecrets: map[string]string{"github": "gh-secret"}}
	ups, err := buildUpstreams(t.Context(), c, sec, slog.New(slog.DiscardHandler), http.DefaultTransport, nil)
	if err != nil {
		t.Fatalf("buildUpstreams() = %v", err)
	}
	gh, ok := ups[0].(*federation.GitHub)
	if !ok || gh.ID() != "github" || gh.Issuer() != "https://github.example.com" {
		t.Fatalf("upstream = %T %v, want *federation.GitHub github at https://github.example.com", ups[0], ups[0])
	}
	u := gh.AuthCodeURL("state-0123456789", "n", "verifier-0123456789-0123456789-0123456789", federation.AuthOptions{})
	if !strings.HasPrefix(u, "https://github.example.com/login/oauth/authorize?") ||
		!strings.Contains(u, "redirect_uri=https%3A%2F%2Fsso.example.com%2Fcallback") {
		t.Errorf("AuthCodeURL = %s, want the enterprise authorize endpoint and Keyward's callback", u)
	}
	sec.UpstreamClientSecrets = map[string]string{}
	if _, err := buildUpstreams(t.Context(), c, sec, slog.New(slog.DiscardHandler), http.DefaultTransport, nil); err == nil ||
		!strings.Contains(err.Error(), "upstreams[0] (github)") || !strings.Contains(err.Error(), "clientSecretFile") {
		t.Errorf("buildUpstreams(no secret) = %v, want an error naming upstreams[0] (github) and clientSecretFile", err)
	}
}

func TestProbeGitHub(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		wantSev  severity
		wantText string
	}{
		{"answers", http.StatusOK, sevInfo, "answers;"},
		{"private mode", http.StatusUnauthorized, sevInfo, "private mode"},
		{"not github", http.StatusNotFound, sevError, "404 Not Found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var path string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				path = r.URL.Path
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(`{"current_user_url":"x"}`))
			}))
			defer srv.Close()
			c := mustParse(t, withGitHubFields("githubURL: "+srv.URL))
			c.Upstreams = c.Upstreams[2:]
			c.Trust = nil
			var out bytes.Buffer
			errs, _, err := probeConfig(t.Context(), c, probeClient(), &out, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if path != "/api/v3/" {
				t.Errorf("probe asked %q, want the API root /api/v3/", path)
			}
			wantErrs := 0
			if tc.wantSev == sevError {
				wantErrs = 1
			}
			line := tc.wantSev.String() + " "
			if errs != wantErrs || !strings.Contains(out.String(), tc.wantText) || !strings.Contains(out.String(), line) ||
				!strings.Contains(out.String(), "register "+c.Issuer+"/callback") {
				t.Errorf("probe: %d errors, report:\n%s\nwant %d errors, a %s line with %q and the callback", errs, out.String(), wantErrs, tc.wantSev, tc.wantText)
			}
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		c := mustParse(t, withGitHubFields("githubURL: "+unreachableIssuer(t)))
		c.Upstreams = c.Upstreams[2:]
		var out bytes.Buffer
		if errs, _, _ := probeConfig(t.Context(), c, probeClient(), &out, 5*time.Second); errs != 1 || !strings.Contains(out.String(), "unreachable") {
			t.Errorf("probe of an unreachable GitHub: %d errors, report:\n%s\nwant 1 error saying unreachable", errs, out.String())
		}
	})
}
