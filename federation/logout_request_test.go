package federation

import (
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyward/keyward/test/fakeidp"
)

const postLogout = "https://sso.example.com/logout/upstream-done"

// openWith opens an upstream against a fake IdP with quirks, after edit.
func openWith(t *testing.T, quirks fakeidp.Quirks, edit func(*Config)) (*Upstream, *fakeidp.Server) {
	t.Helper()
	idp := fakeidp.NewTest(t, fakeidp.Config{
		Users:   fakeidp.DemoUsers(),
		Clients: []fakeidp.Client{{ID: "keyward", Secret: "s3cret", RedirectURIs: []string{redirectURL}}},
		Quirks:  quirks,
	})
	c := testConfig(idp.URL())
	if edit != nil {
		edit(&c)
	}
	up, err := c.Open(t.Context(), &http.Client{Timeout: 5 * time.Second}, nil)
	if err != nil {
		t.Fatalf("Open() = %v", err)
	}
	return up, idp
}

func TestEndSessionURLPrecedence(t *testing.T) {
	const configured = "https://auth.example.com/logout?client_id=kw&logout_uri={post_logout_redirect_uri}"
	tests := []struct {
		name       string
		noDisc     bool
		logoutURL  string
		discovered bool // want discovery's endpoint
		want       string
	}{
		{name: "discovery only", discovered: true},
		{name: "logoutURL wins over discovery", logoutURL: configured, want: configured},
		{name: "logoutURL without discovery", noDisc: true, logoutURL: configured, want: configured},
		{name: "neither", noDisc: true, want: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up, idp := openWith(t, fakeidp.Quirks{NoEndSession: tc.noDisc}, func(c *Config) { c.LogoutURL = tc.logoutURL })
			want := tc.want
			if tc.discovered {
				want = idp.URL() + "/logout"
			}
			if got := up.EndSessionURL(); got != want {
				t.Errorf("EndSessionURL() = %q, want %q", got, want)
			}
		})
	}
}

func TestLogoutRequest(t *testing.T) {
	t.Run("discovery end_session_endpoint gets the standard parameters", func(t *testing.T) {
		up, idp := openWith(t, fakeidp.Quirks{}, func(c *Config) { c.UpstreamLogout = true })
		if !up.UpstreamLogout() {
			t.Error("UpstreamLogout() = false, want true")
		}
		got, err := up.LogoutRequest(postLogout, "st-1")
		if err != nil {
			t.Fatalf("LogoutRequest() = %v", err)
		}
		u, err := url.Parse(got.URL)
		if err != nil {
			t.Fatal(err)
		}
		if base := u.Scheme + "://" + u.Host + u.Path; base != idp.URL()+"/logout" || !got.StateSent {
			t.Errorf("LogoutRequest() = %q (state sent %v), want %s/logout with the state", got.URL, got.StateSent, idp.URL())
		}
		want := url.Values{"client_id": {"keyward"}, "post_logout_redirect_uri": {postLogout}, "state": {"st-1"}}
		if diff := cmp.Diff(want, u.Query()); diff != "" {
			t.Errorf("LogoutRequest() query (-want +got):\n%s", diff)
		}
	})
	t.Run("configured logoutURL is used as given, placeholder escaped", func(t *testing.T) {
		up, _ := openWith(t, fakeidp.Quirks{}, func(c *Config) {
			c.LogoutURL = "https://auth.example.com/logout?client_id=kw&logout_uri={post_logout_redirect_uri}"
		})
		if up.UpstreamLogout() {
			t.Error("UpstreamLogout() = true, want the default false")
		}
		got, err := up.LogoutRequest(postLogout+"?a=b&c=d", "st-1")
		want := LogoutRequest{URL: "https://auth.example.com/logout?client_id=kw&logout_uri=https%3A%2F%2Fsso.example.com%2Flogout%2Fupstream-done%3Fa%3Db%26c%3Dd"}
		if err != nil || got != want {
			t.Errorf("LogoutRequest() = %+v, %v; want %+v", got, err, want)
		}
	})
	t.Run("configured logoutURL without placeholder is untouched", func(t *testing.T) {
		const fixed = "https://auth.example.com/logout?client_id=kw&logout_uri=https%3A%2F%2Fsso.example.com%2F"
		up, _ := openWith(t, fakeidp.Quirks{NoEndSession: true}, func(c *Config) { c.LogoutURL = fixed })
		got, err := up.LogoutRequest(postLogout, "st-1")
		if err != nil || got != (LogoutRequest{URL: fixed}) {
			t.Errorf("LogoutRequest() = %+v, %v; want %s as given", got, err, fixed)
		}
	})
	t.Run("neither", func(t *testing.T) {
		up, _ := openWith(t, fakeidp.Quirks{NoEndSession: true}, nil)
		got, err := up.LogoutRequest(postLogout, "st-1")
		if !errors.Is(err, ErrNoLogoutURL) || got.URL != "" {
			t.Errorf("LogoutRequest() = %+v, %v; want an error wrapping ErrNoLogoutURL", got, err)
		}
	})
}

