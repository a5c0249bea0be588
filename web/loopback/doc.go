// Package loopback is Keyward's one answer to "does this host only reach
// this machine?", which decides where plain http is allowed (issuers,
// redirect and logout URIs, the revocation feed) and where the admin API
// may listen without TLS.
//
// The rule: the name "localhost" (any letter case, RFC 6761 §6.3) and every
// IP literal in 127.0.0.0/8 or ::1, IPv4-mapped forms included. Not
// loopback: other names (foo.localhost, localhost.), zoned addresses (::1%lo),
// the unspecified address (0.0.0.0, ::, an empty host) and anything
// bracketed.
//
// It imports only the standard library, so web/verify may use it and stay
// a leaf (test/archtest checks it).
package loopback
