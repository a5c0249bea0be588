package verify

import (
	"crypto/fips140"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"errors"
	"fmt"
	"unsafe"

	"filippo.io/bigmod"
	"github.com/golang-jwt/jwt/v5"
)

// rsaPKCS1 checks RS256, RS384 and RS512 signatures (RSASSA-PKCS1-v1_5,
// RFC 8017 §8.2.2) with a modulus prepared once, when the key set loads.
// crypto/rsa.VerifyPKCS1v15 rebuilds that modulus from N on every call
// (about a fifth of a whole token check); the arithmetic is the same code,
// filippo.io/bigmod being the public copy of crypto/rsa's internal bigmod.
//
// The signature is never parsed: s^e mod n must equal, byte for byte, the
// encoded message built from the expected digest (RFC 8017 §8.2.2 step 3-4,
// as crypto/rsa does), so no padding-parsing forgery (Bleichenbacher 2006)
// can pass. Safe for concurrent use: nothing in it changes after
// newRSAPKCS1.
type rsaPKCS1 struct {
	n *bigmod.Modulus
	e uint
	k int // the modulus length in bytes; a signature must have exactly k
	// em holds, per hash, the expected encoded message without the digest:
	// 0x00 0x01 FF…FF 0x00 || DigestInfo, k - digest size bytes.
	em [numRSAHashes][]byte
}

// rsaHash indexes rsaPKCS1.em; only the hashes of RS256/384/512.
type rsaHash int

const (
	rsaSHA256 rsaHash = iota
	rsaSHA384
	rsaSHA512
	numRSAHashes
)

// digestInfo is the DER DigestInfo prefix of each hash (RFC 8017 §9.2 note 1).
var digestInfo = [numRSAHashes][]byte{
	rsaSHA256: {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20},
	rsaSHA384: {0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30},
	rsaSHA512: {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40},
}

var digestSize = [numRSAHashes]int{rsaSHA256: sha256.Size, rsaSHA384: sha512.Size384, rsaSHA512: sha512.Size}

// rsaHashOf returns the hash of an RSASSA-PKCS1-v1_5 algorithm; ok is false
// for every other algorithm (PS*, ES256, EdDSA).
func rsaHashOf(alg string) (h rsaHash, ok bool) {
	switch alg {
	case "RS256":
		return rsaSHA256, true
	case "RS384":
		return rsaSHA384, true
	case "RS512":
		return rsaSHA512, true
	}
	return 0, false
}

var errRSASignature = errors.New("rsa: signature does not verify")

// newRSAPKCS1 prepares pub for verification. It refuses what crypto/rsa
// would refuse at every verification (an even modulus, e < 2, an even e,
// e ≥ 2^31) and keys under minRSABits.
func newRSAPKCS1(pub *rsa.PublicKey) (*rsaPKCS1, error) {
	switch {
	case pub.N == nil || pub.N.BitLen() < minRSABits:
		return nil, fmt.Errorf("rsa key: modulus under %d bits", minRSABits)
	case pub.N.Bit(0) == 0:
		return nil, errors.New("rsa key: modulus is even")
	case pub.E < 2 || pub.E&1 == 0 || pub.E > 1<<31-1:
		return nil, fmt.Errorf("rsa key: exponent %d is not an odd number in [3, 2^31)", pub.E)
	}
	n, err := bigmod.NewModulus(pub.N.Bytes())
	if err != nil {
		return nil, fmt.Errorf("rsa key: %w", err)
	}
	r := &rsaPKCS1{n: n, e: uint(pub.E), k: n.Size()}
	for h := range numRSAHashes {
		// k ≥ 256 here, far above the 11 + len(T) bytes RFC 8017 §9.2 needs.
		em := make([]byte, r.k-digestSize[h])
		em[1] = 0x01
		ps := em[2 : len(em)-len(digestInfo[h])-1]
		for i := range ps {
			ps[i] = 0xff
		}
		copy(em[len(em)-len(digestInfo[h]):], digestInfo[h])
		r.em[h] = em
	}
	return r, nil
}

// verify checks sig over signed (the JWS signing input) with hash h.
func (r *rsaPKCS1) verify(h rsaHash, signed string, sig []byte) error {
	if len(sig) != r.k { // RFC 8017 §8.2.2 step 1
		return errRSASignature
	}
	s, err := bigmod.NewNat().SetBytes(sig, r.n)
	if err != nil { // s ≥ n
		return errRSASignature
	}
	em := bigmod.NewNat().ExpShortVarTime(s, r.e, r.n).Bytes(r.n)
	// No copy of signed: the hash functions neither keep nor change their input.
	msg := unsafe.Slice(unsafe.StringData(signed), len(signed))
	var digest [sha512.Size]byte
	switch h {
	case rsaSHA256:
		d := sha256.Sum256(msg)
		copy(digest[:], d[:])
	case rsaSHA384:
		d := sha512.Sum384(msg)
		copy(digest[:], d[:])
	default:
		digest = sha512.Sum512(msg)
	}
	// The whole encoded message is compared. Constant time is not needed
	// (nothing here is secret) and costs nothing.
	want := r.em[h]
	if subtle.ConstantTimeCompare(em[:len(want)], want)&
		subtle.ConstantTimeCompare(em[len(want):], digest[:digestSize[h]]) != 1 {
		return errRSASignature
	}
	return nil
}

// prepareRSA is newRSAPKCS1, except that in the FIPS 140-3 mode it returns
// nil and no error for a key that passes: crypto/rsa (the validated module,
// with its stricter key rules) then checks every signature.
func prepareRSA(pub *rsa.PublicKey) (*rsaPKCS1, error) {
	r, err := newRSAPKCS1(pub)
	if err != nil || fips140.Enabled() {
		return nil, err
	}
	return r, nil
}

// verifySignature checks a JWS signature with pk for alg, whose method
// comes from the allowlist; keyFits(alg, pk) must hold.
func verifySignature(alg string, method jwt.SigningMethod, signed string, sig []byte, pk publicKey) error {
	if h, ok := rsaHashOf(alg); ok && pk.rsa != nil {
		return pk.rsa.verify(h, signed, sig)
	}
	return method.Verify(signed, sig, pk.key)
}
