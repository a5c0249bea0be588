package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/keyward/keyward/federation"
)

// TrustRuleConfig is one workload-federation trust rule: which external JWTs
// may be exchanged, and for what.
type TrustRuleConfig struct {
	// Name identifies the rule in logs and in the idp claim ("trust:NAME").
	Name string `yaml:"name"`
	// Issuer is the exact iss of the external tokens. Only issuers named by
	// a rule are ever contacted (discovery, JWKS).
	Issuer string `yaml:"issuer"`
	// Audience is the aud the external token must carry (usually Keyward's issuer).
	Audience string `yaml:"audience"`
	// Claims pins claims of the external token: exact values or globs (* ?).
	Claims map[string]string `yaml:"claims,omitempty"`
	// Subject is the template of the issued token's sub, e.g.
	// "github:{repository}:{ref}".
	Subject string `yaml:"subject"`
	// Audiences the issued token may carry; Scopes it may receive.
	Audiences []string `yaml:"audiences"`
	Scopes    []string `yaml:"scopes,omitempty"`
	// MaxTTL bounds the issued token's lifetime. Default: 10m.
	MaxTTL Duration `yaml:"maxTTL,omitempty"`
	// PublicClient lets a client without a secret use this rule: the
	// external token is then the only credential.
	PublicClient bool `yaml:"publicClient,omitempty"`
	// SingleUse refuses a second exchange of the same token (by jti).
	SingleUse bool `yaml:"singleUse,omitempty"`
	// Algorithms the external issuer may sign with. Default: [RS256, ES256].
	Algorithms []string `yaml:"algorithms,omitempty"`
}

func (r TrustRuleConfig) rule() federation.TrustRule {
	return federation.TrustRule{
		Name:         r.Name,
		Issuer:       r.Issuer,
		Audience:     r.Audience,
		Claims:       r.Claims,
		Subject:      r.Subject,
		Audiences:    r.Audiences,
		Scopes:       r.Scopes,
		MaxTTL:       time.Duration(r.MaxTTL),
		PublicClient: r.PublicClient,
		SingleUse:    r.SingleUse,
		Algorithms:   r.Algorithms,
	}
}

// validateTrust checks each rule (federation.TrustRule.Validate names the
// field) and that rule names are unique.
func (c *Config) validateTrust(p *problems) {
	seen := map[string]int{}
	for i, r := range c.Trust {
		path := fmt.Sprintf("trust[%d]", i)
		if first, dup := seen[r.Name]; dup && r.Name != "" {
			p.Add(path+".name", "%q is used twice (also trust[%d])", r.Name, first)
		}
		seen[r.Name] = i
		// Each message reads "field: what to do"; prefix the rule's path.
		for _, err := range splitErrors(r.rule().Validate()) {
			field, msg, ok := strings.Cut(err.Error(), ": ")
			if ok && field != "" && !strings.ContainsAny(field, " ") {
				p.Add(path+"."+field, "%s", msg)
			} else {
				p.Add(path, "%s", err.Error())
			}
		}
	}
	rules := make([]federation.TrustRule, len(c.Trust))
	for i := range c.Trust {
		rules[i] = c.Trust[i].rule()
	}
	for _, err := range federation.OverlappingSubjects(rules) {
		msg := strings.ReplaceAll(err.Error(), "rules[", "trust[")
		path, rest, _ := strings.Cut(msg, ": ")
		p.Add(path, "%s", rest)
	}
}
