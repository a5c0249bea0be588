package verify

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

var (
	errNoIDToken = invalidToken("no ID token in the token response", nil)
	errNonce     = invalidToken("ID token nonce mismatch", nil)
	errAZP       = invalidToken("ID token azp mismatch", nil)
)

// verifyIDToken checks an ID token from the callback (OIDC Core §3.1.3.7):
// signature with the Verifier's keys and algorithms, exact iss, aud holding
// the client (and azp naming it when aud has several), exp, and nonce.
func (b *Browser) verifyIDToken(ctx context.Context, token, nonce string) error {
	if token == "" {
		return errNoIDToken
	}
	v := b.v
	if len(token) > v.maxBytes {
		return errTooLarge
	}
	dot1, dot2 := strings.IndexByte(token, '.'), strings.LastIndexByte(token, '.')
	if dot1 <= 0 || dot2 <= dot1+1 || dot2 == len(token)-1 || strings.IndexByte(token[dot1+1:dot2], '.') >= 0 {
		return errMalformed
	}
	hb, err := b64.DecodeString(token[:dot1])
	if err != nil {
		return errBadHeader
	}
	var h header
	if err := json.Unmarshal(hb, &h); err != nil {
		return errBadHeader
	}
	method, ok := v.methods[h.Alg]
	switch {
	case !ok:
		return errAlgorithm
	case h.Crit != nil:
		return errCrit
	case h.Kid == "":
		return errNoKID
	}
	sig, err := b64.DecodeString(token[dot2+1:])
	if err != nil {
		return errMalformed
	}
	pk, err := v.keys.get(ctx, h.Kid)
	if err != nil {
		return err
	}
	if !keyFits(h.Alg, pk) {
		return errKeyMismatch
	}
	if err := verifySignature(h.Alg, method, token[:dot2], sig, pk); err != nil {
		return errSignature
	}
	pb, err := b64.DecodeString(token[dot1+1 : dot2])
	if err != nil {
		return errBadPayload
	}
	var raw map[string]any
	if err := json.Unmarshal(pb, &raw); err != nil || raw == nil {
		return errBadPayload
	}
	c, err := claimsFromMap(raw)
	if err != nil {
		return err
	}
	now := v.now()
	switch {
	case c.Issuer != v.issuer:
		return errIssuer
	case !contains(c.Audience, b.cfg.ClientID):
		return errAudience
	case c.ExpiresAt.IsZero():
		return errNoExp
	case !now.Before(c.ExpiresAt.Add(v.leeway)):
		return invalidToken("ID token expired", &ExpiredError{Expiry: c.ExpiresAt})
	}
	if azp, _ := raw["azp"].(string); len(c.Audience) > 1 && azp != b.cfg.ClientID {
		return errAZP
	}
	got, _ := raw["nonce"].(string)
	if subtle.ConstantTimeCompare([]byte(got), []byte(nonce)) != 1 || nonce == "" {
		return errNonce
	}
	return nil
}

// refreshReuse is how long a refresh's result answers for the refresh token
// it consumed: requests a browser sends in parallel with the same cookie
// share one refresh instead of presenting a rotated token twice.
const refreshReuse = 30 * time.Second

// refreshGroup runs one refresh per refresh token and remembers the result
// for refreshReuse.
type refreshGroup struct {
	mu    sync.Mutex
	calls map[[32]byte]*refreshCall
}

type refreshCall struct {
	done  chan struct{}
	tok   *oauth2.Token // written before done is closed
	err   error
	start time.Time
}

func (g *refreshGroup) do(ctx context.Context, refreshToken string, now time.Time,
	fn func(context.Context) (*oauth2.Token, error),
) (*oauth2.Token, error) {
	key := sha256.Sum256([]byte(refreshToken))
	g.mu.Lock()
	if g.calls == nil {
		g.calls = map[[32]byte]*refreshCall{}
	}
	for k, c := range g.calls { // few entries: one per renewal in the last 30s
		if now.Sub(c.start) > refreshReuse {
			select {
			case <-c.done:
				delete(g.calls, k)
			default:
			}
		}
	}
	c, ok := g.calls[key]
	if !ok {
		c = &refreshCall{done: make(chan struct{}), start: now}
		g.calls[key] = c
		go func() {
			// The refresh outlives a caller that gives up, so the others
			// still get its result.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
			defer cancel()
			c.tok, c.err = fn(rctx)
			close(c.done)
		}()
	}
	g.mu.Unlock()
	select {
	case <-c.done:
		return c.tok, c.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
