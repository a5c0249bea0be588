package web

import (
	"net/url"
	"strings"
	"unicode"

	"github.com/keyward/keyward/cmd/config"
	"github.com/keyward/keyward/web/loopback"
)

// PagesConfig is the pages section of keyward.yaml: what the sign-in pages
// say beyond Keyward's own wording. It has no defaults.
type PagesConfig struct {
	// AccessRemovedContact tells a person whose access was removed whom to
	// ask, e.g. "the IT service desk (+1 555 0100)"; the "Access removed"
	// page shows "Contact: …". Default: none (the page tells them to ask
	// the administrator of the application).
	AccessRemovedContact string `yaml:"accessRemovedContact,omitempty"`
	// AccessRemovedContactURL makes that text a link: https://… (http only
	// on loopback) or mailto:…. Requires AccessRemovedContact.
	AccessRemovedContactURL string `yaml:"accessRemovedContactURL,omitempty"`
}

// maxContactLen bounds AccessRemovedContact: a line on a page, not a text.
const maxContactLen = 200

// Validate reports each problem as a *config.FieldError.
func (c PagesConfig) Validate() error {
	var p config.Problems
	switch {
	case len(c.AccessRemovedContact) > maxContactLen:
		p.Add("accessRemovedContact", "is %d characters; keep it to %d, e.g. \"the IT service desk (+1 555 0100)\"", len(c.AccessRemovedContact), maxContactLen)
	case strings.IndexFunc(c.AccessRemovedContact, unicode.IsControl) >= 0:
		p.Add("accessRemovedContact", "must be one line of text without control characters")
	}
	if c.AccessRemovedContactURL != "" {
		u, err := url.Parse(c.AccessRemovedContactURL)
		switch {
		case c.AccessRemovedContact == "":
			p.Add("accessRemovedContactURL", "needs accessRemovedContact, the text of the link, e.g. \"the IT service desk\"")
		case err != nil || (u.Scheme != "https" && u.Scheme != "http" && u.Scheme != "mailto"):
			p.Add("accessRemovedContactURL", "%q must be an https:// or mailto: URL, e.g. mailto:it@example.com", c.AccessRemovedContactURL)
		case u.Scheme == "mailto" && u.Opaque == "":
			p.Add("accessRemovedContactURL", "%q names no address, e.g. mailto:it@example.com", c.AccessRemovedContactURL)
		case u.Scheme != "mailto" && u.Host == "":
			p.Add("accessRemovedContactURL", "%q must be an absolute URL with a host", c.AccessRemovedContactURL)
		case u.Scheme == "http" && !loopback.Host(u.Hostname()):
			p.Add("accessRemovedContactURL", "%q %s", c.AccessRemovedContactURL, loopback.HTTPSHint)
		}
	}
	return p.Err()
}
