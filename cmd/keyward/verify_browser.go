package main

// This file holds verify.yaml's gateway and browser sections: validation and
// the conversion into web/verify's HandlerOptions and BrowserConfig.

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/keyward/keyward/cmd/config"
	"github.com/keyward/keyward/web/loopback"
	"github.com/keyward/keyward/web/verify"
)

// VerifyBrowserConfig is verify.yaml's browser section: sign-in at the edge
// for web apps behind the gateway (rules with browser: true).
type VerifyBrowserConfig struct {
	// ClientID is the verifier's client at the broker (clients[].id in
	// keyward.yaml); its redirectURIs must hold RedirectURL and its
	// audiences must be among verify.yaml's audience. Required.
	ClientID string `yaml:"clientID"`
	// ClientSecretFile holds the client's secret. Omitted: a public client
	// (PKCE alone).
	ClientSecretFile string `yaml:"clientSecretFile,omitempty"`
	// CookieSecretFile holds the 32-byte AES-256-GCM key of the session
	// cookie: raw, hex or base64 (head -c32 /dev/urandom | base64). Required.
	CookieSecretFile string `yaml:"cookieSecretFile"`
	// RedirectURL is the callback as the browser reaches it through the
	// gateway, e.g. https://shop.example.com/oauth2/callback; its path must
	// lie under /oauth2/. Required.
	RedirectURL string `yaml:"redirectURL"`
	// AllowedRedirectDomains: where rd may send the browser after sign-in and
	// sign-out: a host (exactly) or .domain (it and its subdomains), with an
	// optional :port (without one, the default port of rd's scheme). Relative
	// paths are always allowed. Default: the host and port of RedirectURL
	// (shop.example.com:443 for https://shop.example.com/oauth2/callback).
	AllowedRedirectDomains []string `yaml:"allowedRedirectDomains,omitempty"`
	// Scopes requested at sign-in; must include openid, and offline_access
	// to renew the session on page load (through /oauth2/start).
	// Default: [openid, email, profile, groups, offline_access].
	Scopes []string `yaml:"scopes,omitempty"`
}

// gatewayHeaders maps verify.yaml's gateway to the header family the
// handler reads; only that family is trusted.
var gatewayHeaders = map[string]verify.Headers{
	"nginx":   verify.HeadersNginx,
	"kong":    verify.HeadersNginx, // docs/gateways/kong.md sends X-Original-*
	"traefik": verify.HeadersForwarded,
	"caddy":   verify.HeadersForwarded,
	"envoy":   verify.HeadersEnvoy,
}

func (c *VerifyConfig) validateGateway(p *problems) {
	if _, ok := gatewayHeaders[c.Gateway]; !ok {
		p.Add("gateway", "%q is not a gateway; use nginx, traefik, caddy, envoy or kong (it decides which headers describe the original request)", c.Gateway)
	}
	if c.Gateway == "envoy" && c.EnvoyPrefix == "" {
		p.Add("envoyPrefix", "gateway envoy needs envoyPrefix, e.g. /ext_authz (the path_prefix in Envoy)")
	}
}

