package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keyward/keyward/store"
	"github.com/keyward/keyward/store/postgres/pgtest"
)

func TestPostgresStoreConfig(t *testing.T) {
	tests := []struct {
		name  string
		store string
		// wantPaths are the fields Validate (then ResolveSecrets) names.
		wantPaths []string
		wantDSN   string
	}{
		{name: "inline dsn", store: "store: {type: postgres, dsn: 'postgres://kw:pw@db:5432/keyward', maxConns: 20}",
			wantDSN: "postgres://kw:pw@db:5432/keyward"},
		{name: "dsn from env", store: "store: {type: postgres, dsn: 'postgres://kw:${CORP}@db/keyward'}",
			wantDSN: "postgres://kw:corp-secret@db/keyward"},
		{name: "key=value dsn", store: "store: {type: postgres, dsn: 'host=db dbname=keyward user=kw'}",
			wantDSN: "host=db dbname=keyward user=kw"},
		{name: "neither", store: "store: {type: postgres}", wantPaths: []string{"store.dsnFile"}},
		{name: "both", store: "store: {type: postgres, dsn: 'host=db', dsnFile: /etc/keyward/dsn}", wantPaths: []string{"store.dsn"}},
		{name: "maxConns", store: "store: {type: postgres, dsn: 'host=db', maxConns: -1}", wantPaths: []string{"store.maxConns"}},
		{name: "unparsable dsn", store: "store: {type: postgres, dsn: 'postgres://kw:s3cret@db:notaport/keyward'}", wantPaths: []string{"store.dsn"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustParse(t, migrateYAML(tt.store))
			err := c.Validate()
			var sec Secrets
			if err == nil {
				sec, err = c.ResolveSecrets()
			}
			var paths []string
			if err != nil {
				paths = errorPaths(t, err)
				if strings.Contains(err.Error(), "s3cret") {
					t.Errorf("the error quotes the password: %v", err)
				}
			}
			if diff := cmp.Diff(tt.wantPaths, paths); diff != "" {
				t.Errorf("problem paths (-want +got):\n%s\nerr: %v", diff, err)
			}
			if sec.StoreDSN != tt.wantDSN {
				t.Errorf("StoreDSN = %q, want %q", sec.StoreDSN, tt.wantDSN)
			}
		})
	}
}

func TestPostgresDSNFile(t *testing.T) {
	dir := t.TempDir()
	f := writeFile(t, dir, "dsn", "postgres://kw:pw@db/keyward\n")
	c := mustParse(t, migrateYAML("store: {type: postgres, dsnFile: "+f+"}"))
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	sec, err := c.ResolveSecrets()
	if err != nil || sec.StoreDSN != "postgres://kw:pw@db/keyward" {
		t.Errorf("ResolveSecrets() = %q, %v; want the file's DSN", sec.StoreDSN, err)
	}
	if strings.Contains(sec.String(), "pw@") {
		t.Errorf("Secrets.String() = %q shows the DSN", sec.String())
	}

	c = mustParse(t, migrateYAML("store: {type: postgres, dsnFile: "+dir+"/missing}"))
	if _, err := c.ResolveSecrets(); err == nil || !strings.HasPrefix(err.Error(), "store.dsnFile: ") {
		t.Errorf("ResolveSecrets(missing dsnFile) = %v, want a store.dsnFile problem", err)
	}
}

func TestReadyAll(t *testing.T) {
	errDown := errors.New("down")
	ok := func(context.Context) error { return nil }
	bad := func(context.Context) error { return errDown }
	if readyAll() != nil || readyAll(nil, nil) != nil {
		t.Error("readyAll() without checks is not nil (always ready)")
	}
	if err := readyAll(nil, ok)(t.Context()); err != nil {
		t.Errorf("readyAll(ok) = %v", err)
	}
	if err := readyAll(ok, bad)(t.Context()); !errors.Is(err, errDown) {
		t.Errorf("readyAll(ok, bad) = %v, want %v", err, errDown)
	}
}

// migrateYAML is a small valid config with the given store, whose secrets
// are all inline.
func migrateYAML(store string) string {
	return `
issuer: https://sso.example.com/
sessionSecret: 0123456789abcdef0123456789abcdef
` + store + `
upstreams:
  - id: corp
    issuer: https://idp.example.com
    clientID: keyward
    clientSecret: corp-secret
clients:
  - id: cli
    redirectURIs: [http://127.0.0.1:8085/cb]
`
}

