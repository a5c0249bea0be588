package main

// This file is the demo's identity provider: test/fakeidp with the demo
// users, a page at its root, and `keyward demo --idp-only`.

import (
	"context"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/keyward/keyward/test/fakeidp"
)

const (
	// demoUpstreamClient is Keyward's client ID at the demo identity
	// provider (upstreams[].clientID in examples/keyward-minimal.yaml).
	demoUpstreamClient = "keyward"
	// demoUpstreamSecretEnv is the variable examples/keyward-minimal.yaml
	// reads the upstream client secret from; --idp-only accepts its value.
	demoUpstreamSecretEnv = "KEYWARD_UPSTREAM_SECRET"
	// demoUpstreamSecret is what --idp-only accepts when that variable is
	// unset: a public demo value, never a real secret.
	demoUpstreamSecret = "keyward-demo-upstream-secret"
	demoIdPHint        = "Demo users: alice / alice-demo (staff, admins) and bob / bob-demo (staff)."
)

// newDemoIdP is the demo identity provider at idpURL, for a broker at
// brokerURL whose client "keyward" authenticates with secret.
func newDemoIdP(idpURL, brokerURL, secret string, log *slog.Logger) (http.Handler, error) {
	idp, err := fakeidp.New(fakeidp.Config{
		Issuer:  idpURL,
		Users:   fakeidp.DemoUsers(),
		Clients: []fakeidp.Client{{ID: demoUpstreamClient, Secret: secret, RedirectURIs: []string{brokerURL + "/callback"}}},
		Title:   "Demo identity provider",
		Hint:    demoIdPHint,
		Logger:  log, // fakeidp names itself as the component
	})
	if err != nil {
		return nil, fmt.Errorf("demo identity provider: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", idp.Handler())
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_ = demoIdPRoot.Execute(w, map[string]any{
			"Hint": demoIdPHint, "Users": fakeidp.DemoUsers(), "Issuer": idpURL, "Redirect": brokerURL + "/callback",
		})
	})
	return mux, nil
}

// demoIdPRoot is the page at the demo identity provider's root: people
// open it from the demo's banner.
var demoIdPRoot = template.Must(template.New("root").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Demo identity provider</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}
table{border-collapse:collapse}td,th{padding:.25rem .75rem;border-bottom:1px solid #ddd;text-align:left}</style></head>
<body><h1>Demo identity provider</h1>
<p>This is Keyward's demo identity provider, a real OpenID Connect server. Its login form
appears when an application signs in through Keyward; nothing happens here.</p>
<p>{{.Hint}}</p>
<table><thead><tr><th>User</th><th>Password</th><th>Email</th><th>Groups</th></tr></thead><tbody>
{{range .Users}}<tr><td><code>{{.Username}}</code></td><td><code>{{.Password}}</code></td><td>{{.Email}}</td><td>{{range $i, $g := .Groups}}{{if $i}}, {{end}}{{$g}}{{end}}</td></tr>
{{end}}</tbody></table>
<p>Issuer: <code>{{.Issuer}}</code> ·
<a href="{{.Issuer}}/.well-known/openid-configuration">discovery document</a><br>
Keyward's redirect URI here: <code>{{.Redirect}}</code></p>
</body></html>
`))

// demoLogger is the demo's logger: text, debug with --verbose.
func demoLogger(o demoOptions, logOut io.Writer) (*slog.Logger, error) {
	level := "info"
	if o.verbose {
		level = "debug"
	}
	return buildLogger(LoggingConfig{Level: level, Format: "text"}, logOut)
}

// runDemoIdP runs `keyward demo --idp-only`: the demo identity provider on
// --port+1, for a broker on --port (examples/keyward-minimal.yaml).
func runDemoIdP(ctx context.Context, o demoOptions, out, logOut io.Writer) error {
	port := o.port
	if port == 0 {
		return usageError("--idp-only needs --port (the broker's port; the identity provider listens on the next one)")
	}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port+1))
	if err != nil {
		return fmt.Errorf("listen on 127.0.0.1:%d: %w (choose other ports with --port)", port+1, err)
	}
	log, err := demoLogger(o, logOut)
	if err != nil {
		_ = ln.Close()
		return err
	}
	return serveDemoIdP(ctx, ln, fmt.Sprintf("http://127.0.0.1:%d", port), out, log)
}

// serveDemoIdP serves the demo identity provider on ln for a broker at
// brokerURL until ctx ends. Keyward's client there authenticates with
// $KEYWARD_UPSTREAM_SECRET, or demoUpstreamSecret when that is unset.
func serveDemoIdP(ctx context.Context, ln net.Listener, brokerURL string, out io.Writer, log *slog.Logger) error {
	idpURL := "http://" + ln.Addr().String()
	secret := strings.TrimSpace(os.Getenv(demoUpstreamSecretEnv))
	shown, export := "(the value of $"+demoUpstreamSecretEnv+")", ""
	if secret == "" {
		secret, shown = demoUpstreamSecret, demoUpstreamSecret
		export = demoUpstreamSecretEnv + "=" + demoUpstreamSecret + " "
	}
	h, err := newDemoIdP(idpURL, brokerURL, secret, log)
	if err != nil {
		_ = ln.Close()
		return err
	}
	fmt.Fprintf(out, `
Keyward's demo identity provider is running (Ctrl-C stops it).

  Issuer:                    %s
  Client ID / secret:        %s / %s
  Redirect URI accepted:     %s/callback
  %s

  examples/keyward-minimal.yaml names this upstream; in another terminal:
    export %sAPP_SECRET=demo-app-secret
    (umask 077 && head -c32 /dev/urandom | base64 > session-secret)
    keyward serve -c examples/keyward-minimal.yaml

`, idpURL, demoUpstreamClient, shown, brokerURL, demoIdPHint, export)
	return serveUntil(ctx, ln, h, log)
}
