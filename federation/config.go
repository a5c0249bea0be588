package federation

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Config describes one upstream identity provider. It is tagless; cmd
// converts the YAML shape into it.
type Config struct {
	// ID is the stable upstream id, part of every subject Keyward derives,
	// so it must never change once in use. Pattern: [a-z0-9-]+
	ID string
	// Name is shown on the provider chooser. Default: ID.
	Name string
	// Issuer is the exact issuer URL; discovery must report the same string.
	Issuer       string
	ClientID     string
	ClientSecret string
	// RedirectURL is Keyward's callback, e.g. https://sso.example.com/callback.
	RedirectURL string
	// Scopes requested upstream; must include openid.
	// Default: openid email profile.
	Scopes []string
	// Claims names the upstream claims that carry the identity.
	Claims ClaimMapping
	// NativeClientIDs are the client IDs, at the upstream, of native apps
	// (mobile, desktop) whose upstream ID tokens may be exchanged for
	// Keyward tokens (native sign-in, RFC 8693 with subject_token_type
	// id_token): an ID token is accepted when its aud holds one of them.
	// Empty: native sign-in is off for this upstream. See VerifyIDToken.
	NativeClientIDs []string
	// NativePublicClients lets Keyward clients without a secret (mobile
	// apps) exchange this upstream's ID tokens: the ID token is then the
	// only credential. Requires NativeClientIDs. Default: false.
	NativePublicClients bool
	// RecheckInterval, when positive, makes Keyward refresh the person's
	// upstream grant at a Keyward refresh once this long has passed since
	// the last check, ending the Keyward session if the upstream refuses
	// (see Refresh). Scopes must then include offline_access. 0: off.
	RecheckInterval time.Duration
	// Now is the clock for token checks. Default: time.Now.
	Now func() time.Time
}

// ClaimMapping names the upstream claims read into an Identity; an empty
// field takes its default. Names are used as is (no dotted paths), so
// namespaced claims such as "https://example.com/groups" work.
type ClaimMapping struct {
	Email             string // Default: email
	Name              string // Default: name
	PreferredUsername string // Default: preferred_username
	Groups            string // Default: groups
}

var idPattern = regexp.MustCompile(`^[a-z0-9-]+$`)

// Validate reports every problem with c, each naming its field. It does no
// I/O.
func (c Config) Validate() error {
	var errs []error
	switch {
	case c.ID == "":
		errs = append(errs, errors.New("id: must not be empty"))
	case !idPattern.MatchString(c.ID):
		errs = append(errs, fmt.Errorf("id: %q must match [a-z0-9-]+", c.ID))
	}
	if err := checkURL(c.Issuer); err != nil {
		errs = append(errs, fmt.Errorf("issuer: %w", err))
	}
	if c.ClientID == "" {
		errs = append(errs, errors.New("client_id: must not be empty"))
	}
	if c.ClientSecret == "" {
		errs = append(errs, errors.New("client_secret: must not be empty"))
	}
	if err := checkURL(c.RedirectURL); err != nil {
		errs = append(errs, fmt.Errorf("redirect_url: %w", err))
	}
	if c.Scopes != nil {
		if !slices.Contains(c.Scopes, "openid") {
			errs = append(errs, errors.New("scopes: must include openid"))
		}
		for _, s := range c.Scopes {
			if s == "" || strings.ContainsAny(s, " \t\r\n\"\\") {
				errs = append(errs, fmt.Errorf("scopes: %q is not a valid scope token", s))
			}
		}
	}
	for i, id := range c.NativeClientIDs {
		switch {
		case id == "" || strings.TrimSpace(id) != id:
			errs = append(errs, fmt.Errorf("native_client_ids[%d]: %q must be non-empty without surrounding space", i, id))
		case slices.Index(c.NativeClientIDs, id) < i:
			errs = append(errs, fmt.Errorf("native_client_ids[%d]: %q is listed twice", i, id))
		}
	}
	switch {
	case c.RecheckInterval < 0:
		errs = append(errs, fmt.Errorf("recheck_interval: %s must not be negative (0 turns the re-check off)", c.RecheckInterval))
	case c.RecheckInterval > 0 && !slices.Contains(c.Scopes, "offline_access"):
		errs = append(errs, errors.New("scopes: must include offline_access when recheck_interval is set (the re-check needs the upstream's refresh token)"))
	}
	if c.NativePublicClients && len(c.NativeClientIDs) == 0 {
		errs = append(errs, errors.New("native_public_clients: needs native_client_ids (native sign-in is off without them)"))
	}
	return errors.Join(errs...)
}

// checkURL accepts an absolute https URL, or http for a loopback host,
// without query or fragment.
func checkURL(raw string) error {
	bad := errors.New("must be an absolute https URL (http only for loopback)")
	if raw == "" {
		return errors.New("must not be empty")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil {
		return bad
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return bad
		}
	default:
		return bad
	}
	if u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(raw, "#") || strings.HasSuffix(raw, "?") {
		return errors.New("must not have a query or fragment")
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// withDefaults fills the documented defaults.
func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = c.ID
	}
	if c.Scopes == nil {
		c.Scopes = []string{"openid", "email", "profile"}
	} else {
		c.Scopes = slices.Clone(c.Scopes)
	}
	c.NativeClientIDs = slices.Clone(c.NativeClientIDs)
	if c.Claims.Email == "" {
		c.Claims.Email = "email"
	}
	if c.Claims.Name == "" {
		c.Claims.Name = "name"
	}
	if c.Claims.PreferredUsername == "" {
		c.Claims.PreferredUsername = "preferred_username"
	}
	if c.Claims.Groups == "" {
		c.Claims.Groups = "groups"
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}
