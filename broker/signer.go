package broker

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"

	josev3 "github.com/go-jose/go-jose/v3"
	fjwt "github.com/ory/fosite/token/jwt"

	"github.com/keyward/keyward/keys"
)

// signer is what the broker needs from the key manager to sign and to
// check its own tokens.
type signer interface {
	// SignAs signs as alg, one of the key set's algorithms (keys.Manager).
	SignAs(ctx context.Context, alg string, claims map[string]any, header map[string]any) (string, error)
	PublicKey(kid string) (keys.Key, bool)
}

// fositeSigner adapts the rotating key manager to fosite's jwt.Signer. It
// signs as alg (the access-token algorithm, or an ID-token algorithm), and
// it is kid-aware: Decode and Validate look the key up by the token's kid,
// whatever its algorithm, so a token signed by a retired (still published)
// key keeps verifying — unlike fosite's DefaultSigner, which only knows the
// current key. Decoding needs no alg.
type fositeSigner struct {
	keys signer
	alg  string
}

var _ fjwt.Signer = fositeSigner{}

func (s fositeSigner) Generate(ctx context.Context, claims fjwt.MapClaims, header fjwt.Mapper) (string, string, error) {
	h := map[string]any{}
	if header != nil {
		for k, v := range header.ToMap() {
			h[k] = v
		}
	}
	token, err := s.keys.SignAs(ctx, s.alg, claims, h)
	if err != nil {
		return "", "", fmt.Errorf("sign token: %w", err)
	}
	i := strings.LastIndexByte(token, '.')
	return token, token[i+1:], nil
}

func (s fositeSigner) Validate(ctx context.Context, token string) (string, error) {
	if _, err := s.Decode(ctx, token); err != nil {
		return "", err
	}
	return s.GetSignature(ctx, token)
}

func (s fositeSigner) Decode(_ context.Context, token string) (*fjwt.Token, error) {
	return fjwt.ParseWithClaims(token, fjwt.MapClaims{}, func(t *fjwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		k, ok := s.keys.PublicKey(kid)
		if !ok {
			return nil, &fjwt.ValidationError{Errors: fjwt.ValidationErrorUnverifiable, Inner: errors.New("unknown kid")}
		}
		if string(t.Method) != k.Algorithm {
			return nil, &fjwt.ValidationError{Errors: fjwt.ValidationErrorSignatureInvalid, Inner: errors.New("algorithm does not match the key")}
		}
		// A *JSONWebKey keeps fosite from taking the address of an
		// ed25519.PublicKey, which go-jose does not accept.
		return &josev3.JSONWebKey{Key: k.Public, KeyID: k.ID, Algorithm: k.Algorithm}, nil
	})
}

func (s fositeSigner) GetSignature(_ context.Context, token string) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", errors.New("header, body and signature must all be set")
	}
	return parts[2], nil
}

func (s fositeSigner) Hash(_ context.Context, in []byte) ([]byte, error) {
	h := sha256.Sum256(in)
	return h[:], nil
}

func (s fositeSigner) GetSigningMethodLength(context.Context) int { return sha256.Size }
