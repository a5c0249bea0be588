package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/federation"
	"github.com/keyward/keyward/store/bolt"
	"github.com/keyward/keyward/test/demoapp"
	"github.com/keyward/keyward/test/fakeidp"
	"github.com/keyward/keyward/web/httpserver"
)

type demoOptions struct {
	dataDir string
	port    int
	verbose bool
}

func newDemoCommand() *cobra.Command {
	var o demoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole product on this machine, with a demo identity provider and app",
		Long: `Run Keyward on loopback with everything it needs, and print the URLs to open:

  - the broker (bbolt in a temporary folder, or --data DIR to keep it),
  - a built-in demo identity provider (a real OIDC server with a login form
    and two demo users in different groups),
  - a demo application that signs in through Keyward and shows the claims of
    the ID token and the access token it receives,
  - in front of the app, a gateway with keyward verify in browser mode (the
    first visit signs in at the edge) that also serves a demo API,
    GET /api/whoami, which takes a bearer token (bearer mode).

Listens on 127.0.0.1 only: the broker on --port, the identity provider on
--port+1 and the gateway (app and API) on --port+2 (--port 0 picks free
ports). Ctrl-C stops everything.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&o.dataDir, "data", "", "keep the broker's database in this folder (default: a temporary folder, removed on exit)")
	cmd.Flags().IntVar(&o.port, "port", 5556, "first of three loopback ports (broker, identity provider, app gateway); 0 picks free ports")
	cmd.Flags().BoolVarP(&o.verbose, "verbose", "v", false, "log every request (debug level)")
	return cmd
}

// demoListeners opens the loopback listeners: broker, identity provider,
// gateway, and the app behind the gateway (always a free port).
func demoListeners(port int) ([4]net.Listener, error) {
	var lns [4]net.Listener
	for i := range lns {
		p := 0
		if port != 0 && i < 3 {
			p = port + i
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			for _, l := range lns[:i] {
				_ = l.Close()
			}
			return lns, fmt.Errorf("listen on 127.0.0.1:%d: %w (choose other ports with --port)", p, err)
		}
		lns[i] = ln
	}
	return lns, nil
}

func runDemo(ctx context.Context, o demoOptions, out, logOut io.Writer) error {
	lns, err := demoListeners(o.port)
	if err != nil {
		return err
	}
	url := func(ln net.Listener) string { return "http://" + ln.Addr().String() }
	brokerURL, idpURL, appURL := url(lns[0]), url(lns[1]), url(lns[2])

	dir := o.dataDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "keyward-demo-"); err != nil {
			return fmt.Errorf("create data folder: %w", err)
		}
		defer os.RemoveAll(dir)
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create data folder: %w", err)
	}

	level := "info"
	if o.verbose {
		level = "debug"
	}
	log, err := buildLogger(LoggingConfig{Level: level, Format: "text"}, logOut)
	if err != nil {
		return err
	}
	upstreamSecret, appSecret, gatewaySecret := randomSecret(), randomSecret(), randomSecret()
	idp, err := fakeidp.New(fakeidp.Config{
		Issuer:  idpURL,
		Users:   fakeidp.DemoUsers(),
		Clients: []fakeidp.Client{{ID: "keyward", Secret: upstreamSecret, RedirectURIs: []string{brokerURL + "/callback"}}},
		Title:   "Demo identity provider",
		Hint:    "Demo users: alice / alice-demo (staff, admins) and bob / bob-demo (staff).",
		Logger:  log.With("component", "demo-idp"),
	})
	if err != nil {
		return fmt.Errorf("demo identity provider: %w", err)
	}
	cfg := &Config{
		Issuer: brokerURL,
		Listen: lns[0].Addr().String(),
		Store:  StoreConfig{Type: "bolt", Backend: &bolt.Options{Path: filepath.Join(dir, "keyward.db")}},
		Upstreams: []federation.Config{{
			ID: "demo", Name: "Demo identity provider", Issuer: idpURL, ClientID: "keyward",
			ClientSecret: "from-secrets", Scopes: []string{"openid", "email", "profile", "groups"},
		}},
		// Both clients' access tokens are for the demo API, so the token the
		// app shows works with curl against /api/whoami.
		Clients: []broker.Client{{
			ID: "demo-app", Name: "Keyward demo app", Secret: "from-secrets",
			RedirectURIs: []string{appURL + "/callback"}, Audiences: []string{demoAPIAudience},
		}, {
			ID: demoGatewayClient, Name: "Keyward demo gateway", Secret: "from-secrets",
			RedirectURIs: []string{appURL + "/oauth2/callback"}, Audiences: []string{demoAPIAudience},
			// Signing out at the gateway ends the Keyward session too and
			// comes back to the app.
			PostLogoutRedirectURIs: []string{appURL + "/"},
		}},
		SessionSecret: "from-secrets-from-secrets-from-secrets",
	}
	cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("demo configuration: %w", err)
	}
	sec := Secrets{
		SessionSecret:         []byte(randomSecret()),
		UpstreamClientSecrets: map[string]string{"demo": upstreamSecret},
		ClientSecrets:         map[string]string{"demo-app": appSecret, demoGatewayClient: gatewaySecret},
	}

	g, gctx := errgroup.WithContext(ctx)
	// The identity provider must answer discovery before the broker starts.
	g.Go(func() error { return serveUntil(gctx, lns[1], idp.Handler(), log) })
	inst, err := build(gctx, cfg, sec, log, upstreamTransport())
	if err != nil {
		_ = lns[0].Close()
		_ = lns[2].Close()
		_ = lns[3].Close()
		_ = lns[1].Close()
		return errors.Join(err, g.Wait())
	}
	defer inst.close()
	app, err := demoapp.New(demoapp.Config{
		Issuer: brokerURL, ClientID: "demo-app", ClientSecret: appSecret, RedirectURL: appURL + "/callback",
		Scopes:         []string{"openid", "email", "profile", "groups", "offline_access"},
		Logger:         log.With("component", "demo-app"),
		GatewayHeaders: true, // the gateway below replaces any client's X-Auth-Request-*
		HTTPClient:     &http.Client{Timeout: httpserver.UpstreamTimeout},
	})
	if err != nil {
		return fmt.Errorf("demo app: %w", err)
	}
	cookieKey := make([]byte, 32)
	_, _ = rand.Read(cookieKey)
	gw, err := newDemoGateway(gctx, brokerURL, appURL, url(lns[3]), gatewaySecret, cookieKey)
	if err != nil {
		return fmt.Errorf("demo gateway: %w", err)
	}
	g.Go(func() error { return inst.run(gctx, lns[0], cfg) })
	g.Go(func() error { return serveUntil(gctx, lns[3], app.Handler(), log) })
	g.Go(func() error { return serveUntil(gctx, lns[2], gw, log) })

	fmt.Fprintf(out, `
Keyward demo is running (Ctrl-C stops it).

  Open the demo app:         %s
  Sign in as                 alice / alice-demo   (groups: staff, admins)
                          or bob / bob-demo       (groups: staff)
  The app sits behind keyward verify in browser mode: the first visit signs
  you in at the gateway; the app then signs in itself and shows its tokens.
  Sign out of the gateway:   %s/oauth2/sign_out
  The demo API (bearer):     curl -H "Authorization: Bearer $TOKEN" %s/api/whoami
                             (TOKEN: the app's raw access token)

  Keyward (the broker):      %s/.well-known/openid-configuration
  Its signing keys (JWKS):   %s/keys
  Demo identity provider:    %s
  Data folder:               %s

`, appURL, appURL, appURL, brokerURL, brokerURL, idpURL, dir)
	return g.Wait()
}

// serveUntil serves h on ln until ctx ends, with the settings of every
// server of the binary; the server's own errors go to log.
func serveUntil(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	srv := httpserver.New(h, serverOptions(0, log))
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	}
	return nil
}

func randomSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
