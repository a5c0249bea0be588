package bolt

// SetGCLimits lowers the bounds of garbage collection's steps for a test:
// at most chunk records removed per write transaction, at most scan records
// looked at per read transaction. Call it before the store is in use.
func SetGCLimits(s *Store, chunk, scan int) {
	s.gcChunk, s.gcScan = chunk, scan
}