// runMigrate runs `keyward migrate -c path` and returns its output.
func runMigrate(t *testing.T, path string) (stdout, stderr string, err error) {
	t.Helper()
	var out, logs bytes.Buffer
	cmd := newRootCommand()
	cmd.SetArgs([]string{"migrate", "-c", path})
	cmd.SetOut(&out)
	cmd.SetErr(&logs)
	err = cmd.ExecuteContext(t.Context())
	return out.String(), logs.String(), err
}

// TestMigrateCommand runs `keyward migrate` against a fresh database twice:
// the first run applies every migration, the second finds nothing to do.
// Then the store serve opens on it passes its readiness ping.
func TestMigrateCommand(t *testing.T) {
	dsn := pgtest.DSN(t)
	dir := t.TempDir()
	path := writeFile(t, dir, "keyward.yaml", migrateYAML("store: {type: postgres, dsnFile: "+writeFile(t, dir, "dsn", dsn+"\n")+"}"))
	run := func() string {
		t.Helper()
		out, logs, err := runMigrate(t, path)
		if err != nil {
			t.Fatalf("keyward migrate = %v\n%s%s", err, out, logs)
		}
		if strings.Contains(out+logs, dsn) {
			t.Errorf("migrate printed the DSN")
		}
		return out
	}
	first := run()
	if !strings.Contains(first, "Connecting to PostgreSQL database ") || !strings.Contains(first, "Applied ") || !strings.Contains(first, "Done: ") {
		t.Errorf("first migrate printed %q, want progress and the applied migrations", first)
	}
	if second := run(); !strings.Contains(second, "up to date") || strings.Contains(second, "Applied ") {
		t.Errorf("second migrate printed %q, want up to date", second)
	}

	c, sec, err := loadConfigFile(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := buildStore(t.Context(), c.Store, sec.StoreDSN, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("buildStore() = %v", err)
	}
	defer st.Close()
	ready := readyAll(storeReady(st))
	if ready == nil {
		t.Fatal("the PostgreSQL store has no readiness check")
	}
	if err := ready(t.Context()); err != nil {
		t.Errorf("store readiness = %v, want a passing ping", err)
	}
	if _, err := st.GetKeySet(t.Context()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetKeySet on the migrated database = %v, want ErrNotFound", err)
	}
}

func TestMigrateRefusesBolt(t *testing.T) {
	path := writeFile(t, t.TempDir(), "keyward.yaml", migrateYAML("store: {path: /var/lib/keyward/keyward.db}"))
	if _, _, err := runMigrate(t, path); err == nil || !strings.Contains(err.Error(), "migrate is for store.type postgres") {
		t.Errorf("keyward migrate on bolt = %v, want a refusal naming store.type", err)
	}
}

func TestMigrateUnreachable(t *testing.T) {
	dir := t.TempDir()
	// Port 1 on loopback: nothing listens, the connection is refused at once.
	path := writeFile(t, dir, "keyward.yaml", migrateYAML("store: {type: postgres, dsn: 'postgres://kw:s3cret@127.0.0.1:1/keyward?connect_timeout=2'}"))
	_, _, err := runMigrate(t, path)
	if err == nil || !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "check store.dsn") {
		t.Errorf("keyward migrate, database down = %v, want store.ErrUnavailable with a hint", err)
	}
	if err != nil && strings.Contains(err.Error(), "s3cret") {
		t.Errorf("the error quotes the password: %v", err)
	}
}

// A postgres:// URL whose password holds an unencoded "@" parses: pgx takes
// the userinfo up to the first "@" and makes the rest of the password part
// of the host. The password's tail then showed in `keyward migrate`'s
// "Connecting to PostgreSQL … at <host>" line and in every connection
// error ("lookup retPW@db.internal: no such host"). The config must refuse
// it, naming the field and never the password.
func TestPostgresDSNPasswordWithAt(t *testing.T) {
	const tail = "Xq7retPW"
	dsn := "postgres://kw:s3c@" + tail + "@127.0.0.1:1/keyward?connect_timeout=2"
	path := writeFile(t, t.TempDir(), "keyward.yaml", migrateYAML("store: {type: postgres, dsn: '"+dsn+"'}"))
	out, logs, err := runMigrate(t, path)
	if err == nil {
		t.Fatalf("keyward migrate with an unencoded @ in the password = nil error, want a store.dsn problem")
	}
	if !strings.Contains(err.Error(), "store.dsn") || !strings.Contains(err.Error(), "%40") {
		t.Errorf("keyward migrate = %v, want a store.dsn problem saying to write @ as %%40", err)
	}
	for _, s := range []string{out, logs, err.Error()} {
		if strings.Contains(s, tail) {
			t.Errorf("the password's tail %q is shown in %q", tail, s)
		}
	}
}
