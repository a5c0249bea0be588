package main

// This file holds what the binary adds to web/verify's browser section:
// reading its secret files and building the handler's options.

import (
	"fmt"
	"os"

	"github.com/keyward/keyward/web/verify"
)

// validateBrowser reports the browser section's problems and a browser rule
// without that section (the check that spans sections).
func (c *VerifyConfig) validateBrowser(p *problems) {
	if c.Browser != nil {
		p.AddAll("browser", c.Browser.Validate())
		return
	}
	for i, r := range c.Rules {
		if r.Browser {
			p.Add(fmt.Sprintf("rules[%d].browser", i), "needs the browser section (clientID, cookieSecretFile, redirectURL); see examples/verify.yaml")
		}
	}
}

// handlerOptions converts the config into the handler's options, reading the
// browser secrets. It is called once Validate has passed.
func (c *VerifyConfig) handlerOptions(v *verify.Verifier) (verify.HandlerOptions, error) {
	opts := c.GatewayConfig.HandlerOptions()
	if c.Browser == nil {
		return opts, nil
	}
	bc, err := browserConfig(*c.Browser)
	if err != nil {
		return opts, err
	}
	if opts.Browser, err = verify.NewBrowser(v, bc); err != nil {
		return opts, err
	}
	return opts, nil
}

// browserConfig is the browser section with its secrets read from their
// files.
func browserConfig(b verify.BrowserConfig) (verify.BrowserConfig, error) {
	var p problems
	b.CookieSecret, b.ClientSecret = readBrowserSecrets(&p, &b)
	return b, p.Err()
}

// readBrowserSecrets reads the cookie key and the client secret (none for a
// public client), adding a problem for each that cannot be used.
func readBrowserSecrets(p *problems, b *verify.BrowserConfig) (cookieKey []byte, clientSecret string) {
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
		readBrowserSecrets(&p, c.Browser)
	}
	if f := c.Revocation; f != nil && f.ClientSecretFile != "" {
		readFeedSecret(&p, f)
	}
	return p.Err()
}
