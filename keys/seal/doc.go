// Package seal is Keyward's one AES-256-GCM construction: the private
// signing keys at rest (keys), the upstream refresh tokens kept with a
// session (broker) and the browser-mode cookies (web/verify) are all sealed
// by it.
//
// A sealed message is nonce || ciphertext || tag: a random 12-byte nonce,
// then AES-256-GCM over the plaintext with caller-chosen additional data
// (the kid, the session id, the cookie name), so a sealed value cannot be
// moved to another record. The layout is a stored format: it must never
// change without a version.
//
// This package imports only the standard library, so web/verify stays a
// leaf (test/archtest holds it to that).
package seal
