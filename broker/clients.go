package broker

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"github.com/keyward/keyward/cmd/config"
	"net/http"
	"net/url"
	"strings"

	"github.com/ory/fosite"

	"github.com/keyward/keyward/web/loopback"
)

// Client is an OAuth client registered in the configuration. It is also
// one entry of keyward.yaml's clients (yaml tags; SetDefaults and
// ValidateConfig in client_config.go).
type Client struct {
	ID   string `yaml:"id"`
	Name string `yaml:"name,omitempty"` // shown on pages. Default: ID.
	// Secret is the client secret; empty for public clients. In YAML it is
	// inline (normally "${ENV_VAR}"), or the content of SecretFile, which
	// cmd reads (secrets resolve in one place) and then clears.
	Secret     string `yaml:"secret,omitempty"`
	SecretFile string `yaml:"secretFile,omitempty"`
	// Public marks a client without a secret (PKCE only). Not in YAML: a
	// client there is public when it has neither secret nor secretFile.
	Public bool `yaml:"-"`
	// RedirectURIs are matched exactly (CheckRedirectURI holds the rule);
	// required with authorization_code.
	RedirectURIs []string `yaml:"redirectURIs,omitempty"`
	// PostLogoutRedirectURIs follow the same rule as RedirectURIs.
	PostLogoutRedirectURIs []string `yaml:"postLogoutRedirectURIs,omitempty"`
	// GrantTypes, from GrantTypes. Default: DefaultGrantTypes.
	GrantTypes []string `yaml:"grantTypes,omitempty"`
	// Scopes the client may request. Default: DefaultClientScopes.
	Scopes []string `yaml:"scopes,omitempty"`
	// Audiences the client may receive tokens for. Default: the client ID.
	Audiences []string `yaml:"audiences,omitempty"`
	// MayAct lists the subjects whose access tokens this client may present
	// as actor_token in a token exchange (RFC 8693 §4.1): the act claim.
	MayAct []string `yaml:"mayAct,omitempty"`
	// BackchannelLogoutURI receives OIDC back-channel logout tokens when a
	// Keyward session ends (backchannel.go): https, or http on loopback;
	// no fragment. Empty: none are sent.
	BackchannelLogoutURI string `yaml:"backchannelLogoutURI,omitempty"`
	// ApplicationType is web (the default) or native (a desktop, mobile or
	// command-line app). Only a native client may use a private-use URI
	// scheme (RFC 8252 §7.1) for its redirect URIs. OIDC Registration §2
	ApplicationType string `yaml:"applicationType,omitempty"`
	// IDTokenSignedResponseAlg is the algorithm of the client's ID tokens
	// and back-channel logout tokens (OIDC Registration §2
	// id_token_signed_response_alg): RS256, ES256 or EdDSA, one the key set
	// holds (keys.algorithm or keys.accessTokenAlgorithm;
	// CheckIDTokenAlgorithm). Default: keys.algorithm, RS256 unless changed,
	// the default OpenID Connect gives clients. ES256 and EdDSA sign about
	// 20× faster than RS256; the client's library must accept them.
	IDTokenSignedResponseAlg string `yaml:"idTokenSignedResponseAlg,omitempty"`
}

// The application types of a client. OIDC Registration §2
const (
	ApplicationWeb    = "web"
	ApplicationNative = "native"
)

// Validate checks the client's application type and its redirect,
// post-logout redirect and back-channel logout URIs: the one home of these
// rules, used by `keyward check-config` and by New. It returns one
// *config.FieldError per problem, named by its path below the client
// (redirectURIs[0]).
func (c Client) Validate() []error {
	var errs config.Problems
	add := func(field string, err error) {
		if err != nil {
			errs.Add(field, "%s", err)
		}
	}
	native := c.ApplicationType == ApplicationNative
	if c.ApplicationType != "" && c.ApplicationType != ApplicationWeb && !native {
		add("applicationType", fmt.Errorf("%q is not an application type; use web (the default: a server-side or browser app) or native (a desktop, mobile or command-line app)", c.ApplicationType))
	}
	for i, u := range c.RedirectURIs {
		add(fmt.Sprintf("redirectURIs[%d]", i), CheckRedirectURI(u, native))
	}
	for i, u := range c.PostLogoutRedirectURIs {
		add(fmt.Sprintf("postLogoutRedirectURIs[%d]", i), CheckRedirectURI(u, native))
	}
	if c.BackchannelLogoutURI != "" {
		add("backchannelLogoutURI", CheckBackchannelLogoutURI(c.BackchannelLogoutURI))
	}
	return errs
}

// oobURI is the out-of-band "redirect URI" of old installed-app flows.
const oobURI = "urn:ietf:wg:oauth:2.0:oob"

// loopbackHint is where http is allowed.
const loopbackHint = "localhost, 127.0.0.1 or [::1]"

