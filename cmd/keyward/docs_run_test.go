package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// docBlock is one fenced sh/bash block of a Markdown document.
type docBlock struct {
	doc  string // path, for messages
	line int    // of the opening fence
	code string // the commands, without the list item's indentation
	// skip is the reason of a <!-- not runnable here: REASON --> marker
	// on the line before the fence; "" when the block must run.
	skip string
}

// notRunnable is the marker of a block that cannot run against a demo on
// this machine; its reason is shown by the runner.
var notRunnable = regexp.MustCompile(`^<!-- not runnable here: (.+?) -->$`)

// docBlocks returns the sh/bash blocks of doc, with their markers.
func docBlocks(path, doc string) []docBlock {
	var blocks []docBlock
	lines := strings.Split(doc, "\n")
	for i := 0; i < len(lines); i++ {
		trimmed := strings.TrimSpace(lines[i])
		lang, ok := strings.CutPrefix(trimmed, "```")
		if !ok || lang == "" {
			if ok { // a fence without a language: skip to its end
				for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
				}
			}
			continue
		}
		indent := lines[i][:len(lines[i])-len(strings.TrimLeft(lines[i], " "))]
		b := docBlock{doc: path, line: i + 1}
		if i > 0 {
			if m := notRunnable.FindStringSubmatch(strings.TrimSpace(lines[i-1])); m != nil {
				b.skip = m[1]
			}
		}
		var code []string
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			code = append(code, strings.TrimPrefix(lines[i], indent))
		}
		if lang == "sh" || lang == "bash" || lang == "shell" {
			b.code = strings.Join(code, "\n")
			blocks = append(blocks, b)
		}
	}
	return blocks
}

