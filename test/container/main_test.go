package container

import (
	"testing"

	"github.com/keyward/keyward/store/postgres/pgtest"
)

// TestMain stops the throwaway PostgreSQL cluster that pgtest.DSN starts
// for the migrate test, when there is one.
func TestMain(m *testing.M) { pgtest.Main(m) }
