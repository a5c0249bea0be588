package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// startTimeout bounds initdb and a server start.
const startTimeout = 60 * time.Second

// Cluster is a throwaway PostgreSQL cluster: its own data directory, unix
// socket directory and log under a temporary folder, listening on 127.0.0.1
// at a port chosen at random when it was created. Its superuser is
// postgres, with trust authentication.
type Cluster struct {
	bin     string
	dir     string // the temporary folder holding everything
	port    int
	runAs   *user.User // nil: this process's user
	logPath string

	settings []string // extra server settings, name=value

	mu   sync.Mutex
	done chan struct{} // closed when the running server exits; nil when stopped
}

// StartCluster starts a cluster of t's own (never the one at
// KEYWARD_TEST_POSTGRES_DSN) and removes it when t ends. settings are extra
// server settings ("name=value"), applied after the defaults (fsync=off,
// synchronous_commit=off, full_page_writes=off, deadlock_timeout=50ms,
// max_connections=200): a benchmark wanting durable commits passes
// "fsync=on", "synchronous_commit=on", "full_page_writes=on". It skips t
// (or fails it, see EnvRequireAll) when the PostgreSQL binaries are not
// usable.
func StartCluster(t testing.TB, settings ...string) *Cluster {
	t.Helper()
	if reason := unavailable(); reason != "" {
		skip(t, reason)
	}
	c, err := startCluster(settings...)
	if err != nil {
		t.Fatalf("pgtest: start a PostgreSQL cluster: %v", err)
	}
	t.Cleanup(func() {
		if err := c.remove(); err != nil {
			t.Errorf("pgtest: remove the cluster: %v", err)
		}
	})
	return c
}

// DSN is the connection string of the cluster's postgres database, as its
// superuser.
func (c *Cluster) DSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=5", c.port)
}

// CreateDatabase creates an empty database on the cluster, dropped when t
// ends, and returns its DSN.
func (c *Cluster) CreateDatabase(t testing.TB) string {
	t.Helper()
	return createDatabase(t, c.DSN())
}

// Stop shuts the server down as an operator would (fast shutdown: open
// sessions end with SQLSTATE 57P01) and waits until it has exited. The port
// then refuses connections. Stopping a stopped cluster does nothing.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		return nil
	}
	select {
	case <-c.done: // exited by itself
		c.done = nil
		return nil
	default:
	}
	pid, err := c.postmasterPID()
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, syscall.SIGINT); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal postgres (pid %d): %w", pid, err)
	}
	select {
	case <-c.done:
	case <-time.After(startTimeout):
		_ = syscall.Kill(pid, syscall.SIGQUIT) // immediate shutdown
		<-c.done
	}
	c.done = nil
	return nil
}

// Start starts the server again, on the same port and data directory, and
// waits until it accepts connections. Starting a running cluster does
// nothing.
func (c *Cluster) Start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done != nil {
		return nil
	}
	return c.start()
}

// unavailable says why no cluster can be started here ("" when one can).
func unavailable() string {
	bin := binDir()
	for _, name := range []string{"initdb", "postgres"} {
		if _, err := os.Stat(filepath.Join(bin, name)); err != nil {
			return fmt.Sprintf("no PostgreSQL server binaries in %s (install postgresql-15, or set %s or %s)",
				bin, EnvDSN, EnvBinDir)
		}
	}
	if os.Geteuid() == 0 {
		if _, err := exec.LookPath("runuser"); err != nil {
			return "running as root needs runuser to start PostgreSQL as another user, and it is missing"
		}
		if _, err := runAsUser(); err != nil {
			return err.Error()
		}
	}
	return ""
}

func binDir() string {
	if d := os.Getenv(EnvBinDir); d != "" {
		return d
	}
	return BinDir
}

// runAsUser is the account the cluster runs as when this process is root.
func runAsUser() (*user.User, error) {
	name := os.Getenv(EnvUser)
	if name == "" {
		name = "nobody"
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("running as root, PostgreSQL must run as another user: %s=%q: %v", EnvUser, name, err)
	}
	return u, nil
}

// startCluster creates the folder, runs initdb and starts the server.
func startCluster(settings ...string) (*Cluster, error) {
	c := &Cluster{bin: binDir(), settings: settings}
	if os.Geteuid() == 0 {
		u, err := runAsUser()
		if err != nil {
			return nil, err
		}
		c.runAs = u
	}
	parent, err := tempParent(c.runAs)
	if err != nil {
		return nil, err
	}
	removeStale(parent)
	if c.dir, err = os.MkdirTemp(parent, "keyward-pg-"); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(c.dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		_ = os.RemoveAll(c.dir)
		return nil, err
	}
	c.logPath = filepath.Join(c.dir, "postgres.log")
	if err := c.init(); err != nil {
		_ = os.RemoveAll(c.dir)
		return nil, err
	}
	if c.port, err = freePort(); err != nil {
		_ = os.RemoveAll(c.dir)
		return nil, err
	}
	if err := c.start(); err != nil {
		_ = os.RemoveAll(c.dir)
		return nil, err
	}
	return c, nil
}

