package container

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/test/internal/program"
)

// imageUser is the image's numeric user and group (Containerfile USER).
const imageUser = 65532

// podman runs podman on throwaway storage with the flags this machine
// needs to run containers (docs/deployment.md, "Container image").
type podman struct {
	bin   string
	flags []string // global flags: storage, runtime, cgroup manager
	env   []string // the environment, with CONTAINERS_CONF
}

// newPodman returns a podman whose images and containers live under a
// temporary folder, removed when the test ends. It skips the test (fails it
// under KEYWARD_TEST_REQUIRE_ALL=1) when podman or runc is missing.
func newPodman(t *testing.T) *podman {
	t.Helper()
	bin := program.Find(t, "podman", "apt-get install podman")
	runc := program.Find(t, "runc", "apt-get install runc", "/usr/sbin/runc")
	dir := t.TempDir()
	conf := filepath.Join(dir, "containers.conf")
	// The VM's hard rlimits are lower than podman's default ulimits, which a
	// container may not raise.
	if err := os.WriteFile(conf, []byte("[containers]\ndefault_ulimits = []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &podman{
		bin: bin,
		flags: []string{
			"--storage-driver", "vfs",
			"--root", filepath.Join(dir, "root"),
			"--runroot", filepath.Join(dir, "run"),
			"--runtime", runc,
			"--cgroup-manager", "cgroupfs",
		},
		env: append(os.Environ(), "CONTAINERS_CONF="+conf),
	}
	t.Cleanup(func() {
		// Removes the images' layers while podman still knows them, before
		// the temporary folder goes.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = p.command(ctx, "rmi", "--all", "--force").Run()
	})
	return p
}

// command returns the podman command for args.
func (p *podman) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, p.bin, append(append([]string{}, p.flags...), args...)...)
	cmd.Env = p.env
	return cmd
}

// output runs podman with args and returns its standard output, failing
// the test on an error.
func (p *podman) output(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := p.command(ctx, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("podman %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// build builds the image with deploy/container/build.sh as tag, version
// version, and returns its image ID.
func (p *podman) build(t *testing.T, tag, version string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", filepath.Join(repoRoot, "deploy", "container", "build.sh"), tag)
	// Fixed, so that builds compare equal even when a commit lands
	// between them.
	cmd.Env = append(append([]string{}, p.env...),
		"VERSION="+version, "REVISION=0000000000000000000000000000000000000000", "SOURCE_DATE_EPOCH=1767225600",
		"CONTAINER_TOOL="+strings.Join(append([]string{p.bin}, p.flags...), " "))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("deploy/container/build.sh: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	lines := strings.Fields(stdout.String())
	if len(lines) == 0 || !strings.HasPrefix(lines[len(lines)-1], "sha256:") {
		t.Fatalf("deploy/container/build.sh printed %q, want the image ID last\n%s", stdout.String(), stderr.String())
	}
	return lines[len(lines)-1]
}

// container is a container running in the foreground of a podman run.
type container struct {
	name string
	log  string        // the file holding its output
	done chan struct{} // closed when podman run has ended
	err  error         // podman run's result, once done is closed
}

// output returns what the container has written so far.
func (c *container) output() string {
	b, _ := os.ReadFile(c.log)
	return string(b)
}

// start runs the image with args (podman run flags, the image, then its
// command) as a container named name, removed when it stops. When the test
// ends the container gets SIGTERM (podman stop); if the test failed, its
// output is logged.
func (p *podman) start(t *testing.T, name string, args ...string) *container {
	t.Helper()
	c := &container{name: name, log: filepath.Join(t.TempDir(), name+".log"), done: make(chan struct{})}
	// A file rather than a pipe, so that Wait never waits for a process
	// podman started (conmon outlives podman run) to close the output.
	out, err := os.Create(c.log)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := p.command(context.Background(), append([]string{"run", "--rm", "--name", name}, args...)...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("podman run: %v", err)
	}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		_ = p.stop(t, c)
		if t.Failed() {
			t.Logf("%s output:\n%s", name, c.output())
		}
	})
	return c
}

// stop sends the container SIGTERM, unless it has ended, and returns podman
// run's result once it has.
func (p *podman) stop(t *testing.T, c *container) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	select {
	case <-c.done:
		return c.err
	default:
	}
	_ = p.command(ctx, "stop", "--time", "15", c.name).Run()
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		t.Errorf("%s did not stop within 30s", c.name)
		return ctx.Err()
	}
}
