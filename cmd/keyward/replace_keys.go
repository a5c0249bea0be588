package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keyward/keyward/keys"
	"github.com/keyward/keyward/store"
)

// unreadableKeysHint is what serve says when the stored private keys open
// with no configured key-encryption key: the two ways out.
const unreadableKeysHint = "Keyward does not start with signing keys it cannot open. Either restore the previous session secret " +
	"(and keys.encryptionKeyFile, if it was set or changed) on every replica, or, if the change was meant, run " +
	"`keyward replace-keys -c` with this configuration once: it retires those keys and signs with new ones (see docs/deployment.md)"

func newReplaceKeysCommand() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "replace-keys -c keyward.yaml",
		Short: "Retire signing keys that can no longer be opened, and create new ones",
		Long: `Private signing keys are sealed at rest with a key derived from the session
secret (or with keys.encryptionKeyFile). After the session secret (or that
file) changed, the stored keys no longer open and "keyward serve" refuses to
start. If the change was meant, run this once, with the new configuration:
the current and next keys that no configured key opens are retired (their
public keys stay published until the tokens they signed have expired) and a
new current and next key are created, sealed with the key in force. The new
key signs at once, so a verifier that cached the key set fetches it again on
the first token with the new key id.

Keys that open are left alone: running it again, or on a healthy key set,
changes nothing. Stop the broker first (with bolt it holds the file lock).
Exits 0 on success, 1 on any problem.`,
		Example: `  keyward replace-keys -c /etc/keyward/keyward.yaml`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return replaceKeys(cmd.Context(), path, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "keyward.yaml", "path of the configuration file")
	return cmd
}

// replaceKeys implements `keyward replace-keys`: the outcome goes to out,
// the store's and the key manager's warnings to logOut.
func replaceKeys(ctx context.Context, path string, out, logOut io.Writer) error {
	cfg, sec, err := loadConfigFile(path)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelError}))
	st, err := buildStore(ctx, cfg.Store, sec.StoreDSN, log)
	if err != nil {
		return err
	}
	defer func() { _ = st.Close() }()
	before, err := st.GetKeySet(ctx)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("read key set: %w", err)
	}
	kc := keysConfig(cfg, sec, st, log)
	kc.ReplaceUnreadable = true
	km, err := keys.New(kc)
	if err != nil {
		return err
	}
	if err := km.Load(ctx); err != nil {
		return err
	}
	var replaced []string
	for _, k := range km.Keys() {
		if k.State == store.KeyRetired && slices.ContainsFunc(before.Keys, func(b store.SigningKey) bool {
			return b.ID == k.ID && b.State != store.KeyRetired
		}) {
			replaced = append(replaced, k.ID)
		}
	}
	cur := km.SigningKey()
	if len(replaced) == 0 {
		fmt.Fprintf(out, "The signing keys open with the key-encryption key in force; nothing replaced. Signing with %s (%s).\n", cur.ID, cur.Algorithm)
		return nil
	}
	fmt.Fprintf(out, "Retired %d unreadable signing %s (%s); they stay published until the tokens they signed expire.\n",
		len(replaced), plural(len(replaced), "key"), strings.Join(replaced, ", "))
	fmt.Fprintf(out, "Now signing with the new key %s (%s). Start keyward serve.\n", cur.ID, cur.Algorithm)
	return nil
}
