// Package field is the part of the configuration vocabulary that needs
// nothing but the standard library: Error, the one type of a configuration
// problem (the YAML field path and the fix), and CheckURL, the one rule for
// a configured URL (https, or http on a loopback host; a host; no user
// info or fragment; a query only where the caller allows one).
//
// cmd/config builds on it (config.FieldError is Error, config.Problems'
// CheckURL is CheckURL) and so does web/verify, which must stay a leaf free
// of YAML and of cmd/config, so one problem type and one URL rule serve
// both keyward.yaml and verify.yaml. It imports only the standard library
// and the loopback rule (web/loopback); test/archtest checks it.
package field
