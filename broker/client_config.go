package broker

import (
	"fmt"
	"slices"
	"strings"

	"github.com/keyward/keyward/cmd/config"
)

// This file holds what keyward.yaml's clients section needs of Client: its
// defaults and the file's rules (ValidateConfig), beside the rules New
// applies too (Validate).

// Grant types a client may use.
const (
	GrantAuthorizationCode = "authorization_code"
	GrantRefreshToken      = "refresh_token"
	GrantClientCredentials = "client_credentials"
)

// GrantTypes are the grant types a client may list.
var GrantTypes = []string{GrantAuthorizationCode, GrantRefreshToken, GrantClientCredentials, GrantTypeTokenExchange}

// SetDefaults fills a client's empty fields (an empty list counts as
// unset): Name its ID, GrantTypes DefaultGrantTypes, Scopes
// DefaultClientScopes, Audiences its ID.
func (c *Client) SetDefaults() {
	if c.Name == "" {
		c.Name = c.ID
	}
	if len(c.GrantTypes) == 0 {
		c.GrantTypes = DefaultGrantTypes()
	}
	if len(c.Scopes) == 0 {
		c.Scopes = DefaultClientScopes()
	}
	if len(c.Audiences) == 0 {
		c.Audiences = []string{c.ID}
	}
}

// IsPublic reports whether the client has no secret: Public, or neither
// Secret nor SecretFile (as keyward.yaml writes a public client).
func (c Client) IsPublic() bool { return c.Public || (c.Secret == "" && c.SecretFile == "") }

// ValidateConfig reports the problems of a client as keyward.yaml gives it,
// each a *config.FieldError named by its path below the client: Validate's
// and the file's own (the id's form, one secret, known grant types, a
// redirect URI for authorization_code, scope tokens, audiences). It does
// no I/O. Unique ids are the list's concern.
func (c Client) ValidateConfig() error {
	var p config.Problems
	switch {
	case c.ID == "":
		p.Add("id", "set it to the client_id the application sends")
	case len(c.ID) > 128 || strings.ContainsFunc(c.ID, func(r rune) bool { return r <= ' ' || r > '~' }):
		p.Add("id", "%q must be at most 128 printable ASCII characters without spaces", c.ID)
	}
	if c.SecretFile != "" && c.Secret != "" {
		p.Add("secret", "set either secretFile or secret (or neither, for a public client), not both")
	}
	for j, g := range c.GrantTypes {
		gpath := fmt.Sprintf("grantTypes[%d]", j)
		if !slices.Contains(GrantTypes, g) {
			p.Add(gpath, "%q is not supported; use %s", g, strings.Join(GrantTypes, ", "))
		} else if g == GrantClientCredentials && c.IsPublic() {
			p.Add(gpath, "client_credentials needs a client secret; set secretFile (a public client cannot use it)")
		}
	}
	if slices.Contains(c.GrantTypes, GrantAuthorizationCode) && len(c.RedirectURIs) == 0 {
		p.Add("redirectURIs", "add at least one (authorization_code needs it)")
	}
	p = append(p, c.Validate()...)
	for j, s := range c.Scopes {
		// RFC 6749 §3.3
		if s == "" || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r > '~' || r == '"' || r == '\\' }) {
			p.Add(fmt.Sprintf("scopes[%d]", j), "%q is not a scope token; use printable ASCII without spaces, quotes or backslashes", s)
		}
	}
	for j, a := range c.Audiences {
		if strings.TrimSpace(a) == "" {
			p.Add(fmt.Sprintf("audiences[%d]", j), "is empty; remove it or name the API")
		}
	}
	return p.Err()
}
