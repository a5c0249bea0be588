package broker

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"

	"github.com/keyward/keyward/keys"
)

// This file decides the algorithm of each client's ID tokens (and of its
// back-channel logout tokens, which OIDC Back-Channel Logout §2.4 signs like
// them): the client's idTokenSignedResponseAlg (the registration metadata
// id_token_signed_response_alg, OIDC Registration §2), else the key set's
// default algorithm (keys.algorithm, RS256 unless changed). Access tokens
// are signed as keys.accessTokenAlgorithm (composeFosite).

// CheckIDTokenAlgorithm says why alg cannot be a client's
// idTokenSignedResponseAlg when the key set holds keys of held, and how to
// fix it; nil when it can ("" is the key set's default). The one home of
// this rule, used by `keyward check-config` and by New.
func CheckIDTokenAlgorithm(alg string, held []string) error {
	supported := keys.SupportedAlgorithms()
	// An unsupported algorithm in held is the keys section's own problem.
	held = slices.DeleteFunc(slices.Clone(held), func(h string) bool { return !slices.Contains(supported, h) })
	switch {
	case alg == "" || slices.Contains(held, alg):
		return nil
	case !slices.Contains(supported, alg):
		return fmt.Errorf("%q is not supported; use %s (default: keys.algorithm)", alg, strings.Join(supported, ", "))
	case len(held) == 0:
		return nil
	}
	return fmt.Errorf("%q: the key set holds no %s key (keys.algorithm and keys.accessTokenAlgorithm give it %s); "+
		"use one of those, or set keys.accessTokenAlgorithm or keys.algorithm to %s", alg, alg, strings.Join(held, " and "), alg)
}

// idTokenAlgorithms picks the algorithm of a client's ID tokens.
type idTokenAlgorithms struct {
	keys    Keys
	clients *clientRegistry
}

func newIDTokenAlgorithms(k Keys, clients *clientRegistry) idTokenAlgorithms {
	return idTokenAlgorithms{keys: k, clients: clients}
}

// of returns the algorithm clientID's ID tokens are signed as.
func (a idTokenAlgorithms) of(clientID string) string {
	if c, ok := a.clients.get(clientID); ok && c.idTokenAlg != "" {
		return c.idTokenAlg
	}
	return a.keys.Algorithms()[0]
}

// ofRequest is of for the client of r.
func (a idTokenAlgorithms) ofRequest(r fosite.Requester) string {
	if c := r.GetClient(); c != nil {
		return a.of(c.GetID())
	}
	return a.keys.Algorithms()[0]
}

// idTokenStrategy is fosite's ID-token strategy, signing each ID token as
// its client's algorithm: one openid.DefaultStrategy (which keeps fosite's
// checks of max_age, prompt, nonce and auth_time) per algorithm.
type idTokenStrategy struct {
	keys  Keys
	algs  idTokenAlgorithms
	byAlg map[string]*openid.DefaultStrategy
}

var _ openid.OpenIDConnectTokenStrategy = (*idTokenStrategy)(nil)

func newIDTokenStrategy(k Keys, algs idTokenAlgorithms, fc *fosite.Config) *idTokenStrategy {
	s := &idTokenStrategy{keys: k, algs: algs, byAlg: map[string]*openid.DefaultStrategy{}}
	for _, alg := range k.Algorithms() {
		s.byAlg[alg] = &openid.DefaultStrategy{Signer: idTokenSigner{fositeSigner{keys: k, alg: alg}}, Config: fc}
	}
	return s
}

func (s *idTokenStrategy) GenerateIDToken(ctx context.Context, lifespan time.Duration, r fosite.Requester) (string, error) {
	alg := s.algs.ofRequest(r)
	st, ok := s.byAlg[alg]
	if !ok { // New refuses such a client; kept for safety
		return "", fosite.ErrServerError.WithDebug("the client's ID-token algorithm is not in the key set")
	}
	setATHash(ctx, r, s.keys.SigningKeyFor(alg).Algorithm)
	return st.GenerateIDToken(ctx, lifespan, r)
}

// setATHash recomputes the at_hash fosite put into r's ID-token claims
// (the authorization-code and refresh flows) with the hash of alg, the
// algorithm that signs the ID token: OIDC Core §3.1.3.6, the left half of
// the SHA-256 (RS256, ES256) or SHA-512 (EdDSA, as go-oidc checks it) of
// the access token. fosite picks the hash from an alg header in the
// session, which knows neither the client's algorithm nor the key that
// signs now; the access token is the response's, which fosite keeps in
// ctx (fosite.AccessResponseContextKey) while the token handlers run.
// (The hash depends only on the algorithm, so a rotation between this and
// the signature changes nothing, except in the instant an algorithm's
// first key starts signing after an upgrade to or from EdDSA.)
func setATHash(ctx context.Context, r fosite.Requester, alg string) {
	sess, ok := r.GetSession().(openid.Session)
	if !ok || sess.IDTokenClaims().AccessTokenHash == "" {
		return
	}
	resp, ok := ctx.Value(fosite.AccessResponseContextKey).(fosite.AccessResponder)
	if !ok || resp.GetAccessToken() == "" {
		return
	}
	sess.IDTokenClaims().AccessTokenHash = atHash(alg, resp.GetAccessToken())
}

// atHash is the at_hash of accessToken for an ID token signed as alg.
func atHash(alg, accessToken string) string {
	var sum []byte
	if alg == keys.EdDSA {
		h := sha512.Sum512([]byte(accessToken))
		sum = h[:]
	} else {
		h := sha256.Sum256([]byte(accessToken))
		sum = h[:]
	}
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}
