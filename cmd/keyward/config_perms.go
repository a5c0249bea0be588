package main

// This file finds secret files that users other than the owner can read:
// check-config and `verify --check` print a warning for each (the file is
// still accepted), and serve and verify log one at start.

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"

	"github.com/keyward/keyward/store/postgres"
)

// secretFile is a file a config names that holds a secret, and the field
// naming it.
type secretFile struct{ Path, File string }

// secretFiles lists the secret files of the broker's config.
func (c *Config) secretFiles() []secretFile {
	out := []secretFile{
		{"sessionSecretFile", c.SessionSecretFile},
		{"keys.encryptionKeyFile", c.Keys.EncryptionKeyFile},
		{"tls.keyFile", c.TLS.KeyFile},
		{"admin.tokenFile", c.Admin.TokenFile},
	}
	if pg, ok := c.Store.Backend.(*postgres.Options); ok {
		out = append(out, secretFile{"store.dsnFile", pg.DSNFile})
	}
	for i, u := range c.Upstreams {
		out = append(out, secretFile{fmt.Sprintf("upstreams[%d].clientSecretFile", i), u.ClientSecretFile})
	}
	for i, cl := range c.Clients {
		out = append(out, secretFile{fmt.Sprintf("clients[%d].secretFile", i), cl.SecretFile})
	}
	for i, s := range c.SCIM {
		out = append(out, secretFile{fmt.Sprintf("scim[%d].tokenFile", i), s.TokenFile})
	}
	for i, s := range c.SSF {
		out = append(out, secretFile{fmt.Sprintf("ssf[%d].tokenFile", i), s.TokenFile})
	}
	return out
}

// secretFiles lists the secret files of the verifier's config.
func (c *VerifyConfig) secretFiles() []secretFile {
	var out []secretFile
	if b := c.Browser; b != nil {
		out = append(out, secretFile{"browser.clientSecretFile", b.ClientSecretFile}, secretFile{"browser.cookieSecretFile", b.CookieSecretFile})
	}
	if f := c.Revocation; f != nil {
		out = append(out, secretFile{"revocationFeed.clientSecretFile", f.ClientSecretFile})
	}
	return out
}

// exposedFile is a secret file that its group or others may read.
type exposedFile struct {
	secretFile
	Mode fs.FileMode
}

// readableBy says who besides the owner may read the file.
func (e exposedFile) readableBy() string {
	switch g, o := e.Mode&0o040 != 0, e.Mode&0o004 != 0; {
	case g && o:
		return "its group and everyone else on this machine"
	case g:
		return "its group"
	default:
		return "everyone on this machine"
	}
}

// String is the check-config warning: field, file, who can read it, and the fix.
func (e exposedFile) String() string {
	return fmt.Sprintf("warning: %s: %s is readable by %s (mode %04o); run chmod 600 %s "+
		"(in a Kubernetes secret volume, set defaultMode: 0400)", e.Path, e.File, e.readableBy(), e.Mode, e.File)
}

// exposedSecretFiles returns the files of fs that are readable by group or
// others (the target of a symbolic link counts). A file that cannot be
// read is not reported here: loading the config says so.
func exposedSecretFiles(files []secretFile) []exposedFile {
	var out []exposedFile
	for _, f := range files {
		if f.File == "" {
			continue
		}
		info, err := os.Stat(f.File)
		if err != nil || info.IsDir() {
			continue
		}
		if perm := info.Mode().Perm(); perm&0o044 != 0 {
			out = append(out, exposedFile{secretFile: f, Mode: perm})
		}
	}
	return out
}

// writeWarnings prints "PATH: warning: …" for each exposed file.
func writeWarnings(w io.Writer, path string, files []exposedFile) error {
	for _, f := range files {
		if _, err := fmt.Fprintf(w, "%s: %s\n", path, f); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
	}
	return nil
}

// logExposedSecretFiles logs a warning for each exposed file at start.
func logExposedSecretFiles(ctx context.Context, log *slog.Logger, files []secretFile) {
	for _, f := range exposedSecretFiles(files) {
		log.WarnContext(ctx, "a secret file is readable by other users; run chmod 600 on it",
			"field", f.Path, "file", f.File, "mode", fmt.Sprintf("%04o", f.Mode))
	}
}
