package crash

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/keyward/keyward/test/fakeidp"
)

// The harness: one crash-test build of keyward, and per test case a world
// (a store, a fake upstream, a config) in which that binary is started,
// killed and started again.

const (
	crashEnv    = "KEYWARD_CRASHTEST" // read by cmd/keyward/crashpoints.go
	pointPrefix = "keyward-crashtest: "
	crashTag    = "keyward_crashtest"

	appID       = "app"
	appSecret   = "app-secret-0123456789-0123456789-abcdef"
	appRedirect = "http://127.0.0.1:1/cb" // nothing listens: the client stops there
	ciID        = "ci"
	adminToken  = "admin-token-0123456789-0123456789-abcdef"
	upSecret    = "upstream-secret-0123456789-0123456789"
	person      = "alice"

	tokenTypeJWT  = "urn:ietf:params:oauth:token-type:jwt"
	grantExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
)

// buildKeyward builds cmd/keyward with the crash-test tag into a
// temporary folder, once per test binary run.
func buildKeyward(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go tool not found: %v", err) // go test runs with it: never a skip
	}
	bin := filepath.Join(t.TempDir(), "keyward")
	cmd := exec.CommandContext(t.Context(), goBin, "build", "-tags", crashTag, "-o", bin, "github.com/keyward/keyward/cmd/keyward")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build -tags %s ./cmd/keyward: %v\n%s", crashTag, err, out)
	}
	return bin
}

// backend says how a world stores: the YAML of the store section, given a
// folder of the world's own.
type backend struct {
	name string
	// store returns the store section (indented by two spaces) for a new,
	// empty store, and whether it is a bbolt file (its path).
	store func(t *testing.T, dir string) (yaml, boltPath string)
	// available skips (or fails, see pgtest) t when the backend cannot
	// run here; nil: always available.
	available func(t *testing.T)
}

// world is one store, one fake upstream and one configuration, in which the
// broker is started, killed and restarted.
type world struct {
	t        *testing.T
	bin      string
	dir      string
	issuer   string
	admin    string
	cfg      string
	boltPath string
	idp      *fakeidp.Server
	proc     *proc
	starts   int // processes started, naming their logs
}

func newWorld(t *testing.T, bin string, be backend) *world {
	t.Helper()
	dir := t.TempDir()
	listen, adminListen := freeAddr(t), freeAddr(t)
	w := &world{t: t, bin: bin, dir: dir, issuer: "http://" + listen, admin: "http://" + adminListen + "/admin/v1"}
	w.idp = fakeidp.NewTest(t, fakeidp.Config{
		Users: []fakeidp.User{{
			Username: person, Password: person + "-demo", Email: person + "@example.com", EmailVerified: true, Name: "Alice",
		}},
		Clients:   []fakeidp.Client{{ID: "keyward", Secret: upSecret, RedirectURIs: []string{w.issuer + "/callback"}}},
		AutoLogin: person,
	})
	storeYAML, boltPath := be.store(t, dir)
	w.boltPath = boltPath
	writeFile(t, filepath.Join(dir, "session-secret"), "session-secret-0123456789-0123456789-abcdef")
	writeFile(t, filepath.Join(dir, "admin-token"), adminToken)
	w.cfg = filepath.Join(dir, "keyward.yaml")
	writeFile(t, w.cfg, fmt.Sprintf(`issuer: %[1]s
listen: %[2]s
sessionSecretFile: %[3]s/session-secret
store:
%[4]s
tokens:
  # A retry after a restart must land within the grace window even on a
  # loaded machine: its largest value.
  refreshGracePeriod: 1m
upstreams:
  - id: corp
    issuer: %[5]s
    clientID: keyward
    clientSecret: %[6]s
clients:
  - id: %[7]s
    secret: %[8]s
    redirectURIs: [%[9]s]
  - id: %[10]s
    grantTypes: [%[11]s]
    scopes: [deploy]
    audiences: [deploy-api]
trust:
  - name: ci
    issuer: %[5]s
    audience: %[1]s
    claims: {repository: acme/api}
    subject: "ci:{repository}"
    audiences: [deploy-api]
    scopes: [deploy]
    publicClient: true
    singleUse: true
admin:
  listen: %[12]s
  tokenFile: %[3]s/admin-token
revocationFeed:
  readers: [%[7]s]
logging:
  level: debug
  format: text
`, w.issuer, listen, dir, storeYAML, w.idp.URL(), upSecret, appID, appSecret, appRedirect, ciID, grantExchange, adminListen))
	t.Cleanup(func() {
		if w.proc != nil {
			w.proc.kill()
		}
	})
	return w
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// proc is one running keyward serve.
type proc struct {
	cmd    *exec.Cmd
	out    *output
	exited chan struct{}
	err    error // cmd.Wait's, once exited is closed
}

// start runs keyward serve with KEYWARD_CRASHTEST=spec ("" for none) and
// waits until it answers /healthz, or until it has died (a kill point
// during the start).
func (w *world) start(spec string) *proc {
	w.t.Helper()
	if w.proc != nil {
		w.t.Fatal("start: the previous process still runs")
	}
	cmd := exec.Command(w.bin, "serve", "-c", w.cfg)
	cmd.Env = append(os.Environ(), crashEnv+"="+spec)
	w.starts++
	p := &proc{cmd: cmd, out: &output{path: filepath.Join(w.dir, fmt.Sprintf("keyward-%d.log", w.starts))}, exited: make(chan struct{})}
	f, err := os.OpenFile(p.out.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		w.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	err = cmd.Start()
	_ = f.Close() // the process has its own descriptor
	if err != nil {
		w.t.Fatalf("start keyward: %v", err)
	}
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	w.proc = p
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(w.issuer + "/healthz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-p.exited:
			return p
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("keyward did not answer /healthz within 30s:\n%s", p.out)
		}
	}
}

// killed waits for the process to have killed itself at its kill point.
func (w *world) killed() {
	w.t.Helper()
	p := w.proc
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		w.t.Fatalf("keyward did not reach its kill point within 30s:\n%s", p.out)
	}
	w.proc = nil
	var ee *exec.ExitError
	if !errors.As(p.err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		w.t.Fatalf("keyward ended with %v, want death by SIGKILL at its kill point:\n%s", p.err, p.out)
	}
}