func (c *VerifyConfig) validateBrowser(p *problems) {
	b := c.Browser
	if b == nil {
		for i, r := range c.Rules {
			if r.Browser {
				p.Add(fmt.Sprintf("rules[%d].browser", i), "needs the browser section (clientID, cookieSecretFile, redirectURL); see examples/verify.yaml")
			}
		}
		return
	}
	if strings.TrimSpace(b.ClientID) == "" {
		p.Add("browser.clientID", "set it to the verifier's client id at the broker (clients[].id in keyward.yaml)")
	}
	if b.CookieSecretFile == "" {
		p.Add("browser.cookieSecretFile", "name a file holding 32 random bytes, e.g. head -c32 /dev/urandom | base64 > /etc/keyward/verify-cookie")
	}
	u, err := url.Parse(b.RedirectURL)
	switch {
	case b.RedirectURL == "":
		p.Add("browser.redirectURL", "set it to the callback as browsers reach it, e.g. https://shop.example.com/oauth2/callback")
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.RawQuery != "" || u.Fragment != "":
		p.Add("browser.redirectURL", "%q must be an absolute https URL without query, e.g. https://shop.example.com/oauth2/callback", b.RedirectURL)
	case u.Scheme == "http" && !loopback.Host(u.Hostname()):
		p.Add("browser.redirectURL", "%q %s: the session cookie is Secure", b.RedirectURL, config.HTTPSHint)
	case !strings.HasPrefix(u.Path, "/oauth2/") || slices.Contains([]string{"/oauth2/auth", "/oauth2/start", "/oauth2/sign_out"}, u.Path):
		p.Add("browser.redirectURL", "%q: the path must be under /oauth2/ and not auth, start or sign_out; use /oauth2/callback", b.RedirectURL)
	}
	for i, d := range b.AllowedRedirectDomains {
		if d == "" || d == "." || strings.ContainsAny(d, "/\\@ *?#") {
			p.Add(fmt.Sprintf("browser.allowedRedirectDomains[%d]", i), "%q must be a host (shop.example.com) or .domain (.example.com), without scheme or wildcard", d)
		}
	}
	if len(b.Scopes) > 0 && !slices.Contains(b.Scopes, "openid") {
		p.Add("browser.scopes", "must include openid (sign-in needs an ID token)")
	}
}

// handlerOptions converts the config into the handler's options, reading the
// browser secrets. It is called once Validate has passed.
func (c *VerifyConfig) handlerOptions(v *verify.Verifier) (verify.HandlerOptions, error) {
	opts := verify.HandlerOptions{
		Headers:         gatewayHeaders[c.Gateway],
		PassAccessToken: c.PassAccessToken,
		EnvoyPrefix:     c.EnvoyPrefix,
	}
	if c.Browser == nil {
		return opts, nil
	}
	bc, err := c.Browser.browserConfig()
	if err != nil {
		return opts, err
	}
	if opts.Browser, err = verify.NewBrowser(v, bc); err != nil {
		return opts, err
	}
	return opts, nil
}

func (b *VerifyBrowserConfig) browserConfig() (verify.BrowserConfig, error) {
	var p problems
	key, secret := b.readSecrets(&p)
	if err := p.Err(); err != nil {
		return verify.BrowserConfig{}, err
	}
	domains := b.AllowedRedirectDomains
	if len(domains) == 0 {
		if u, err := url.Parse(b.RedirectURL); err == nil {
			domains = []string{redirectOrigin(u)}
		}
	}
	return verify.BrowserConfig{
		ClientID: b.ClientID, ClientSecret: secret, CookieSecret: key, RedirectURL: b.RedirectURL,
		AllowedRedirectDomains: domains, Scopes: b.Scopes,
	}, nil
}

// readSecrets reads the cookie key and the client secret (none for a public
// client), adding a problem for each that cannot be used.
func (b *VerifyBrowserConfig) readSecrets(p *problems) (cookieKey []byte, clientSecret string) {
	key, err := os.ReadFile(b.CookieSecretFile)
	if err == nil {
		key, err = parseEncryptionKey(key)
	}
	if err != nil {
		p.Add("browser.cookieSecretFile", "%s", err.Error())
	}
	return key, readSecret(p, "browser.clientSecretFile", b.ClientSecretFile, "")
}

// checkSecrets reads every secret file the config names, as the verifier
// will when it starts, and reports each that cannot be used: what verify
// --check adds to Validate.
func (c *VerifyConfig) checkSecrets() error {
	var p problems
	if c.Browser != nil && c.Browser.CookieSecretFile != "" {
		c.Browser.readSecrets(&p)
	}
	if f := c.RevocationFeed; f != nil && f.ClientSecretFile != "" {
		f.readSecret(&p)
	}
	return p.Err()
}

// redirectOrigin is the default allowedRedirectDomains entry for the
// callback u: its host with its port, the scheme's default port when it has
// none, so rd cannot name another port (verify.SafeRedirect refuses http
// for an https callback).
func redirectOrigin(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "443"
		if u.Scheme == "http" {
			port = "80"
		}
	}
	return net.JoinHostPort(u.Hostname(), port)
}
