package broker

import (
	"crypto/sha256"
	"slices"
	"strings"

	"github.com/keyward/keyward/cmd/config"
)

// SCIM subject attributes: which attribute of a SCIM User carries the
// upstream's subject (the OIDC sub Keyward derives the person's subject
// from).
const (
	SCIMSubjectExternalID = "externalId"
	SCIMSubjectUserName   = "userName"
)

// SCIMSubjectAttributes lists the accepted SCIMConfig.SubjectAttribute values.
var SCIMSubjectAttributes = []string{SCIMSubjectExternalID, SCIMSubjectUserName}

// SCIMConfig turns on SCIM 2.0 provisioning for one upstream: an entry of
// keyward.yaml's scim section. The identity provider then provisions its
// people at /scim/v2/{upstream} with the bearer token.
type SCIMConfig struct {
	// Upstream is the id of the upstream whose people the provisioning
	// client manages. Required.
	Upstream string `yaml:"upstream"`
	// TokenFile holds the bearer token the provisioning client sends
	// (Authorization: Bearer …); Token is the token inline (${ENV} allowed).
	// One of them is required; at least 32 characters.
	TokenFile string `yaml:"tokenFile,omitempty"`
	Token     string `yaml:"token,omitempty"`
	// SubjectAttribute is the SCIM User attribute that holds the upstream's
	// subject (the sub claim as claimMapping.subject picks it):
	// externalId or userName. Default: externalId.
	SubjectAttribute string `yaml:"subjectAttribute,omitempty"`
	// Groups turns on group push: the SCIM groups a person is a member of
	// replace the groups of their sessions from this upstream (and so of
	// the tokens issued from them). Default: false (groups come from the
	// ID token only).
	Groups bool `yaml:"groups,omitempty"`
}

// minSCIMToken is the shortest bearer token accepted: a guessable token
// lets anyone deprovision (or reinstate) people.
const minSCIMToken = 32

// SetDefaults fills the defaults.
func (c *SCIMConfig) SetDefaults() {
	if c.SubjectAttribute == "" {
		c.SubjectAttribute = SCIMSubjectExternalID
	}
}

// Validate reports the problems of the entry, each a *config.FieldError
// named by its path below the entry. The token's length is checked when
// it is inline; a token file's content is checked by ValidateToken once it
// is read.
func (c SCIMConfig) Validate() error {
	var p config.Problems
	if c.Upstream == "" {
		p.Add("upstream", "set it to the id of the upstream whose people the identity provider provisions")
	}
	switch {
	case c.TokenFile == "" && c.Token == "":
		p.Add("tokenFile", "set it to a file holding the bearer token the identity provider sends, e.g. head -c32 /dev/urandom | base64 > /etc/keyward/scim-%s.token", c.Upstream)
	case c.TokenFile != "" && c.Token != "":
		p.Add("token", "set either tokenFile or token, not both")
	case c.Token != "" && !strings.HasPrefix(c.Token, "${"):
		if err := ValidateSCIMToken(c.Token); err != "" {
			p.Add("token", "%s", err)
		}
	}
	if c.SubjectAttribute != "" && !slices.Contains(SCIMSubjectAttributes, c.SubjectAttribute) {
		p.Add("subjectAttribute", "%q is not supported; use %s", c.SubjectAttribute, strings.Join(SCIMSubjectAttributes, " or "))
	}
	return p.Err()
}

// ValidateSCIMToken says what is wrong with a bearer token ("" when
// nothing is).
func ValidateSCIMToken(token string) string {
	if len(token) < minSCIMToken {
		return "the token must be at least 32 characters; generate one with head -c32 /dev/urandom | base64"
	}
	if strings.ContainsFunc(token, func(r rune) bool { return r <= ' ' || r > '~' }) {
		return "the token must be printable ASCII without spaces (it travels in an HTTP header)"
	}
	return ""
}

// scimEndpoint is one upstream's provisioning, as New took it.
type scimEndpoint struct {
	upstream  string
	tokenHash [sha256.Size]byte
	subject   string // SCIMSubjectExternalID or SCIMSubjectUserName
	groups    bool
}
