package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyward/keyward/store/bolt"
)

func newCompactCommand() *cobra.Command {
	var path string
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "compact -c keyward.yaml",
		Short: "Rewrite the bbolt store file without its free space, then exit",
		Long: `Rewrite the bbolt file of the configuration (store.type bolt, store.path)
without its free pages, and exit. bbolt never gives space back to the file
system: pages freed by expired tokens and sessions are reused, but the file
keeps the size of its busiest moment. Compact copies every record into a
new file next to it (store.path + ".compact"), flushes and checks the copy
(bbolt's consistency check, and as many keys in every bucket as the
original), gives it the original's mode and owner, and renames it over the
original: an atomic swap. Until that rename succeeds the original is
untouched; on any error the copy is removed, and so on Ctrl-C, which takes
effect when the copy is written, before the swap. The directory needs free
space for the copy (about the live data, shown as "in use").

The broker must be stopped: compact takes the file's lock, as "keyward
serve" does, and refuses when it cannot get it within --wait. Stop keyward,
run compact, start keyward again. It prints the sizes, progress every
second while it copies, and the result. Exits 0 on success, 1 on any
problem (the file is then unchanged).

For PostgreSQL (store.type postgres) nothing is needed: autovacuum reuses
the space of deleted rows.`,
		Example: `  systemctl stop keyward
  keyward compact -c /etc/keyward/keyward.yaml
  systemctl start keyward`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return compact(cmd.Context(), path, wait, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "keyward.yaml", "path of the configuration file")
	cmd.Flags().DurationVar(&wait, "wait", time.Second, "how long to wait for the file's lock before giving up")
	return cmd
}

// compact implements `keyward compact`: sizes, progress and the result go
// to out.
func compact(ctx context.Context, path string, wait time.Duration, out io.Writer) error {
	cfg, _, err := loadConfigFile(path)
	if err != nil {
		return err
	}
	bo, ok := cfg.Store.Backend.(*bolt.Options)
	if !ok {
		return fmt.Errorf("%s: store.type is %s: compact is for store.type bolt (PostgreSQL reuses deleted rows' space by itself)", path, cfg.Store.Type)
	}
	if wait <= 0 {
		return usageError("--wait must be positive, e.g. --wait 10s")
	}
	fmt.Fprintf(out, "Compacting %s…\n", bo.Path)
	start := time.Now()
	announced := false
	res, err := bolt.Compact(ctx, bo.Path, bolt.CompactOptions{
		Timeout: wait,
		Progress: func(p bolt.CompactProgress) {
			if !announced {
				fmt.Fprintf(out, "  in use: about %s\n", mib(p.InUse))
				announced = true
			}
			pct := 100.0
			if p.InUse > 0 {
				pct = min(100, 100*float64(p.Written)/float64(p.InUse))
			}
			fmt.Fprintf(out, "  copied %s (%.0f%%) after %s\n", mib(p.Written), pct, time.Since(start).Round(100*time.Millisecond))
		},
	})
	if err != nil {
		return fmt.Errorf("compact: %w", err)
	}
	fmt.Fprintf(out, "Done: %s → %s (%s fewer), %d keys, in %s.\n", mib(res.Before), mib(res.After),
		mib(res.Before-res.After), res.Records, time.Since(start).Round(10*time.Millisecond))
	return nil
}

// mib formats a size in bytes as MiB with one decimal.
func mib(n int64) string {
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
