// Command keyward is an OIDC-aware token-exchange broker: it federates to
// upstream identity providers and issues its own short-lived JWTs.
package main

import (
	"context"
	"fmt"
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
	root.AddCommand(newServeCommand(), newVerifyCommand(), newCheckConfigCommand(), newDemoCommand(), newAdminCommand(), newVersionCommand())
	return root
}

func newServeCommand() *cobra.Command {
	var path, listen string
	cmd := &cobra.Command{
		Use:   "serve -c keyward.yaml",
		Short: "Run the broker",
		Long: `Run the broker: the OpenID Provider endpoints (discovery, /keys, /authorize,
/callback, /token, /userinfo, /revoke, /introspect), key rotation and the
collection of expired records. Stops cleanly on SIGINT or SIGTERM.`,
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
	cmd := &cobra.Command{
		Use:   "check-config -c keyward.yaml",
		Short: "Validate a configuration file and exit",
		Long: `Validate a configuration file: its shape, every field, and the secret files it
names. Every problem is listed at once, each naming the field and the fix.
Exits 0 when the file is good, 1 otherwise. Makes no network calls.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return checkConfig(path, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "keyward.yaml", "path of the configuration file")
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
