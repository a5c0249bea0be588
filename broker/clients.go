package broker

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/ory/fosite"
)

// Client is an OAuth client registered in the configuration.
type Client struct {
	ID   string
	Name string
	// Secret is the client secret; empty for public clients.
	Secret                 string
	Public                 bool
	RedirectURIs           []string
	PostLogoutRedirectURIs []string
	// GrantTypes. Default: authorization_code, refresh_token.
	GrantTypes []string
	// Scopes the client may request. Default: openid email profile groups offline_access.
	Scopes []string
	// Audiences the client may receive tokens for. Default: the client ID.
	Audiences []string
	// MayAct lists the subjects whose access tokens this client may present
	// as actor_token in a token exchange (RFC 8693 §4.1): the act claim.
	MayAct []string
	// BackchannelLogoutURI receives OIDC back-channel logout tokens when a
	// Keyward session ends (backchannel.go): https, or http on loopback;
	// no fragment. Empty: none are sent.
	BackchannelLogoutURI string
}

// client is the fosite view of a Client.
type client struct {
	fosite.DefaultClient
	name                   string
	postLogoutRedirectURIs []string
	mayAct                 []string
	backchannelLogoutURI   string
}

type clientRegistry struct{ byID map[string]*client }

func newClientRegistry(cs []Client) (*clientRegistry, error) {
	reg := &clientRegistry{byID: map[string]*client{}}
	var errs []error
	for i, c := range cs {
		if c.ID == "" {
			errs = append(errs, fmt.Errorf("clients[%d]: id is empty", i))
			continue
		}
		if _, dup := reg.byID[c.ID]; dup {
			errs = append(errs, fmt.Errorf("clients[%d]: id %q is used twice", i, c.ID))
			continue
		}
		if !c.Public && c.Secret == "" {
			errs = append(errs, fmt.Errorf("clients[%d]: confidential client %q has no secret", i, c.ID))
			continue
		}
		if c.BackchannelLogoutURI != "" {
			if err := checkBackchannelLogoutURI(c.BackchannelLogoutURI); err != nil {
				errs = append(errs, fmt.Errorf("clients[%d]: backchannel logout uri: %w", i, err))
				continue
			}
		}
		grants := c.GrantTypes
		if len(grants) == 0 {
			grants = []string{"authorization_code", "refresh_token"}
		}
		scopes := c.Scopes
		if len(scopes) == 0 {
			scopes = []string{"openid", "email", "profile", "groups", "offline_access"}
		}
		auds := c.Audiences
		if len(auds) == 0 {
			auds = []string{c.ID}
		}
		fc := &client{
			DefaultClient: fosite.DefaultClient{
				ID:            c.ID,
				RedirectURIs:  append([]string(nil), c.RedirectURIs...),
				GrantTypes:    grants,
				ResponseTypes: []string{"code"},
				Scopes:        scopes,
				Audience:      auds,
				Public:        c.Public,
			},
			name:                   c.Name,
			postLogoutRedirectURIs: c.PostLogoutRedirectURIs,
			mayAct:                 c.MayAct,
			backchannelLogoutURI:   c.BackchannelLogoutURI,
		}
		if fc.name == "" {
			fc.name = c.ID
		}
		if !c.Public {
			fc.Secret = hashSecret([]byte(c.Secret))
		}
		reg.byID[c.ID] = fc
	}
	return reg, errors.Join(errs...)
}

func (r *clientRegistry) get(id string) (*client, bool) {
	c, ok := r.byID[id]
	return c, ok
}

// BasicCredentials reads HTTP Basic client credentials, form-decoding
// both parts (RFC 6749 §2.3.1) as fosite does at /token. ok is false when
// there are none, the client id is empty or a part does not decode.
func BasicCredentials(r *http.Request) (id, secret string, ok bool) {
	rawID, rawSecret, ok := r.BasicAuth()
	if !ok || rawID == "" {
		return "", "", false
	}
	id, err1 := url.QueryUnescape(rawID)
	secret, err2 := url.QueryUnescape(rawSecret)
	if err1 != nil || err2 != nil {
		return "", "", false
	}
	return id, secret, true
}

// authenticateClient returns the confidential client id if secret is its
// secret. An unknown id and a public client fail too, after the same
// constant-time comparison, so the answer's timing does not tell which
// client ids exist.
func (b *Broker) authenticateClient(ctx context.Context, id, secret string) (*client, error) {
	c, ok := b.clients.get(id)
	known := ok && !c.Public
	hash := hashSecret([]byte{})
	if known {
		hash = c.Secret
	}
	err := (secretHasher{}).Compare(ctx, hash, []byte(secret))
	switch {
	case !ok:
		return nil, fmt.Errorf("client %q is unknown", id)
	case c.Public:
		return nil, fmt.Errorf("client %q is public and has no secret", id)
	case err != nil:
		return nil, fmt.Errorf("client %q: %w", id, err)
	}
	return c, nil
}

// secretHasher compares client secrets by SHA-256 in constant time.
// Keyward's client secrets come from files or the environment and are long
// random values, so a slow password hash (fosite's default bcrypt at cost 12
// costs about 250 ms per token request on two cores) buys nothing.
type secretHasher struct{}

func hashSecret(b []byte) []byte {
	h := sha256.Sum256(b)
	return h[:]
}

func (secretHasher) Hash(_ context.Context, data []byte) ([]byte, error) {
	return hashSecret(data), nil
}

func (secretHasher) Compare(_ context.Context, hash, data []byte) error {
	if subtle.ConstantTimeCompare(hash, hashSecret(data)) != 1 {
		return errors.New("secret mismatch")
	}
	return nil
}
