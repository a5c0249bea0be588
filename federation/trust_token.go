package federation

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"strings"
	"time"
)

// SubjectToken is a compact JWS (a JWT) decoded once: its header, claims and
// signature, none of it verified yet. ParseSubjectToken makes one; the
// broker reads Issuer to route the token and hands it to
// Trust.VerifyParsed, so the token is decoded once per exchange.
type SubjectToken struct {
	signingInput string // header.payload, the signed bytes
	sig          []byte
	alg, kid     string
	issuer       string
	audience     []string
	claims       map[string]any // JSON numbers are json.Number
	exp          time.Time      // zero: absent
	nbf, iat     time.Time      // zero: absent
	jti          string
}

// Issuer is the token's unverified iss claim.
func (t *SubjectToken) Issuer() string { return t.issuer }

// ParseSubjectToken decodes raw without verifying it. It refuses tokens over
// 16 KiB, anything but a three-part compact JWS with base64url (unpadded)
// segments, a header without a string alg or with crit (no extension is
// supported), claims that are not a JSON object, and registered claims of
// the wrong type: iss, sub and jti must be strings, aud a string or an array
// of strings, exp, nbf and iat JSON numbers. The error never contains the
// token.
func ParseSubjectToken(raw string) (*SubjectToken, error) {
	if len(raw) > maxSubjectToken {
		return nil, errors.New("larger than 16 KiB")
	}
	h, rest, ok := strings.Cut(raw, ".")
	if !ok {
		return nil, errors.New("not a compact JWS: want three segments")
	}
	p, s, ok := strings.Cut(rest, ".")
	if !ok || strings.IndexByte(s, '.') >= 0 {
		return nil, errors.New("not a compact JWS: want three segments")
	}
	t := &SubjectToken{signingInput: raw[:len(h)+1+len(p)]}

	hb, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		return nil, errors.New("header: not base64url")
	}
	// A map, not a struct: header names are case-sensitive.
	var hdr map[string]any
	if err := json.Unmarshal(hb, &hdr); err != nil || hdr == nil {
		return nil, errors.New("header: not a JSON object")
	}
	alg, ok := hdr["alg"].(string)
	if !ok || alg == "" {
		return nil, errors.New("header: no string alg")
	}
	kid, ok := hdr["kid"].(string)
	if _, present := hdr["kid"]; present && !ok {
		return nil, errors.New("header: kid is not a string")
	}
	if _, present := hdr["crit"]; present {
		return nil, errors.New("header: crit is not supported")
	}
	t.alg, t.kid = alg, kid

	if t.sig, err = base64.RawURLEncoding.DecodeString(s); err != nil {
		return nil, errors.New("signature: not base64url")
	}
	pb, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil {
		return nil, errors.New("claims: not base64url")
	}
	dec := json.NewDecoder(bytes.NewReader(pb))
	dec.UseNumber()
	if err := dec.Decode(&t.claims); err != nil || t.claims == nil {
		return nil, errors.New("claims: not a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("claims: data after the JSON object")
	}
	if err := t.registered(); err != nil {
		return nil, fmt.Errorf("claims: %w", err)
	}
	return t, nil
}

// registered reads the registered claims out of t.claims, checking types.
func (t *SubjectToken) registered() error {
	var err error
	for _, name := range [...]string{"iss", "sub", "jti"} {
		v, ok := t.claims[name]
		if !ok {
			continue
		}
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("%s: not a string", name)
		}
		switch name {
		case "iss":
			t.issuer = s
		case "jti":
			t.jti = s
		}
	}
	switch a := t.claims["aud"].(type) {
	case nil:
	case string:
		t.audience = []string{a}
	case []any:
		t.audience = make([]string, len(a))
		for i, v := range a {
			s, ok := v.(string)
			if !ok {
				return errors.New("aud: not a string or an array of strings")
			}
			t.audience[i] = s
		}
	default:
		return errors.New("aud: not a string or an array of strings")
	}
	if t.exp, err = numericDate(t.claims, "exp"); err != nil {
		return err
	}
	if t.nbf, err = numericDate(t.claims, "nbf"); err != nil {
		return err
	}
	t.iat, err = numericDate(t.claims, "iat")
	return err
}

// numericDate reads a NumericDate claim as golang-jwt does (whole seconds);
// zero when absent.
func numericDate(claims map[string]any, name string) (time.Time, error) {
	v, ok := claims[name]
	if !ok {
		return time.Time{}, nil
	}
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, fmt.Errorf("%s: not a number", name)
	}
	f, err := n.Float64()
	if err != nil || math.IsInf(f, 0) || math.Abs(f) > 1<<62 {
		return time.Time{}, fmt.Errorf("%s: not a usable number", name)
	}
	return time.Unix(int64(f), 0).UTC(), nil
}

// verifySignature checks sig over signingInput with key for alg: the key
// type must be the one alg names (RSA for RS* and PS*, the alg's curve for
// ES*, Ed25519 for EdDSA), as go-jose requires. Symmetric and none
// algorithms are never accepted.
func verifySignature(alg string, key any, signingInput string, sig []byte) error {
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		pub, ok := key.(*rsa.PublicKey)
		if !ok {
			return errors.New("key is not an RSA public key")
		}
		h, digest := hashFor(alg[2:], signingInput)
		if alg[0] == 'R' {
			return rsa.VerifyPKCS1v15(pub, h, digest, sig)
		}
		return rsa.VerifyPSS(pub, h, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto})
	case "ES256", "ES384", "ES512":
		pub, ok := key.(*ecdsa.PublicKey)
		if !ok {
			return errors.New("key is not an ECDSA public key")
		}
		var curve elliptic.Curve
		var size int
		switch alg {
		case "ES256":
			curve, size = elliptic.P256(), 32
		case "ES384":
			curve, size = elliptic.P384(), 48
		default:
			curve, size = elliptic.P521(), 66
		}
		if pub.Curve != curve {
			return errors.New("key's curve does not match alg")
		}
		if len(sig) != 2*size {
			return errors.New("signature has the wrong size")
		}
		_, digest := hashFor(alg[2:], signingInput)
		r, s := new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])
		if !ecdsa.Verify(pub, digest, r, s) {
			return errors.New("signature does not verify")
		}
		return nil
	case "EdDSA":
		pub, ok := key.(ed25519.PublicKey)
		if !ok || len(pub) != ed25519.PublicKeySize {
			return errors.New("key is not an Ed25519 public key")
		}
		if !ed25519.Verify(pub, []byte(signingInput), sig) {
			return errors.New("signature does not verify")
		}
		return nil
	}
	return fmt.Errorf("alg %q is not supported", clean(alg, 20))
}

// hashFor hashes in with SHA-256, -384 or -512 for bits "256", "384", "512".
func hashFor(bits, in string) (crypto.Hash, []byte) {
	switch bits {
	case "384":
		d := sha512.Sum384([]byte(in))
		return crypto.SHA384, d[:]
	case "512":
		d := sha512.Sum512([]byte(in))
		return crypto.SHA512, d[:]
	}
	d := sha256.Sum256([]byte(in))
	return crypto.SHA256, d[:]
}
