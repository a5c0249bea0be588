package main

import (
	"fmt"
	"strings"

	"github.com/keyward/keyward/broker"
)

// AdminConfig configures the admin API (docs/admin-api.md): a separate
// listener, every request authenticated by a bearer token read from a file.
type AdminConfig struct {
	// Listen is the host:port of the admin API; keep it on loopback or a
	// private interface. Default: 127.0.0.1:8081.
	Listen string `yaml:"listen,omitempty"`
	// TokenFile holds the bearer token (at least 32 bytes), e.g.
	// head -c32 /dev/urandom | base64 > /etc/keyward/admin-token.
	// Empty: no admin API.
	TokenFile string `yaml:"tokenFile,omitempty"`
}

// Enabled reports whether the admin API is served.
func (a AdminConfig) Enabled() bool { return a.TokenFile != "" }

// RevocationFeedConfig configures GET /revocations.
type RevocationFeedConfig struct {
	// Readers are the client IDs that may read the feed (HTTP Basic with
	// their secret); each must be a configured client with a secret.
	Readers []string `yaml:"readers,omitempty"`
}

const adminTokenHint = "at least 32 random bytes, e.g. head -c32 /dev/urandom | base64 > /etc/keyward/admin-token"

func (c *Config) validateAdmin(p *problems) {
	if c.Admin.Enabled() {
		checkListen(p, "admin.listen", c.Admin.Listen)
		if c.Admin.Listen == c.Listen {
			p.Add("admin.listen", "%q is also listen; the admin API needs its own port", c.Admin.Listen)
		}
		if c.Metrics.Listen != "" && c.Admin.Listen == c.Metrics.Listen {
			p.Add("admin.listen", "%q is also metrics.listen; use another port", c.Admin.Listen)
		}
	}
	clients := map[string]broker.Client{}
	for _, cl := range c.Clients {
		clients[cl.ID] = cl
	}
	seen := map[string]int{}
	for i, id := range c.RevocationFeed.Readers {
		path := fmt.Sprintf("revocationFeed.readers[%d]", i)
		cl, ok := clients[id]
		switch first, dup := seen[id]; {
		case dup:
			p.Add(path, "%q is listed twice (also revocationFeed.readers[%d])", id, first)
		case !ok:
			p.Add(path, "%q is not a configured client; add it under clients (with a secretFile) or remove it", id)
		case cl.IsPublic():
			p.Add(path, "client %q has no secret; feed readers authenticate with HTTP Basic, so give it a secretFile", id)
		}
		seen[id] = i
	}
}

// readAdminToken reads admin.tokenFile: nil when unset.
func readAdminToken(p *problems, file string) []byte {
	if file == "" {
		return nil
	}
	tok := strings.TrimSpace(readSecret(p, "admin.tokenFile", file, ""))
	if tok == "" {
		return nil
	}
	if len(tok) < 32 {
		p.Add("admin.tokenFile", "%s holds %d bytes; write %s", file, len(tok), adminTokenHint)
		return nil
	}
	return []byte(tok)
}
