package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// exampleSetupCommands returns the commands of examples/keyward.yaml's
// header that create the secret files: the indented comment lines of the
// header that run install or write under /etc/keyward.
func exampleSetupCommands(t *testing.T, header string) []string {
	t.Helper()
	var cmds []string
	for _, line := range strings.Split(header, "\n") {
		if !strings.HasPrefix(line, "#") {
			break // the header ends at the first setting
		}
		cmd, ok := strings.CutPrefix(line, "#   ")
		if ok && strings.Contains(cmd, "/etc/keyward") && !strings.HasPrefix(cmd, " ") {
			cmds = append(cmds, cmd)
		}
	}
	if len(cmds) == 0 {
		t.Fatal("examples/keyward.yaml's header has no commands creating the secret files")
	}
	return cmds
}

// TestExamplesOneDeployment runs the setup commands of examples/keyward.yaml's
// header with /etc and /var under a scratch root, then checks both examples
// (paths rewritten the same way) as check-config and verify --check do:
// both OK without a warning, and they describe one deployment.
func TestExamplesOneDeployment(t *testing.T) {
	root := t.TempDir()
	rewrite := strings.NewReplacer("/etc/keyward", root+"/etc/keyward", "/var/lib/keyward", root+"/var/lib/keyward")
	read := func(name string) string {
		data, err := os.ReadFile(filepath.Join("..", "..", "examples", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	broker, verifier := read("keyward.yaml"), read("verify.yaml")

	for _, cmd := range exampleSetupCommands(t, broker) {
		sh := exec.Command("sh", "-c", rewrite.Replace(cmd))
		sh.Env = append(os.Environ(), "CORP_CLIENT_SECRET=corp-secret-from-the-idp")
		if out, err := sh.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", cmd, err, out)
		}
	}
	t.Setenv("KEYWARD_GOOGLE_CLIENT_SECRET", "google-secret")
	brokerPath := writeFile(t, root, "keyward.yaml", rewrite.Replace(broker))
	verifyPath := writeFile(t, root, "verify.yaml", rewrite.Replace(verifier))
	var out bytes.Buffer
	if err := checkConfig(brokerPath, &out); err != nil || out.String() != brokerPath+": OK (2 upstreams, 7 clients)\n" {
		t.Fatalf("check-config examples/keyward.yaml = %v\n%s", err, out.String())
	}
	out.Reset()
	if err := checkVerifyConfig(verifyPath, &out); err != nil || !strings.HasPrefix(out.String(), verifyPath+": OK (") || strings.Count(out.String(), "\n") != 1 {
		t.Fatalf("verify --check examples/verify.yaml = %v\n%s", err, out.String())
	}

	c, _, err := loadConfigFile(brokerPath)
	if err != nil {
		t.Fatal(err)
	}
	v, err := loadVerifyConfigFile(verifyPath)
	if err != nil {
		t.Fatal(err)
	}
	if v.Issuer != c.Issuer {
		t.Errorf("verify.yaml's issuer %q is not keyward.yaml's %q", v.Issuer, c.Issuer)
	}
	clientOf := func(field, id string) (secretFile string, redirects, audiences []string) {
		for _, cl := range c.Clients {
			if cl.ID == id {
				return cl.SecretFile, cl.RedirectURIs, cl.Audiences
			}
		}
		t.Fatalf("verify.yaml's %s %q is not a client of keyward.yaml", field, id)
		return "", nil, nil
	}
	secret, redirects, audiences := clientOf("browser.clientID", v.Browser.ClientID)
	if v.Browser.ClientSecretFile != secret {
		t.Errorf("browser.clientSecretFile %s is not the client's secretFile %s", v.Browser.ClientSecretFile, secret)
	}
	if !slices.Contains(redirects, v.Browser.RedirectURL) {
		t.Errorf("browser.redirectURL %s is not among the client's redirectURIs %v", v.Browser.RedirectURL, redirects)
	}
	for _, a := range audiences {
		if !slices.Contains(v.Audiences, a) {
			t.Errorf("the browser client's audience %s is not in verify.yaml's audience %v", a, v.Audiences)
		}
	}
	feed := v.Revocation
	if feed == nil {
		t.Fatal("verify.yaml reads no revocation feed")
	}
	if secret, _, _ := clientOf("revocationFeed.clientID", feed.ClientID); feed.ClientSecretFile != secret {
		t.Errorf("revocationFeed.clientSecretFile %s is not the client's secretFile %s", feed.ClientSecretFile, secret)
	}
	if !slices.Contains(c.RevocationFeed.Readers, feed.ClientID) {
		t.Errorf("verify.yaml's feed reader %s is not in keyward.yaml's revocationFeed.readers %v", feed.ClientID, c.RevocationFeed.Readers)
	}
}
