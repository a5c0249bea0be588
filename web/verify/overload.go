package verify

// Overload reports the signature verifications in flight now and how many
// were refused with ErrOverloaded since start (Config.MaxConcurrentVerifications).
func (v *Verifier) Overload() (inFlight int, refused uint64) {
	return v.verifying.InFlight(), v.verifying.Refused()
}