func TestLogoutRequestEndpointShapes(t *testing.T) {
	c := testConfig("https://idp.example.com")
	tests := []struct {
		name, endpoint, post, state string
		want                        string // "" = an error
		stateSent                   bool
	}{
		{name: "query kept", endpoint: "https://idp.example.com/oidc/logout?federated=1", post: postLogout, state: "s",
			want: "https://idp.example.com/oidc/logout?client_id=keyward&federated=1&post_logout_redirect_uri=" + url.QueryEscape(postLogout) + "&state=s", stateSent: true},
		{name: "no state", endpoint: "https://idp.example.com/logout", post: postLogout,
			want: "https://idp.example.com/logout?client_id=keyward&post_logout_redirect_uri=" + url.QueryEscape(postLogout)},
		{name: "http loopback", endpoint: "http://127.0.0.1:8080/logout",
			want: "http://127.0.0.1:8080/logout?client_id=keyward"},
		{name: "http elsewhere", endpoint: "http://idp.example.com/logout"},
		{name: "another scheme", endpoint: "javascript:alert(1)"},
		{name: "relative", endpoint: "/logout"},
		{name: "user info", endpoint: "https://u:p@idp.example.com/logout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := logoutRequest(c, tc.endpoint, tc.post, tc.state)
			if tc.want == "" {
				if err == nil || got.URL != "" {
					t.Errorf("logoutRequest(%q) = %+v, %v; want an error", tc.endpoint, got, err)
				}
				return
			}
			if err != nil || got != (LogoutRequest{URL: tc.want, StateSent: tc.stateSent}) {
				t.Errorf("logoutRequest(%q) = %+v, %v; want %s (state sent %v)", tc.endpoint, got, err, tc.want, tc.stateSent)
			}
		})
	}
}

func TestLazyLogoutRequestBeforeReady(t *testing.T) {
	idp, _ := lazyIdP(t, -1) // discovery always fails
	cfg := lazyConfig(idp.URL())
	cfg.UpstreamLogout = true
	l, err := startLazy(t, t.Context(), cfg, nil, nil, lazyHooks(newStepWait()))
	if err != nil {
		t.Fatalf("NewLazy() = %v", err)
	}
	if !l.UpstreamLogout() {
		t.Error("UpstreamLogout() = false, want true")
	}
	_, err = l.LogoutRequest(postLogout, "s")
	checkIs(t, "LogoutRequest (no logoutURL)", err, ErrUpstreamUnavailable)

	cfg.LogoutURL = "https://auth.example.com/logout?logout_uri={post_logout_redirect_uri}"
	l, err = startLazy(t, t.Context(), cfg, nil, nil, lazyHooks(newStepWait()))
	if err != nil {
		t.Fatalf("NewLazy() = %v", err)
	}
	got, err := l.LogoutRequest(postLogout, "s")
	want := LogoutRequest{URL: "https://auth.example.com/logout?logout_uri=" + url.QueryEscape(postLogout)}
	if err != nil || got != want {
		t.Errorf("LogoutRequest() before ready = %+v, %v; want %+v (the logoutURL needs no discovery)", got, err, want)
	}
}
