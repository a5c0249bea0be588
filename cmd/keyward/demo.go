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
	"github.com/keyward/keyward/web/console"
	"github.com/keyward/keyward/web/httpserver"
)

type demoOptions struct {
	dataDir string
	port    int
	verbose bool
	idpOnly bool
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

It also serves the admin API (keyward admin finds the running demo without
flags) and its gateway polls the revocation feed every second, so
deprovisioning a person ends their API access within a second or two.

Listens on 127.0.0.1 only: the broker on --port, the identity provider on
--port+1, the gateway (app and API) on --port+2 and the admin API on
--port+3 (--port 0 picks free ports). Ctrl-C stops everything.

With --idp-only it runs just the demo identity provider on --port+1, for
keyward serve -c examples/keyward-minimal.yaml on the same machine.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.idpOnly {
				return runDemoIdP(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
			}
			return runDemo(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&o.dataDir, "data", "", "keep the broker's database in this folder (default: a temporary folder, removed on exit)")
	cmd.Flags().IntVar(&o.port, "port", 5556, "first of four loopback ports (broker, identity provider, app gateway, admin API); 0 picks free ports")
	cmd.Flags().BoolVar(&o.idpOnly, "idp-only", false, "run only the demo identity provider (on --port+1), for keyward serve with examples/keyward-minimal.yaml")
	cmd.Flags().BoolVarP(&o.verbose, "verbose", "v", false, "log every request (debug level)")
	return cmd
}

// Indexes of demoListeners' listeners.
const (
	lnBroker = iota
	lnIdP
	lnGateway
	lnAdmin
	lnApp
)

// demoListeners opens the loopback listeners: broker, identity provider,
// gateway, admin API on port, port+1, port+2, port+3, and the app behind the
// gateway (always a free port).
func demoListeners(port int) ([5]net.Listener, error) {
	var lns [5]net.Listener
	for i := range lns {
		p := 0
		if port != 0 && i != lnApp {
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
	closeAll := func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}
	url := func(ln net.Listener) string { return "http://" + ln.Addr().String() }
	brokerURL, idpURL, appURL, adminURL := url(lns[lnBroker]), url(lns[lnIdP]), url(lns[lnGateway]), url(lns[lnAdmin])

	dir := o.dataDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "keyward-demo-"); err != nil {
			closeAll()
			return fmt.Errorf("create data folder: %w", err)
		}
		defer os.RemoveAll(dir)
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		closeAll()
		return fmt.Errorf("create data folder: %w", err)
	}

	log, err := demoLogger(o, logOut)
	if err != nil {
		closeAll()
		return err
	}
	upstreamSecret, appSecret, gatewaySecret := randomSecret(), randomSecret(), randomSecret()
	idp, err := newDemoIdP(idpURL, brokerURL, upstreamSecret, log)
	if err != nil {
		closeAll()
		return err
	}
	adminToken := randomSecret()
	adminTokenFile := filepath.Join(dir, "admin-token")
	if err := os.WriteFile(adminTokenFile, []byte(adminToken+"\n"), 0o600); err != nil {
		closeAll()
		return fmt.Errorf("write the admin token: %w", err)
	}
	// The identity provider's SCIM token, kept like the admin token.
	scimToken := randomSecret()
	scimTokenFile := filepath.Join(dir, demoSCIMTokenFile)
	if err := os.WriteFile(scimTokenFile, []byte(scimToken+"\n"), 0o600); err != nil {
		closeAll()
		return fmt.Errorf("write the SCIM token: %w", err)
	}
	scimFile, scimRead := demoSCIMConfig(scimTokenFile, scimToken)
	cfg := &Config{
		Issuer: brokerURL,
		Listen: lns[lnBroker].Addr().String(),
		Store:  StoreConfig{Type: "bolt", Backend: &bolt.Options{Path: filepath.Join(dir, "keyward.db")}},
		Upstreams: []federation.Config{{
			ID: "demo", Name: "Demo identity provider", Issuer: idpURL, ClientID: demoUpstreamClient,
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
			// comes back to the gateway's "You are signed out" page (or
			// the app, with ?rd=/).
			PostLogoutRedirectURIs: []string{appURL + "/oauth2/signed_out", appURL + "/"},
		}},
		SessionSecret: "from-secrets-from-secrets-from-secrets",
		// The admin API takes access away; the gateway reads the feed.
		Admin:          AdminConfig{Listen: lns[lnAdmin].Addr().String(), TokenFile: adminTokenFile},
		RevocationFeed: RevocationFeedConfig{Readers: []string{demoGatewayClient}},
		// The admin console, for the admins group: alice, not bob.
		Console: console.Config{Enabled: true, AdminGroups: []string{"admins"}},
		// The identity provider provisions its people over SCIM 2.0 and
		// can deactivate them there.
		SCIM: scimFile,
	}
	cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		closeAll()
		return fmt.Errorf("demo configuration: %w", err)
	}
	sec := Secrets{
		SessionSecret:         []byte(randomSecret()),
		UpstreamClientSecrets: map[string]string{"demo": upstreamSecret},
		ClientSecrets:         map[string]string{"demo-app": appSecret, demoGatewayClient: gatewaySecret},
		AdminToken:            []byte(adminToken),
		SCIM:                  scimRead,
	}

	g, gctx := errgroup.WithContext(ctx)
	// The identity provider must answer discovery before the broker starts.
	g.Go(func() error { return serveUntil(gctx, lns[lnIdP], idp, log) })
	inst, err := build(gctx, cfg, sec, log, upstreamTransport(), nil)
	if err != nil {
		for i, ln := range lns {
			if i != lnIdP { // serveUntil closes it
				_ = ln.Close()
			}
		}
		return errors.Join(err, g.Wait())
	}
	inst.adminLn = lns[lnAdmin] // inst.close closes it
	defer inst.close()
	app, err := demoapp.New(demoapp.Config{
		Issuer: brokerURL, ClientID: "demo-app", ClientSecret: appSecret, RedirectURL: appURL + "/callback",
		Scopes:         []string{"openid", "email", "profile", "groups", "offline_access"},
		Logger:         log,  // demoapp names itself as the component
		GatewayHeaders: true, // the gateway below replaces any client's X-Auth-Request-*
		HTTPClient:     &http.Client{Timeout: httpserver.UpstreamTimeout},
	})
	if err != nil {
		return fmt.Errorf("demo app: %w", err)
	}
	cookieKey := make([]byte, 32)
	_, _ = rand.Read(cookieKey)
	gw, err := newDemoGateway(gctx, brokerURL, appURL, url(lns[lnApp]), gatewaySecret, cookieKey)
	if err != nil {
		return fmt.Errorf("demo gateway: %w", err)
	}
	state, err := writeDemoState(demoState{Server: adminURL, TokenFile: adminTokenFile})
	if err != nil {
		log.WarnContext(ctx, "keyward admin will need --server and --token-file", "err", err)
	} else {
		defer removeDemoState(state, adminURL)
	}
	log.InfoContext(ctx, "admin API serving", "listen", adminURL, "token_file", adminTokenFile)
	g.Go(func() error { return inst.run(gctx, lns[lnBroker], cfg) })
	g.Go(func() error { return serveUntil(gctx, lns[lnApp], app.Handler(), log) })
	g.Go(func() error { return serveUntil(gctx, lns[lnGateway], gw, log) })
	g.Go(func() error { return gw.verifier.Run(gctx) }) // polls the revocation feed
	// The identity provider provisions alice and bob, as one with SCIM
	// provisioning on does (the broker's listener is open: the requests
	// wait for it to serve).
	scimIDs, err := demoProvision(gctx, brokerURL, scimToken)
	if err != nil {
		g.Go(func() error { return fmt.Errorf("demo SCIM provisioning: %w", err) }) // stops the others
		return g.Wait()
	}

	adminCmd := "keyward admin"
	if state == "" {
		adminCmd = fmt.Sprintf("keyward admin --server %s --token-file %s", adminURL, adminTokenFile)
	}
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
  The gateway's check:       curl -i -H "Authorization: Bearer $TOKEN" -H "X-Original-URI: /api/whoami" %s/oauth2/auth

  The admin console:         %s/console/  (sign in as alice; bob is refused)
  Take access away (in another terminal; keyward admin finds this demo):
                             %s deprovision --email bob@example.com
  The gateway reads Keyward's revocation feed every %s: bob's next API
  call is refused with 401. %s reinstate SUBJECT lets him sign in again.

  Or as the identity provider does (SCIM 2.0), deactivate bob:
                             curl -X PATCH -H "Authorization: Bearer $(cat %s)" -H "Content-Type: application/scim+json" -d '%s' %s/Users/%s
  Afterwards curl %s/api/whoami with bob's token answers 401 after
  one feed read (every %s); bob's browser is sent to sign in again and, after his password, shows
  Keyward's "Access removed" page. SCIM's active true, or admin reinstate,
  brings him back.

  Keyward (the broker):      %s/.well-known/openid-configuration
  Its signing keys (JWKS):   %s/keys
  Admin API:                 %s (token in %s)
  Demo identity provider:    %s
  Data folder:               %s

`, appURL, appURL, appURL, appURL, brokerURL, adminCmd, demoRevocationInterval, adminCmd,
		scimTokenFile, demoSCIMDeactivate, demoSCIMBase(brokerURL), scimIDs["bob"], appURL, demoRevocationInterval, brokerURL, brokerURL, adminURL, adminTokenFile, idpURL, dir)
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
