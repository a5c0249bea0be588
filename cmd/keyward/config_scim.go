package main

// The scim section: SCIM 2.0 provisioning per upstream (broker.SCIMConfig
// is its type; web/scim serves it). This file holds what spans sections
// (the upstream must exist, once) and the token files.

import (
	"fmt"
	"log/slog"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/federation"
	"github.com/keyward/keyward/store"
	"github.com/keyward/keyward/web/scim"
)

// validateSCIM checks each scim entry, and that it names an upstream of the
// file, at most once. GitHub upstreams do not provision.
func (c *Config) validateSCIM(p *problems) {
	c.validatePerUpstream(p, "scim", "has provisioning already", len(c.SCIM), func(i int) (string, error) {
		return c.SCIM[i].Upstream, c.SCIM[i].Validate()
	}, func(path string, u *federation.Config) {
		if u.Type == "github" {
			p.Add(path+".upstream", "%q is a GitHub upstream, which does not provision with SCIM", u.ID)
		}
	})
}

// validatePerUpstream is the one rule of the sections that hold one entry
// per upstream (scim, ssf): each entry's own problems under section[i], its
// upstream named at most once (dupMsg says what it already has), and an
// upstream of the file; also, when given, checks that entry's upstream.
func (c *Config) validatePerUpstream(p *problems, section, dupMsg string, n int, entry func(i int) (string, error), also func(path string, u *federation.Config)) {
	seen := map[string]int{}
	for i := range n {
		path := fmt.Sprintf("%s[%d]", section, i)
		id, err := entry(i)
		p.AddAll(path, err)
		if id == "" {
			continue
		}
		if first, dup := seen[id]; dup {
			p.Add(path+".upstream", "%q %s (%s[%d]); keep one entry per upstream", id, dupMsg, section, first)
		}
		seen[id] = i
		u := c.upstream(id)
		if u == nil {
			p.Add(path+".upstream", "%q is not the id of an upstream; use one of upstreams[].id", id)
			continue
		}
		if also != nil {
			also(path, u)
		}
	}
}

// scimWarnings are check-config's warnings about provisioning: an Entra ID
// upstream links SCIM users only when its subject is the object id (oid),
// which Entra can send as externalId; its default sub is pairwise per
// application and appears in no SCIM request.
func (c *Config) scimWarnings() []string {
	var out []string
	for i, s := range c.SCIM {
		u := c.upstream(s.Upstream)
		if u == nil || u.Profile != federation.ProfileAzureAD || u.Claims.Subject == "oid" {
			continue
		}
		out = append(out, fmt.Sprintf("scim[%d]: upstream %q is Entra ID and its claimMapping.subject is not oid: "+
			"SCIM users will not meet the people who sign in; set claimMapping.subject: oid and map Entra's objectId to externalId (docs/provisioning.md)", i, s.Upstream))
	}
	return out
}

func (c *Config) upstream(id string) *federation.Config {
	for i := range c.Upstreams {
		if c.Upstreams[i].ID == id {
			return &c.Upstreams[i]
		}
	}
	return nil
}

// readSCIMTokens reads the scim entries' token files (or takes the inline
// tokens) into the entries' Token, as broker.NewProvisioning takes them.
func readSCIMTokens(p *problems, c *Config) []broker.SCIMConfig {
	var out []broker.SCIMConfig
	for i, s := range c.SCIM {
		path := fmt.Sprintf("scim[%d].tokenFile", i)
		s.Token = readSecret(p, path, s.TokenFile, s.Token)
		if msg := broker.ValidateSCIMToken(s.Token); s.TokenFile != "" && s.Token != "" && msg != "" {
			p.Add(path, "%s: %s", s.TokenFile, msg)
		}
		s.TokenFile = ""
		out = append(out, s)
	}
	return out
}

// buildSCIM is the provisioning part and its SCIM handler for the entries
// (nil, nil when there are none).
func buildSCIM(b *broker.Broker, st store.Store, issuer string, entries []broker.SCIMConfig, log *slog.Logger) (*broker.Provisioning, *scim.Handler, error) {
	if len(entries) == 0 {
		return nil, nil, nil
	}
	prov, err := b.NewProvisioning(broker.ProvisioningConfig{Store: st, Endpoints: entries, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	h, err := scim.New(scim.Config{Provisioning: prov, Issuer: issuer, Logger: log})
	if err != nil {
		return nil, nil, fmt.Errorf("scim: %w", err)
	}
	return prov, h, nil
}
