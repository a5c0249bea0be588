package main

import (
	"strings"
	"testing"
)

// TestValidateClientURIs: the redirect, post-logout and back-channel logout
// URIs a client may register, through check-config's validation (the rule
// itself is broker.CheckRedirectURI). clients[0] of validYAML is a web
// client, clients[1] a native one.
func TestValidateClientURIs(t *testing.T) {
	const web, native = 0, 1
	tests := []struct {
		name   string
		client int
		field  string // redirectURIs (default), postLogoutRedirectURIs, backchannelLogoutURI, applicationType
		value  string
		want   string // "" when accepted, else a part of the message
	}{
		{name: "https", value: "https://app.example.com/cb"},
		{name: "https with query", value: "https://app.example.com/cb?tenant=a"},
		{name: "http on 127.0.0.1", value: "http://127.0.0.1:8085/cb"},
		{name: "http on localhost", value: "http://localhost:3000/callback"},
		{name: "http on [::1]", value: "http://[::1]/cb"},
		{name: "javascript", value: "javascript:alert(1)",
			want: `"javascript:alert(1)" uses the scheme javascript:, which cannot receive a code safely; use an https URL (http only on localhost, 127.0.0.1 or [::1])`},
		{name: "data", value: "data:text/html,<script>alert(1)</script>", want: "uses the scheme data:"},
		{name: "no scheme, host and port", value: "localhost:3000/callback",
			want: `"localhost:3000/callback" has no scheme; write it in full, e.g. http://localhost:3000/callback`},
		{name: "no scheme, IP and port", value: "127.0.0.1:3000/cb", want: "has no scheme; write it in full, e.g. http://127.0.0.1:3000/cb"},
		{name: "no scheme, host", value: "app.example.com/cb", want: "has no scheme; write it in full, e.g. https://app.example.com/cb"},
		{name: "scheme-relative", value: "//app.example.com/cb", want: `"//app.example.com/cb" has no scheme; write it in full, e.g. https://app.example.com/cb`},
		{name: "path only", value: "/callback", want: `"/callback" is a path; write the full URL, e.g. https://app.example.com/callback`},
		{name: "wildcard host", value: "https://*.example.com/cb",
			want: `"https://*.example.com/cb" holds a wildcard, but redirect URIs are matched exactly (a pattern would let any matching address receive codes); list each URI in full`},
		{name: "wildcard path", value: "https://app.example.com/*", want: "holds a wildcard"},
		{name: "fragment", value: "https://app.example.com/cb#top", want: "has a fragment, which a redirect URI must not have (RFC 6749 §3.1.2); remove the part from #"},
		{name: "empty fragment", value: "https://app.example.com/cb#", want: "has a fragment"},
		{name: "no host", value: "https:///cb", want: "has no host"},
		{name: "user info", value: "https://user@app.example.com/cb", want: "has user info"},
		{name: "http beyond loopback", value: "http://app.example.com/cb",
			want: `"http://app.example.com/cb" uses http on a host other than localhost, 127.0.0.1 or [::1], so codes would cross the network unencrypted; use https`},
		{name: "out of band", value: "urn:ietf:wg:oauth:2.0:oob",
			want: "a command-line tool should listen on loopback and use http://127.0.0.1/callback, whose port may differ at each sign-in (RFC 8252 §7.3)"},
		{name: "private-use scheme on a web client", value: "com.example.app:/cb",
			want: "which only native apps may use; if this client is a desktop, mobile or command-line app, set applicationType: native on it (RFC 8252 §7.1), else use an https URL"},
		{name: "space", value: "https://app.example.com/a b", want: "spaces or control characters"},

		{name: "native: private-use scheme", client: native, value: "com.example.app:/oauth2redirect"},
		{name: "native: private-use scheme with authority", client: native, value: "com.example.app://callback"},
		{name: "native: loopback", client: native, value: "http://127.0.0.1/cb"},
		{name: "native: claimed https", client: native, value: "https://app.example.com/cb"},
		{name: "native: scheme without a dot", client: native, value: "myapp:/cb",
			want: "is not a private-use scheme: a native app's scheme must be a reverse domain name it controls, such as com.example.app:/callback"},
		{name: "native: javascript", client: native, value: "javascript:alert(1)", want: "is not a private-use scheme"},
		{name: "native: out of band", client: native, value: "urn:ietf:wg:oauth:2.0:oob", want: "RFC 8252 §7.3"},
		{name: "native: http beyond loopback", client: native, value: "http://app.example.com/cb", want: "use https"},
		{name: "native: wildcard", client: native, value: "com.example.*:/cb", want: "holds a wildcard"},

		{name: "post-logout javascript", field: "postLogoutRedirectURIs", value: "javascript:alert(1)", want: "uses the scheme javascript:"},
		{name: "post-logout wildcard", field: "postLogoutRedirectURIs", value: "https://*.example.com/", want: "holds a wildcard"},
		{name: "post-logout https", field: "postLogoutRedirectURIs", value: "https://app.example.com/bye"},
		{name: "native post-logout private-use scheme", client: native, field: "postLogoutRedirectURIs", value: "com.example.app:/bye"},
		{name: "back-channel https with query", field: "backchannelLogoutURI", value: "https://app.example.com/bc?x=1"},
		{name: "back-channel http", field: "backchannelLogoutURI", value: "http://app.example.com/bc", want: "uses http on a host other than"},
		{name: "back-channel fragment", field: "backchannelLogoutURI", value: "https://app.example.com/bc#x", want: "has a fragment"},
		{name: "back-channel custom scheme", field: "backchannelLogoutURI", value: "com.example.app:/bc", want: "must be an absolute https URL with a host"},
		{name: "application type", field: "applicationType", value: "spa",
			want: `"spa" is not an application type; use web (the default: a server-side or browser app) or native (a desktop, mobile or command-line app)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustParse(t, validYAML)
			cl := &c.Clients[tt.client]
			path := "clients[" + string(rune('0'+tt.client)) + "]."
			switch tt.field {
			case "", "redirectURIs":
				cl.RedirectURIs = []string{tt.value}
				path += "redirectURIs[0]"
			case "postLogoutRedirectURIs":
				cl.PostLogoutRedirectURIs = []string{tt.value}
				path += "postLogoutRedirectURIs[0]"
			case "backchannelLogoutURI":
				cl.BackchannelLogoutURI = tt.value
				path += "backchannelLogoutURI"
			case "applicationType":
				cl.ApplicationType = tt.value
				path += "applicationType"
			}
			var got []string
			for _, e := range splitErrors(c.Validate()) {
				got = append(got, e.Error())
			}
			switch {
			case tt.want == "" && len(got) != 0:
				t.Errorf("Validate(%s = %q) = %q, want no problem", path, tt.value, got)
			case tt.want != "" && (len(got) != 1 || !strings.HasPrefix(got[0], path+": ") || !strings.Contains(got[0], tt.want)):
				t.Errorf("Validate(%s = %q) = %q, want one problem at %s containing %q", path, tt.value, got, path, tt.want)
			}
		})
	}
}
