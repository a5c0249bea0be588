package broker

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/keyward/keyward/store"
)

// ActionRotateSCIMToken is the audit action of a provisioning token
// rotation (target: the upstream).
const ActionRotateSCIMToken = "scim.token.rotate"

// scimTokenID is the ID (and Name) of an upstream's store.SCIMToken record.
const scimTokenID = "bearer"

// scimTokens is the Attributes of a store.SCIMToken record: the SHA-256 of
// the current token and of the one before it, hex. Both are accepted, so
// the identity provider keeps working until it is given the new token; the
// next rotation drops the older.
type scimTokens struct {
	Current  string `json:"current"`
	Previous string `json:"previous,omitempty"`
}

// Authenticate reports whether token is a provisioning token of upstream:
// once the token was rotated (RotateToken), the current or the previous
// one from the store; before, the configured token. Comparisons are of
// SHA-256 hashes, in constant time.
func (p *Provisioning) Authenticate(ctx context.Context, upstream, token string) (bool, error) {
	e, ok := p.endpoints[upstream]
	if !ok || token == "" {
		return false, nil
	}
	h := sha256.Sum256([]byte(token))
	r, err := p.store.GetSCIMResource(ctx, upstream, store.SCIMToken, scimTokenID)
	if errors.Is(err, store.ErrNotFound) {
		return subtle.ConstantTimeCompare(h[:], e.tokenHash[:]) == 1, nil
	}
	if err != nil {
		return false, fmt.Errorf("get scim tokens: %w", err)
	}
	var t scimTokens
	if err := json.Unmarshal(r.Attributes, &t); err != nil {
		return false, fmt.Errorf("decode scim tokens: %w", err)
	}
	got := hex.EncodeToString(h[:])
	cur := subtle.ConstantTimeCompare([]byte(got), []byte(t.Current)) == 1
	prev := t.Previous != "" && subtle.ConstantTimeCompare([]byte(got), []byte(t.Previous)) == 1
	return cur || prev, nil
}

// RotateToken makes a new provisioning token for upstream and returns it
// (it is shown once and stored only as a hash). The token it replaces
// stays valid until the next rotation; the one before that stops working.
// The first rotation replaces the configured token (scim[].tokenFile),
// which the file no longer decides. An upstream without provisioning is
// ErrSCIMNotFound.
func (p *Provisioning) RotateToken(ctx context.Context, upstream, actor, reason string) (string, error) {
	e, err := p.endpoint(upstream)
	if err != nil {
		return "", err
	}
	token := randomString(32)
	h := sha256.Sum256([]byte(token))
	next := func(prev string) ([]byte, error) {
		return json.Marshal(scimTokens{Current: hex.EncodeToString(h[:]), Previous: prev})
	}
	now := p.now().UTC()
	_, err = p.store.UpdateSCIMResource(ctx, upstream, store.SCIMToken, scimTokenID, func(r store.SCIMResource) (store.SCIMResource, error) {
		var t scimTokens
		if err := json.Unmarshal(r.Attributes, &t); err != nil {
			return r, fmt.Errorf("decode scim tokens: %w", err)
		}
		b, err := next(t.Current)
		r.Attributes, r.UpdatedAt = b, now
		return r, err
	})
	if errors.Is(err, store.ErrNotFound) {
		b, merr := next(hex.EncodeToString(e.tokenHash[:]))
		if merr != nil {
			return "", fmt.Errorf("encode scim tokens: %w", merr)
		}
		err = p.store.CreateSCIMResource(ctx, store.SCIMResource{Upstream: upstream, Type: store.SCIMToken, ID: scimTokenID,
			Name: scimTokenID, Attributes: b, CreatedAt: now, UpdatedAt: now})
		if errors.Is(err, store.ErrConflict) { // a concurrent first rotation won; rotate after it
			return p.RotateToken(ctx, upstream, actor, reason)
		}
	}
	if err != nil {
		return "", fmt.Errorf("store scim tokens: %w", err)
	}
	p.log.InfoContext(ctx, "scim token rotated", "event", "scim_token_rotated", "upstream", upstream, "actor", actor)
	if err := p.admin.audit(ctx, now, actor, ActionRotateSCIMToken, upstream, reason); err != nil {
		return token, err
	}
	return token, nil
}
