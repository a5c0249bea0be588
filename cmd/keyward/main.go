// Command keyward is an OIDC-aware token-exchange broker: it federates to
// upstream identity providers and issues its own short-lived JWTs.
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCommand().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "keyward:", err)
		os.Exit(exitCode(err))
	}
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "keyward",
		Short: "Keyward: an OIDC broker that issues its own short-lived JWTs",
		Long: `Keyward federates to your identity providers (any OIDC issuer) through the
authorization-code flow, then issues its own short-lived JWTs signed with
rotating keys, so gateways and services can verify them offline.

Start with "keyward demo" to see the whole flow on this machine.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServeCommand(), newVerifyCommand(), newCheckConfigCommand(), newDemoCommand(), newAdminCommand(), newMigrateCommand(), newCompactCommand(), newReplaceKeysCommand(), newVersionCommand())
	refuseUnknownSubcommands(root)
	return root
}

func newServeCommand() *cobra.Command {
	var path, listen string
	cmd := &cobra.Command{
		Use:   "serve -c keyward.yaml",
		Short: "Run the broker",
		Long: `Run the broker: the OpenID Provider endpoints (discovery, /keys, /authorize,
/login/{upstream}, /callback, /token, /userinfo, /revoke, /introspect,
/end_session, /end_session/confirm, /logout/upstream-done,
/backchannel_logout/{upstream}), the revocation feed (/revocations), the
probes (/healthz, /readyz), key rotation and the collection of expired
records; with metrics.listen, Prometheus metrics; with admin.tokenFile,
the admin API on admin.listen; and with OTEL_EXPORTER_OTLP_ENDPOINT set,
OpenTelemetry traces over OTLP/HTTP (docs/deployment.md, "Tracing"). With store type postgres it first applies
pending schema migrations. Stops cleanly on SIGINT or SIGTERM.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, sec, err := loadConfigFile(path)
			if err != nil {
				return err
			}
			if listen != "" {
				cfg.Listen = listen
			}
			return serve(cmd.Context(), cfg, sec, os.Stderr)
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "keyward.yaml", "path of the configuration file")
	cmd.Flags().StringVar(&listen, "listen", "", "override the config's listen address (host:port)")
	return cmd
}

func newCheckConfigCommand() *cobra.Command {
	var path string
	var probe bool
	cmd := &cobra.Command{
		Use:   "check-config -c keyward.yaml [--probe]",
		Short: "Validate a configuration file and exit",
		Long: `Validate a configuration file: its shape, every field, and the secret files it
names. Every problem is listed at once, each naming the field and the fix.
A secret file that its group or others can read gets a warning with the fix
(chmod 600), which does not fail the check. Exits 0 when the file is good, 1
otherwise. Makes no network calls.

With --probe it then contacts every upstream, as the server would (same HTTP
transport, 10s each), and prints a line per upstream and its findings:
  error    discovery or JWKS unreachable; issuer differs from discovery's;
           multi-tenant (templated) Entra ID issuer without tenants; no
           authorization_endpoint, token_endpoint or jwks_uri, an empty
           JWKS, or no key for the advertised algorithms; (type: github)
           the GitHub API root unreachable or not answering 200 or 401
  warning  a scope not in scopes_supported; no end_session_endpoint and no
           logoutURL (cognito: no logoutURL); a trust: issuer unreachable
           or inconsistent
  info     the callback URL to register at the provider
Exits 1 when the file or the probe has an error; warnings do not count.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if probe {
				client := &http.Client{Transport: upstreamTransport()}
				return checkConfigProbe(cmd.Context(), path, cmd.OutOrStdout(), client, probeTimeout)
			}
			return checkConfig(path, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "keyward.yaml", "path of the configuration file")
	cmd.Flags().BoolVar(&probe, "probe", false, "also fetch every upstream's discovery document and JWKS (GitHub: its API root) and report problems")
	return cmd
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "keyward", version)
		},
	}
}