// ownerFile, in a cluster's folder, holds the pid of the test process that
// made it.
const ownerFile = "owner.pid"

// removeStale deletes the cluster folders in parent whose test process and
// server are gone: those of test binaries that exited without Main (their
// server stopped on SIGTERM, see start) or were killed.
func removeStale(parent string) {
	dirs, _ := filepath.Glob(filepath.Join(parent, "keyward-pg-*"))
	for _, dir := range dirs {
		if alive(filepath.Join(dir, ownerFile)) || alive(filepath.Join(dir, "data", "postmaster.pid")) {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, ownerFile)); err == nil {
			_ = os.RemoveAll(dir)
		}
	}
}

// alive reports whether the pid on the first line of file is a running
// process (false when the file is missing).
func alive(file string) bool {
	b, err := os.ReadFile(file)
	if err != nil {
		return false
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return false
	}
	return !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// tempParent is the folder to create the cluster's folder in: os.TempDir,
// or /tmp when another user must reach it and cannot traverse os.TempDir.
func tempParent(runAs *user.User) (string, error) {
	dir := os.TempDir()
	if runAs == nil || traversable(dir) {
		return dir, nil
	}
	if traversable("/tmp") {
		return "/tmp", nil
	}
	return "", fmt.Errorf("user %s cannot reach %s or /tmp (a parent folder lacks o+x); set TMPDIR", runAs.Username, dir)
}

// traversable reports whether every folder from / to dir lets others pass.
func traversable(dir string) bool {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	for {
		fi, err := os.Stat(dir)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return true
		}
		dir = parent
	}
}

// init runs initdb, fast and unsafe: no fsync, trust authentication.
func (c *Cluster) init() error {
	for _, d := range []string{c.dir, filepath.Join(c.dir, "sock")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
		if err := c.chown(d); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	cmd := c.command(ctx, "initdb", "-D", c.dataDir(), "-U", "postgres", "-A", "trust", "--no-sync",
		"-E", "UTF8", "--locale=C", "--no-instructions")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("initdb: %w: %s", err, lastLines(out.String(), 10))
	}
	return nil
}

func (c *Cluster) dataDir() string { return filepath.Join(c.dir, "data") }

func (c *Cluster) chown(path string) error {
	if c.runAs == nil {
		return nil
	}
	uid, _ := strconv.Atoi(c.runAs.Uid)
	gid, _ := strconv.Atoi(c.runAs.Gid)
	return os.Chown(path, uid, gid)
}

// command runs a PostgreSQL binary, through runuser when this process is
// root. Its working directory is the cluster's folder, which the user can
// read.
func (c *Cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	path := filepath.Join(c.bin, name)
	var cmd *exec.Cmd
	if c.runAs != nil {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", c.runAs.Username, "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Dir = c.dir
	return cmd
}

// start runs the server and waits until it accepts connections. c.mu is
// held (or c is not shared yet).
func (c *Cluster) start() error {
	logFile, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close() // the child has its own descriptor
	settings := []string{
		"listen_addresses=127.0.0.1",
		"unix_socket_directories=" + filepath.Join(c.dir, "sock"),
		"fsync=off", "synchronous_commit=off", "full_page_writes=off",
		"max_connections=200",
		"deadlock_timeout=50ms", // deadlock tests resolve fast
	}
	settings = append(settings, c.settings...)
	args := []string{"-D", c.dataDir(), "-p", strconv.Itoa(c.port)}
	for _, s := range settings {
		args = append(args, "-c", s)
	}
	cmd := c.command(context.Background(), "postgres", args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// SIGTERM reaches the server when this process dies (runuser passes it
	// on), so no server outlives the tests.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
	done := make(chan struct{})
	started := make(chan error, 1)
	go func() {
		// Pdeathsig fires when the thread that started the child exits, not
		// the process: keep this goroutine on its thread until the child
		// has exited.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(done)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	c.done = done
	if err := c.waitReady(done); err != nil {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-done
		c.done = nil
		return err
	}
	return nil
}

// waitReady polls until the server answers, or fails with its log.
func (c *Cluster) waitReady(done <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, c.DSN())
		cancel()
		if err == nil {
			_ = conn.Close(context.Background())
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("postgres exited at start: %s", c.logTail())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres not ready after %v: %w: %s", startTimeout, err, c.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// postmasterPID reads the server's process id from its pid file.
func (c *Cluster) postmasterPID() (int, error) {
	b, err := os.ReadFile(filepath.Join(c.dataDir(), "postmaster.pid"))
	if err != nil {
		return 0, fmt.Errorf("read postmaster.pid: %w", err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return 0, fmt.Errorf("postmaster.pid: %w", err)
	}
	return pid, nil
}

// remove stops the server and deletes the cluster's folder.
func (c *Cluster) remove() error {
	err := c.Stop()
	return errors.Join(err, os.RemoveAll(c.dir))
}

func (c *Cluster) logTail() string {
	b, _ := os.ReadFile(c.logPath)
	return lastLines(string(b), 10)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
