package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// shellBlocks returns the fenced sh/bash blocks of a Markdown document.
func shellBlocks(doc string) []string {
	var blocks []string
	var cur []string
	in, shell := false, false
	for _, line := range strings.Split(doc, "\n") {
		fence, ok := strings.CutPrefix(strings.TrimSpace(line), "```")
		switch {
		case ok && !in:
			in, shell, cur = true, fence == "sh" || fence == "bash" || fence == "shell", nil
		case ok && in:
			if shell {
				blocks = append(blocks, strings.Join(cur, "\n"))
			}
			in = false
		case in:
			cur = append(cur, line)
		}
	}
	return blocks
}

// TestDocsSetupBlocksRun runs the file-setup lines (install, mkdir, umask,
// head, chmod) of every shell block in README.md and docs/ that writes under
// /etc/keyward or /var/lib/keyward, with those paths under a scratch root,
// without sudo and without install's owner and group (which need root): each
// block must create the folders it writes into, and the files it writes must
// then exist, readable by no other user. Blocks that add users or start
// services need root and a real system, and are left out.
func TestDocsSetupBlocksRun(t *testing.T) {
	docs := []string{filepath.Join("..", "..", "README.md")}
	err := filepath.WalkDir(filepath.Join("..", "..", "docs"), func(path string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(path, ".md") {
			docs = append(docs, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	setup := regexp.MustCompile(`^\(?(install|mkdir|umask|head|chmod)\b`)
	written := regexp.MustCompile(`> (/(?:etc|var/lib)/keyward/\S+?)\)?(?:\s|$)`)
	blocks := 0
	for _, doc := range docs {
		data, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, block := range shellBlocks(string(data)) {
			if !written.MatchString(block) || strings.Contains(block, "useradd ") || strings.Contains(block, "systemctl ") {
				continue // writes nothing there, or needs root and a real system
			}
			blocks++
			root := t.TempDir()
			owner := regexp.MustCompile(` -[og] ("[^"]*"|\S+)`)
			rewrite := strings.NewReplacer("/etc/keyward", root+"/etc/keyward", "/var/lib/keyward", root+"/var/lib/keyward")
			var script []string
			for _, line := range strings.Split(block, "\n") {
				line = strings.TrimPrefix(strings.TrimSpace(line), "sudo ")
				if setup.MatchString(line) {
					if strings.HasPrefix(line, "install ") {
						line = owner.ReplaceAllString(line, "")
					}
					script = append(script, rewrite.Replace(line))
				}
			}
			if out, err := exec.Command("sh", "-ec", strings.Join(script, "\n")).CombinedOutput(); err != nil {
				t.Errorf("%s: the block\n%s\nfails as written: %v\n%s", doc, block, err, out)
				continue
			}
			for _, m := range written.FindAllStringSubmatch(block, -1) {
				fi, err := os.Stat(rewrite.Replace(m[1]))
				if err != nil {
					t.Errorf("%s: the block does not write %s: %v", doc, m[1], err)
				} else if fi.Mode().Perm()&0o007 != 0 {
					t.Errorf("%s: the block leaves %s readable by every user (%v)", doc, m[1], fi.Mode())
				}
			}
		}
	}
	if blocks < 2 {
		t.Fatalf("found %d setup blocks in README.md and docs/; the test reads no documentation", blocks)
	}
}
