package postgres

// SetBeforeCommit installs a hook called in every write transaction before
// COMMIT; an error it returns aborts that attempt as a database error would.
func (s *Store) SetBeforeCommit(fn func(op string) error) { s.beforeCommit = fn }

// MaxAttempts is how many times a write transaction runs at most.
const MaxAttempts = maxAttempts