// crash kills the process from outside, with SIGKILL.
func (w *world) crash() {
	w.t.Helper()
	w.proc.kill()
	w.proc = nil
}

func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// stop ends the process gracefully.
func (w *world) stop() {
	w.t.Helper()
	p := w.proc
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		p.kill()
		w.t.Fatalf("keyward did not stop within 15s of SIGTERM:\n%s", p.out)
	}
	w.proc = nil
	if p.err != nil {
		w.t.Fatalf("keyward stopped with %v:\n%s", p.err, p.out)
	}
}

// points returns the write points the process has announced so far.
func (p *proc) points() []string {
	var pts []string
	sc := bufio.NewScanner(strings.NewReader(p.out.String()))
	for sc.Scan() {
		if name, ok := strings.CutPrefix(sc.Text(), pointPrefix); ok {
			pts = append(pts, name)
		}
	}
	return pts
}

// checkBolt opens the bbolt file of a stopped broker and checks every page
// of it (bbolt's own consistency check). No-op for PostgreSQL.
func (w *world) checkBolt() {
	w.t.Helper()
	if w.boltPath == "" {
		return
	}
	db, err := bbolt.Open(w.boltPath, 0o600, &bbolt.Options{Timeout: 5 * time.Second, ReadOnly: true})
	if err != nil {
		w.t.Fatalf("open %s after the kill: %v", w.boltPath, err)
	}
	defer db.Close()
	err = db.View(func(tx *bbolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
	if err != nil {
		w.t.Fatalf("bbolt check of %s after the kill: %v", w.boltPath, err)
	}
}

// output is a process's stdout and stderr, written by the process itself
// into a file (no copying goroutine in between): a line it wrote before
// answering a request is in the file when the answer arrives.
type output struct{ path string }

func (o *output) String() string {
	b, err := os.ReadFile(o.path)
	if err != nil {
		return fmt.Sprintf("(read %s: %v)", o.path, err)
	}
	return string(b)
}

// --- HTTP as a client, an administrator and a verifier see it

// answer is an HTTP answer, or the transport error of a request the
// process died during.
type answer struct {
	status int
	header http.Header
	body   []byte
	err    error
}

func (a answer) json(t *testing.T) map[string]any {
	t.Helper()
	m := map[string]any{}
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("answer %d is not JSON: %v\n%.500s", a.status, err, a.body)
	}
	return m
}

func (a answer) str(t *testing.T, key string) string {
	t.Helper()
	s, _ := a.json(t)[key].(string)
	return s
}

var noRedirects = &http.Client{Timeout: 20 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func do(c *http.Client, req *http.Request) answer {
	resp, err := c.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: b, err: err}
}

func (w *world) post(c *http.Client, u string, form url.Values, user, pass string) answer {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		w.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	return do(c, req)
}

func (w *world) get(c *http.Client, u string) answer {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, u, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	return do(c, req)
}

// tokenRequest posts form to /token as the app.
func (w *world) tokenRequest(form url.Values) answer {
	return w.post(noRedirects, w.issuer+"/token", form, appID, appSecret)
}

// refresh presents a refresh token.
func (w *world) refresh(rt string) answer {
	return w.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
}

// adminCall calls the admin API.
func (w *world) adminCall(method, path, body string) answer {
	req, err := http.NewRequestWithContext(context.Background(), method, w.admin+path, strings.NewReader(body))
	if err != nil {
		w.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return do(noRedirects, req)
}

// signIn is one browser sign-in of the app, step by step (authorize, the
// upstream, the callback), so that a step a kill interrupts can be retried.
type signIn struct {
	w        *world
	browser  *http.Client
	verifier string
	state    string
	next     string // the URL of the next browser step
	code     string // the app's code, once the browser reached the app
}

func (w *world) newSignIn() *signIn {
	jar, err := cookiejar.New(nil)
	if err != nil {
		w.t.Fatal(err)
	}
	s := &signIn{w: w, verifier: randomString(), state: randomString()}
	s.browser = &http.Client{Jar: jar, Timeout: 20 * time.Second, CheckRedirect: noRedirects.CheckRedirect}
	q := url.Values{
		"client_id": {appID}, "response_type": {"code"}, "redirect_uri": {appRedirect},
		"scope": {"openid email profile offline_access"}, "state": {s.state}, "nonce": {randomString()},
		"code_challenge": {s256(s.verifier)}, "code_challenge_method": {"S256"},
	}
	s.next = w.issuer + "/authorize?" + q.Encode()
	return s
}

// step runs the next browser step and returns its answer; a redirect moves
// the sign-in on (to the app's code, or to the next URL).
func (s *signIn) step() answer {
	a := s.w.get(s.browser, s.next)
	if a.err != nil {
		return a
	}
	loc := a.header.Get("Location")
	if a.status != http.StatusFound && a.status != http.StatusSeeOther || loc == "" {
		return a
	}
	u, err := s.w.parse(s.next, loc)
	if err != nil {
		return answer{status: a.status, err: err}
	}
	if strings.HasPrefix(u.String(), appRedirect) {
		if u.Query().Get("state") != s.state || u.Query().Get("code") == "" {
			s.w.t.Fatalf("sign-in: redirect to the app %q, want a code and the state", loc)
		}
		s.code = u.Query().Get("code")
		return a
	}
	s.next = u.String()
	return a
}

func (w *world) parse(base, loc string) (*url.URL, error) {
	b, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	return b.Parse(loc)
}

// toCode runs the browser steps until the app has its code. It returns the
// transport error of a step the broker died during (s.next is that step),
// and fails the test on an answer that is no redirect.
func (s *signIn) toCode() error {
	for s.code == "" {
		a := s.step()
		if a.err != nil {
			return a.err
		}
		if s.code == "" && a.header.Get("Location") == "" {
			s.w.t.Fatalf("sign-in at %s: %d, want a redirect:\n%.800s", s.next, a.status, a.body)
		}
	}
	return nil
}

// redeem redeems the code at /token.
func (s *signIn) redeem() answer {
	return s.w.tokenRequest(url.Values{
		"grant_type": {"authorization_code"}, "code": {s.code}, "redirect_uri": {appRedirect}, "code_verifier": {s.verifier},
	})
}

// tokens is what a sign-in or refresh gave the client.
type tokens struct{ access, refresh, id string }

func (w *world) tokensOf(a answer, what string) tokens {
	w.t.Helper()
	if a.err != nil || a.status != http.StatusOK {
		w.t.Fatalf("%s: %d %v, want 200 with tokens:\n%.500s", what, a.status, a.err, a.body)
	}
	tk := tokens{access: a.str(w.t, "access_token"), refresh: a.str(w.t, "refresh_token"), id: a.str(w.t, "id_token")}
	if tk.access == "" || tk.refresh == "" {
		w.t.Fatalf("%s: no access or refresh token in %s", what, a.body)
	}
	return tk
}

// signInFully signs the person in and returns the tokens.
func (w *world) signInFully() tokens {
	w.t.Helper()
	s := w.newSignIn()
	if err := s.toCode(); err != nil {
		w.t.Fatalf("sign-in: %v\n%s", err, w.proc.out)
	}
	return w.tokensOf(s.redeem(), "code redemption")
}

func randomString() string {
	b := make([]byte, 32) // 43 characters: a valid PKCE verifier
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func s256(verifier string) string {
	h := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

func decodeSegment(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }
