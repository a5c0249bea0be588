package main

import (
	"fmt"
	"strings"

	"github.com/keyward/keyward/federation"
)

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
		p.AddAll(path, r.Validate())
	}
	for _, err := range federation.OverlappingSubjects(c.Trust) {
		msg := strings.ReplaceAll(err.Error(), "rules[", "trust[")
		path, rest, _ := strings.Cut(msg, ": ")
		p.Add(path, "%s", rest)
	}
}
