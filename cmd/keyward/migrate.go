package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/spf13/cobra"

	"github.com/keyward/keyward/store/postgres"
)

func newMigrateCommand() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "migrate -c keyward.yaml",
		Short: "Apply the PostgreSQL schema migrations and exit",
		Long: `Bring the PostgreSQL database of the configuration (store.type postgres) up to
the schema this keyward needs, then exit. The migrations are embedded in the
binary; each runs in its own transaction, and a PostgreSQL advisory lock
makes a second migrate (or a replica starting) wait, then find nothing to do.

"keyward serve" applies pending migrations itself at start. Run migrate
alone when the replicas' database user may not change the schema, or as
an init step before a rolling upgrade (a Kubernetes initContainer or Job), so
that new replicas start on a ready schema. A keyward refuses to start on a
database whose schema is newer than it knows: never roll back to an older
release after migrating.

Prints each migration applied, or that the schema was already current.
Exits 0 on success, 1 on any problem (the connection string is never
printed).`,
		Example: `  keyward migrate -c /etc/keyward/keyward.yaml`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return migrate(cmd.Context(), path, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "keyward.yaml", "path of the configuration file")
	return cmd
}

// migrate implements `keyward migrate`: progress and the migrations applied
// go to out, the store's log (warnings only) to logOut.
func migrate(ctx context.Context, path string, out, logOut io.Writer) error {
	cfg, sec, err := loadConfigFile(path)
	if err != nil {
		return err
	}
	if _, ok := cfg.Store.Backend.(*postgres.Options); !ok {
		return fmt.Errorf("%s: store.type is %s: migrate is for store.type postgres (bolt needs no migrations)", path, cfg.Store.Type)
	}
	fmt.Fprintf(out, "Connecting to PostgreSQL %s…\n", describeDSN(sec.StoreDSN))
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelWarn}))
	applied, err := postgres.Migrate(ctx, sec.StoreDSN, log)
	if err != nil {
		return fmt.Errorf("migrate: %w%s", err, unreachableHint(err))
	}
	for _, name := range applied {
		fmt.Fprintf(out, "Applied %s\n", name)
	}
	if len(applied) == 0 {
		fmt.Fprintf(out, "The schema is up to date (version %d); nothing to apply.\n", postgres.SchemaVersion)
		return nil
	}
	fmt.Fprintf(out, "Done: %d %s applied; the schema is at version %d.\n", len(applied), plural(len(applied), "migration"), postgres.SchemaVersion)
	return nil
}

// describeDSN names the server and database of dsn, never its password:
// "database keyward at db.internal:5432 as keyward".
func describeDSN(dsn string) string {
	c, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return "(unparsable connection string)"
	}
	return "database " + c.Database + " at " + c.Host + ":" + strconv.Itoa(int(c.Port)) + " as " + c.User
}
