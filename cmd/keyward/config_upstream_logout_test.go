package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/keyward/keyward/federation"
)

const upstreamLogoutYAML = `
issuer: https://sso.example.com
sessionSecretFile: /s
store: {path: /var/lib/keyward/keyward.db}
upstreams:
  - id: cognito
    profile: cognito
    issuer: %s
    clientID: kw
    clientSecretFile: /c
    upstreamLogout: true
    logoutURL: %s
clients: [{id: app, redirectURIs: ["https://app.example.com/cb"]}]
`

// upstreamLogout: true reaches the upstream, and a logoutURL with the
// placeholder validates and is filled with <issuer>/logout/upstream-done.
func TestUpstreamLogoutConfig(t *testing.T) {
	const logoutURL = "https://auth.example.com/logout?client_id=kw&logout_uri={post_logout_redirect_uri}"
	c := mustParse(t, fmt.Sprintf(upstreamLogoutYAML, unreachableIssuer(t), logoutURL))
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	if !c.Upstreams[0].UpstreamLogout {
		t.Fatal("upstreamLogout: true was not read")
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ups, err := buildUpstreams(ctx, c, Secrets{UpstreamClientSecrets: map[string]string{"cognito": "s"}}, slog.New(slog.DiscardHandler), http.DefaultTransport, nil)
	if err != nil {
		t.Fatalf("buildUpstreams() = %v", err)
	}
	lazy := ups[0].(*federation.LazyUpstream)
	if !lazy.UpstreamLogout() {
		t.Error("UpstreamLogout() = false, want true from the file")
	}
	// Discovery is unreachable: the logoutURL needs none.
	req, err := lazy.LogoutRequest(c.Issuer+"/logout/upstream-done", "s")
	want := "https://auth.example.com/logout?client_id=kw&logout_uri=" + url.QueryEscape("https://sso.example.com/logout/upstream-done")
	if err != nil || req.URL != want {
		t.Errorf("LogoutRequest() = %+v, %v; want %s", req, err, want)
	}
}

func TestUpstreamLogoutURLMustBeHTTPS(t *testing.T) {
	for _, bad := range []string{"http://auth.example.com/logout?logout_uri={post_logout_redirect_uri}", "ftp://auth.example.com/logout", "/logout"} {
		c := mustParse(t, fmt.Sprintf(upstreamLogoutYAML, "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc", bad))
		if paths := errorPaths(t, c.Validate()); !slices.Contains(paths, "upstreams[0].logoutURL") {
			t.Errorf("Validate(logoutURL %q) problems at %v, want upstreams[0].logoutURL", bad, paths)
		}
	}
	// http is fine on loopback.
	c := mustParse(t, fmt.Sprintf(upstreamLogoutYAML, "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc", "http://127.0.0.1:9000/logout"))
	if err := c.Validate(); err != nil {
		t.Errorf("Validate(loopback http logoutURL) = %v", err)
	}
}
