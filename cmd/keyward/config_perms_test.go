package main

import (
	"bytes"
	"github.com/keyward/keyward/web/verify"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

// TestCheckConfigWarnsAboutReadableSecretFiles: secret files that group or
// others may read are reported, with the fix, and the check still passes.
func TestCheckConfigWarnsAboutReadableSecretFiles(t *testing.T) {
	dir := t.TempDir()
	c := exampleConfig(t, "keyward.yaml") // secret files written 0600
	c.Admin.TokenFile = writeFile(t, dir, "admin-token", strings.Repeat("a", 40)+"\n")
	for _, f := range []struct {
		file string
		mode os.FileMode
	}{
		{c.SessionSecretFile, 0o644},
		{c.Keys.EncryptionKeyFile, 0o640},
		{c.Clients[0].SecretFile, 0o604},
		{c.Upstreams[0].ClientSecretFile, 0o660},
		{c.Admin.TokenFile, 0o600}, // private: no warning
	} {
		if err := os.Chmod(f.file, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	data, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	path := writeFile(t, dir, "keyward.yaml", string(data))
	var out bytes.Buffer
	if err := checkConfig(path, &out); err != nil {
		t.Fatalf("checkConfig() = %v, want nil (warnings do not fail the check); output:\n%s", err, out.String())
	}
	k8s := " (in a Kubernetes secret volume, set defaultMode: 0400)"
	want := []string{
		path + ": warning: sessionSecretFile: " + c.SessionSecretFile + " is readable by its group and everyone else on this machine (mode 0644); run chmod 600 " + c.SessionSecretFile + k8s,
		path + ": warning: keys.encryptionKeyFile: " + c.Keys.EncryptionKeyFile + " is readable by its group (mode 0640); run chmod 600 " + c.Keys.EncryptionKeyFile + k8s,
		path + ": warning: upstreams[0].clientSecretFile: " + c.Upstreams[0].ClientSecretFile + " is readable by its group (mode 0660); run chmod 600 " + c.Upstreams[0].ClientSecretFile + k8s,
		path + ": warning: clients[0].secretFile: " + c.Clients[0].SecretFile + " is readable by everyone on this machine (mode 0604); run chmod 600 " + c.Clients[0].SecretFile + k8s,
		path + ": OK (2 upstreams, 7 clients)",
	}
	if diff := cmp.Diff(want, strings.Split(strings.TrimSpace(out.String()), "\n")); diff != "" {
		t.Errorf("check-config output (-want +got):\n%s", diff)
	}
}

func TestVerifySecretFiles(t *testing.T) {
	dir := t.TempDir()
	cookie := writeFile(t, dir, "cookie", strings.Repeat("c", 32))
	secret := writeFile(t, dir, "secret", "s\n")
	feed := writeFile(t, dir, "feed", "f\n")
	if err := os.Chmod(cookie, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(feed, 0o640); err != nil {
		t.Fatal(err)
	}
	c := &VerifyConfig{
		Browser: &verify.BrowserConfig{ClientSecretFile: secret, CookieSecretFile: cookie},
		Config:  verify.Config{Revocation: &verify.RevocationConfig{ClientSecretFile: feed}},
	}
	var got []string
	for _, f := range exposedSecretFiles(c.secretFiles()) {
		got = append(got, f.Path+" "+filepath.Base(f.File))
	}
	if diff := cmp.Diff([]string{"browser.cookieSecretFile cookie", "revocationFeed.clientSecretFile feed"}, got); diff != "" {
		t.Errorf("exposed verify.yaml secret files (-want +got):\n%s", diff)
	}
}
