package bolt

// SetFailDeprovisionAfter installs the test hook of Deprovision: f is called
// after each step of its transaction has written ("subject", "sessions",
// "grants", "revocation", "audit"), and an error it returns aborts the
// transaction. nil removes it. Call it before the store is in use.
func SetFailDeprovisionAfter(s *Store, f func(step string) error) {
	s.failDeprovisionAfter = f
}
