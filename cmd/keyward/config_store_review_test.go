package main

import (
	"strings"
	"testing"
)

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
