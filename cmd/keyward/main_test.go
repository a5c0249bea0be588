package main

import (
	"testing"

	"github.com/keyward/keyward/store/postgres/pgtest"
)

// TestMain stops the throwaway PostgreSQL cluster that pgtest.DSN starts
// for this package's tests, when there is one.
func TestMain(m *testing.M) { pgtest.Main(m) }