// CheckRedirectURI says why raw cannot be a redirect URI (or post-logout
// redirect URI) of a web client, or of a native one, and how to fix it; nil
// when it can. Every client may use https, and http on a loopback host. A
// native client may also use a private-use scheme in reverse-DNS form,
// such as com.example.app:/callback (RFC 8252 §7.1). Refused: a missing
// scheme or host, a fragment (RFC 6749 §3.1.2), user info, a wildcard
// (redirect URIs are matched exactly), any other scheme (javascript:,
// data:…), and the out-of-band urn:ietf:wg:oauth:2.0:oob.
func CheckRedirectURI(raw string, native bool) error {
	const example = "https://app.example.com/callback"
	switch {
	case strings.TrimSpace(raw) == "":
		return fmt.Errorf("is empty; write the full URL that receives the code, e.g. %s", example)
	case strings.HasPrefix(raw, oobURI):
		return fmt.Errorf("%q (out-of-band: the person copies the code) is not supported, because any app could read that code; "+
			"a command-line tool should listen on loopback and use http://127.0.0.1/callback, whose port may differ at each sign-in (RFC 8252 §7.3)", raw)
	case strings.Contains(raw, "*"):
		return fmt.Errorf("%q holds a wildcard, but redirect URIs are matched exactly (a pattern would let any matching address receive codes); list each URI in full", raw)
	case strings.Contains(raw, "#"):
		return fmt.Errorf("%q has a fragment, which a redirect URI must not have (RFC 6749 §3.1.2); remove the part from #", raw)
	case strings.ContainsFunc(raw, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return fmt.Errorf("%q holds spaces or control characters; write the URI without them", raw)
	}
	if host, ok := missingScheme(raw); ok {
		scheme := "https"
		if loopback.Host(host) {
			scheme = "http"
		}
		return fmt.Errorf("%q has no scheme; write it in full, e.g. %s://%s", raw, scheme, raw)
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return fmt.Errorf("%q is not a valid URI; write it in full, e.g. %s", raw, example)
	case u.Scheme == "" && strings.HasPrefix(raw, "//"):
		return fmt.Errorf("%q has no scheme; write it in full, e.g. https:%s", raw, raw)
	case u.Scheme == "" && strings.HasPrefix(raw, "/"):
		return fmt.Errorf("%q is a path; write the full URL, e.g. https://app.example.com%s", raw, raw)
	case u.Scheme == "":
		return fmt.Errorf("%q has no scheme; write it in full, e.g. https://%s", raw, raw)
	case u.Scheme == "https" || u.Scheme == "http":
		switch {
		case u.Host == "" || u.Hostname() == "":
			return fmt.Errorf("%q has no host; write it in full, e.g. %s", raw, example)
		case u.User != nil:
			return fmt.Errorf("%q has user info (the part before @); remove it", raw)
		case u.Scheme == "http" && !loopback.Host(u.Hostname()):
			return fmt.Errorf("%q uses http on a host other than %s, so codes would cross the network unencrypted; use https", raw, loopbackHint)
		}
		return nil
	case !strings.Contains(u.Scheme, "."):
		if native {
			return fmt.Errorf("%q uses the scheme %s:, which is not a private-use scheme: a native app's scheme must be a reverse domain name it controls, "+
				"such as com.example.app:/callback, so that no other app can claim it (RFC 8252 §7.1)", raw, u.Scheme)
		}
		return fmt.Errorf("%q uses the scheme %s:, which cannot receive a code safely; use an https URL (http only on %s)", raw, u.Scheme, loopbackHint)
	case !native:
		return fmt.Errorf("%q uses the private-use scheme %s:, which only native apps may use; if this client is a desktop, mobile or command-line app, "+
			"set applicationType: native on it (RFC 8252 §7.1), else use an https URL", raw, u.Scheme)
	}
	return nil
}

// missingScheme reports a URI written without its scheme, such as
// localhost:3000/callback or 127.0.0.1:8080/cb (which url.Parse reads as
// scheme "localhost", or fails on), and its host.
func missingScheme(raw string) (string, bool) {
	if strings.Contains(raw, "://") {
		return "", false
	}
	host, rest, ok := strings.Cut(raw, ":")
	if !ok || rest == "" || rest[0] < '0' || rest[0] > '9' {
		return "", false // com.example.app:/cb, or no port
	}
	return host, host != ""
}

// CheckBackchannelLogoutURI says why raw cannot be a URI that Keyward
// POSTs to (a back-channel logout URI), and how to fix it: it must be an
// absolute https URL (http only on a loopback host) without a fragment or
// user info; a query is allowed. OIDC Back-Channel Logout 1.0 §2.2
func CheckBackchannelLogoutURI(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		return fmt.Errorf("%q must be an absolute https URL with a host, e.g. https://app.example.com/logout", raw)
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return fmt.Errorf("%q has a fragment; remove the part from #", raw)
	case u.User != nil:
		return fmt.Errorf("%q has user info (the part before @); remove it", raw)
	case u.Scheme == "http" && !loopback.Host(u.Hostname()):
		return fmt.Errorf("%q uses http on a host other than %s; use https", raw, loopbackHint)
	}
	return nil
}

// client is the fosite view of a Client.
type client struct {
	fosite.DefaultClient
	name                   string
	postLogoutRedirectURIs []string
	mayAct                 []string
	backchannelLogoutURI   string
	idTokenAlg             string // "": the key set's default (idtoken.go)
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
		if verrs := c.Validate(); len(verrs) > 0 {
			for _, err := range verrs {
				errs = append(errs, fmt.Errorf("clients[%d].%w", i, err))
			}
			continue
		}
		c.SetDefaults()
		grants, scopes, auds := c.GrantTypes, c.Scopes, c.Audiences
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
			idTokenAlg:             c.IDTokenSignedResponseAlg,
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

// authenticate returns the confidential client id if secret is its
// secret. An unknown id and a public client fail too, after the same
// constant-time comparison, so the answer's timing does not tell which
// client ids exist.
func (r *clientRegistry) authenticate(ctx context.Context, id, secret string) (*client, error) {
	c, ok := r.get(id)
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
		return errWrongSecret
	}
	return nil
}