// docFiles are README.md and every Markdown file under docs/.
func docFiles(t *testing.T) []string {
	t.Helper()
	files := []string{filepath.Join("..", "..", "README.md")}
	err := filepath.WalkDir(filepath.Join("..", "..", "docs"), func(path string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(path, ".md") {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// machineCommand finds a command that needs root or changes this machine
// beyond a scratch folder: a block using one must be marked not runnable,
// and the runner refuses to run it unmarked. (sudo before install or mkdir
// is allowed: the runner drops it and writes under its scratch root.)
var machineCommand = regexp.MustCompile(`(?m)(^|[;&|(]|\$\()\s*(sudo\s+(?:-\S+\s+)*)?(useradd|userdel|usermod|groupadd|systemctl|journalctl|service|su|chown|chgrp|apt-get|apt|dnf|yum|kubectl|helm|docker|podman|git|pg_ctl|initdb|ulimit|kill|pkill|killall|reboot|rm\s+-rf\s+/)\b`)

// placeholder is an assignment the reader completes, e.g. TOKEN=eyJ...:
// the runner drops it and supplies the variable itself.
var placeholder = regexp.MustCompile(`^([A-Z][A-Z0-9_]*)=\S*\.\.\.(\s+#.*)?$`)

// TestDocsCommandsRun runs every sh/bash block of README.md and docs/ as
// written, against a running `keyward demo` on loopback, and each must exit
// 0 within a minute. A block that cannot run here (it needs root, a cluster,
// a real identity provider, or takes minutes) carries
// `<!-- not runnable here: REASON -->` on the line before its fence; it is
// only checked for syntax (bash -n). The runner reports how many blocks ran
// and how many were skipped, with their reasons.
//
// What the runner does to a block, and nothing else:
//   - `go run ./cmd/keyward`, `./keyward` and `keyward` call one binary built
//     from this checkout (on PATH as keyward);
//   - the demo's documented addresses (127.0.0.1:5556 broker, :5557 identity
//     provider, :5558 app, :5559 admin API) are those of the demo it runs
//     (free ports, so tests can run side by side);
//   - /etc/keyward and /var/lib/keyward are folders of a scratch root, `sudo`
//     is dropped, and so are install's -o/-g (they need root);
//   - a placeholder assignment such as `TOKEN=eyJ...` is dropped: TOKEN is
//     bob's access token, from a sign-in at the demo app as the README tells.
//
// Each block runs with bash -euo pipefail in a scratch folder holding a
// link to examples/, with the demo's admin state (keyward admin finds it),
// and curl fails on an HTTP error (a .curlrc with fail-with-body). A block
// that ends by starting a server the reader leaves running (keyward serve,
// keyward demo --idp-only) runs in the background until the end of its
// document, then gets Ctrl-C and must exit 0 (docServers). Those servers
// use the documented ports: the README's keyward-minimal.yaml walk-through
// binds 127.0.0.1:5556 and :5557 itself.
func TestDocsCommandsRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs the demo")
	}
	bash := docsProgram(t, "bash")
	docsProgram(t, "curl") // the README's blocks call the demo with it
	bin := t.TempDir()
	build := exec.CommandContext(t.Context(), "go", "build", "-o", filepath.Join(bin, "keyward"), ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	appURL, banner := startDemo(t) // sets XDG_RUNTIME_DIR: keyward admin finds this demo
	addr := func(re string) string {
		t.Helper()
		m := regexp.MustCompile(re).FindStringSubmatch(banner.String())
		if m == nil {
			t.Fatalf("the demo banner lacks %s:\n%s", re, banner.String())
		}
		return strings.TrimPrefix(m[1], "http://")
	}
	ports := strings.NewReplacer(
		"127.0.0.1:5556", addr(`Keyward \(the broker\):\s+(\S+)/\.well-known`),
		"127.0.0.1:5557", addr(`Demo identity provider:\s+(\S+)`),
		"127.0.0.1:5558", strings.TrimPrefix(appURL, "http://"),
		"127.0.0.1:5559", addr(`Admin API:\s+(\S+)`),
	)
	// The README calls the API as bob and deprovisions bob; its admin
	// section deprovisions alice: both have signed in.
	_, page := signInDemo(t, appURL, "bob", "bob-demo")
	env := map[string]string{"TOKEN": demoAccessToken(t, page)}
	signInDemo(t, appURL, "alice", "alice-demo")

	root := t.TempDir()
	paths := strings.NewReplacer("/etc/keyward", root+"/etc/keyward", "/var/lib/keyward", root+"/var/lib/keyward")
	binary := regexp.MustCompile(`(^|[\s;&|(])(go run \./cmd/keyward|\./keyward)\b`)
	owner := regexp.MustCompile(`^(\(?\s*install\b.*?) -[og] ("[^"]*"|\S+)`)
	// curl fails on an HTTP error (a 401 is not success), through a
	// .curlrc of the runner's own.
	curlHome := t.TempDir()
	writeFile(t, curlHome, ".curlrc", "fail-with-body\n")
	examples, err := filepath.Abs(filepath.Join("..", "..", "examples"))
	if err != nil {
		t.Fatal(err)
	}

	ran, skipped := 0, map[string]int{}
	for _, doc := range docFiles(t) {
		data, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		var servers []*docServer // stopped at the end of the document
		for _, b := range docBlocks(doc, string(data)) {
			where := fmt.Sprintf("%s:%d", strings.TrimPrefix(b.doc, "../../"), b.line)
			if b.skip != "" {
				if out, err := exec.CommandContext(t.Context(), bash, "-n", "-c", b.code).CombinedOutput(); err != nil {
					t.Errorf("%s (not runnable here) is not valid bash: %v\n%s\n%s", where, err, b.code, out)
				}
				skipped[b.skip]++
				continue
			}
			if m := machineCommand.FindStringSubmatch(b.code); m != nil {
				t.Errorf("%s uses %s, which needs root or changes this machine: mark it <!-- not runnable here: REASON --> (the runner did not run it)", where, m[3])
				continue
			}
			if strings.Contains(strings.ReplaceAll(b.code, "sudo install", ""), "sudo ") {
				t.Errorf("%s uses sudo beyond install: mark it <!-- not runnable here: REASON --> (the runner did not run it)", where)
				continue
			}
			var script []string
			for _, line := range strings.Split(b.code, "\n") {
				if m := placeholder.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
					if _, ok := env[m[1]]; !ok {
						t.Errorf("%s: placeholder %s has no value in the runner", where, m[1])
					}
					continue
				}
				line = binary.ReplaceAllString(line, "${1}keyward")
				line = strings.Replace(line, "sudo ", "", 1)
				for owner.MatchString(line) {
					line = owner.ReplaceAllString(line, "$1")
				}
				script = append(script, paths.Replace(ports.Replace(line)))
			}
			dir := t.TempDir()
			if err := os.Symlink(examples, filepath.Join(dir, "examples")); err != nil {
				t.Fatal(err)
			}
			cmdEnv := append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "CURL_HOME="+curlHome)
			for k, v := range env {
				cmdEnv = append(cmdEnv, k+"="+v)
			}
			if ready := serverReady(script); ready != "" {
				// The block ends with a server the reader leaves running:
				// it runs in the background until the document's end.
				srv, err := startDocServer(t, bash, dir, cmdEnv, script, ready)
				if err != nil {
					t.Errorf("%s fails as written: %v\n--- block\n%s\n--- as run\n%s", where, err, b.code, strings.Join(script, "\n"))
					continue
				}
				servers = append(servers, srv)
				ran++
				continue
			}
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			cmd := exec.CommandContext(ctx, bash, "-euo", "pipefail", "-c", strings.Join(script, "\n"))
			cmd.Dir, cmd.Env = dir, cmdEnv
			out, err := cmd.CombinedOutput()
			cancel()
			if err != nil {
				t.Errorf("%s fails as written: %v\n--- block\n%s\n--- as run\n%s\n--- output\n%s", where, err, b.code, strings.Join(script, "\n"), out)
				continue
			}
			ran++
		}
		for _, srv := range servers {
			if err := srv.stop(); err != nil {
				t.Errorf("%s: %s did not stop cleanly on Ctrl-C: %v\n%s", doc, srv.line, err, srv.out.String())
			}
		}
	}
	total := ran
	for _, n := range skipped {
		total += n
	}
	t.Logf("docs runner: %d of %d shell blocks ran against the demo; %d not runnable here (syntax checked):", ran, total, total-ran)
	for _, reason := range slices.Sorted(maps.Keys(skipped)) {
		t.Logf("  %d× %s", skipped[reason], reason)
	}
	if ran < 4 {
		t.Errorf("only %d blocks ran; the README's demo walk-through alone has more", ran)
	}
}

// docsProgram returns the program's path, or skips the test (fails it
// under KEYWARD_TEST_REQUIRE_ALL=1, as CI runs) when it is missing.
func docsProgram(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("KEYWARD_TEST_REQUIRE_ALL") == "1" {
		t.Fatalf("%s not found (apt-get install %s) and KEYWARD_TEST_REQUIRE_ALL=1", name, name)
	}
	t.Skipf("%s not found; install the Debian package %s to run the docs' blocks", name, name)
	return ""
}

// docServers are the servers a block may end with, which the reader leaves
// running (in a terminal of its own), by the text each prints once it
// serves. The runner starts such a block in the background, waits for that
// text, runs the document's next blocks, and stops the server with Ctrl-C
// (SIGINT) at the document's end; it must then exit 0.
var docServers = []struct {
	command *regexp.Regexp
	ready   string
}{
	{regexp.MustCompile(`^keyward serve\b`), "keyward serving"},
	{regexp.MustCompile(`^keyward demo --idp-only\b`), "keyward serve -c"},
}

// serverReady returns the ready text of the server the script's last line
// starts, or "".
func serverReady(script []string) string {
	for i := len(script) - 1; i >= 0; i-- {
		line := strings.TrimSpace(script[i])
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		for _, s := range docServers {
			if s.command.MatchString(line) {
				return s.ready
			}
		}
		return ""
	}
	return ""
}

// docServer is a block running in the background: its last line serves.
type docServer struct {
	line string
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan error
}

// startDocServer runs script (its last line execs the server) and waits
// until the output shows ready; an exit before that is the block failing.
func startDocServer(t *testing.T, bash, dir string, env, script []string, ready string) (*docServer, error) {
	t.Helper()
	last := len(script) - 1
	for strings.TrimSpace(script[last]) == "" || strings.HasPrefix(strings.TrimSpace(script[last]), "#") {
		last--
	}
	lines := append(append([]string(nil), script[:last]...), "exec "+script[last])
	srv := &docServer{line: strings.TrimSpace(script[last]), out: &lockedBuffer{}, done: make(chan error, 1)}
	srv.cmd = exec.Command(bash, "-euo", "pipefail", "-c", strings.Join(lines, "\n"))
	srv.cmd.Dir, srv.cmd.Env = dir, env
	srv.cmd.Stdout, srv.cmd.Stderr = srv.out, srv.out
	if err := srv.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { srv.done <- srv.cmd.Wait() }()
	t.Cleanup(func() { _ = srv.cmd.Process.Kill() }) // if stop was never reached
	deadline := time.After(time.Minute)
	for !strings.Contains(srv.out.String(), ready) {
		select {
		case err := <-srv.done:
			return nil, fmt.Errorf("exited before serving (%v):\n%s", err, srv.out.String())
		case <-deadline:
			_ = srv.cmd.Process.Kill()
			return nil, fmt.Errorf("no %q within a minute:\n%s", ready, srv.out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return srv, nil
}

// stop sends Ctrl-C (SIGINT) and waits for a clean exit.
func (s *docServer) stop() error {
	if err := s.cmd.Process.Signal(os.Interrupt); err != nil {
		return err
	}
	select {
	case err := <-s.done:
		return err
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		return fmt.Errorf("still running 30s after SIGINT")
	}
}

// The guard keeps an unmarked block that needs root or changes the machine
// from running at all; the docs' own blocks of that kind are the cases.
func TestDocsRunnerRefusesMachineCommands(t *testing.T) {
	for _, code := range []string{
		"useradd --system --home /var/lib/keyward keyward",
		"install -d /etc/keyward\nsystemctl daemon-reload && systemctl enable --now keyward",
		"journalctl -u keyward -f",
		"mkdir -p $D && chown postgres:postgres $D",
		"git worktree add --detach /tmp/kw-old 2fac5d7",
		"(cd x && sudo apt-get install -y wrk)",
		"echo $(kubectl get pods)",
		"ulimit -n 20000",
	} {
		if !machineCommand.MatchString(code) {
			t.Errorf("machineCommand misses %q", code)
		}
	}
	for _, code := range []string{
		`sudo install -d -o "$(id -un)" -m 700 /etc/keyward`,
		"(umask 077 && head -c32 /dev/urandom | base64 > /etc/keyward/admin-token)",
		"keyward admin deprovision --email bob@example.com",
		`curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:5558/api/whoami`,
		"keyward admin sessions list --subject SUBJECT",
	} {
		if machineCommand.MatchString(code) {
			t.Errorf("machineCommand refuses %q", code)
		}
	}
}
