package harness

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTick is the unit of utime and stime in /proc/PID/stat (USER_HZ; 100
// on every Linux architecture Go supports: `getconf CLK_TCK`).
const clockTick = 10 * time.Millisecond

// Build compiles pkg (an import path of this module, e.g.
// "github.com/keyward/keyward/cmd/keyward") into dir and returns the binary's
// path. It runs `go build` in the current directory, which must be inside
// the module.
func Build(ctx context.Context, dir, pkg string) (string, error) {
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return out, nil
}

// FreeAddr returns a 127.0.0.1 address that was free a moment ago.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// Proc is a server running as its own process, so that its CPU time and
// memory can be read from /proc without the load generator's.
type Proc struct {
	Name string
	URL  string // http://127.0.0.1:PORT
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// StartProc runs bin with args, its output appended to logPath, and waits
// until GET url+readyPath answers 200 (at most 10 s).
func StartProc(ctx context.Context, name, bin string, args []string, url, readyPath, logPath string) (*Proc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...) //nolint:gosec // the harness runs what it built
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, URL: url, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		_ = logf.Close()
		close(p.done)
	}()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := Get(ctx, client, url+readyPath); err == nil {
			return p, nil
		} else if time.Now().After(deadline) || ctx.Err() != nil {
			p.Stop()
			return nil, fmt.Errorf("%s did not become ready (see %s): %w", name, logPath, err)
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("%s exited: %v (see %s)", name, p.err, logPath)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// PID is the process id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// CPUTicks is the process's utime+stime so far, in clock ticks (see
// CPUFromTicks); -1 if /proc cannot be read.
func (p *Proc) CPUTicks() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.PID()))
	if err != nil {
		return -1
	}
	// Fields after "(comm)": state is field 3, utime 14, stime 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return -1
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return u + s
}

// CPUFromTicks converts a CPUTicks difference to time.
func CPUFromTicks(n int64) time.Duration { return time.Duration(n) * clockTick }

// Memory is the process's resident set now (VmRSS) and at its peak (VmHWM),
// in bytes.
func (p *Proc) Memory() (rss, peak int64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.PID()))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		for key, dst := range map[string]*int64{"VmRSS:": &rss, "VmHWM:": &peak} {
			if v, ok := strings.CutPrefix(sc.Text(), key); ok {
				var kb int64
				if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb); err == nil {
					*dst = kb << 10
				}
			}
		}
	}
	return rss, peak
}

// Stop sends SIGTERM and waits up to 5 s, then kills.
func (p *Proc) Stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// VerifyConfig is the verify.yaml that keyward-bench gives `keyward verify`:
// the broker as issuer (keys from its discovery document), audience
// ClientID, RS256 only, two route rules, JSON log at info (the verifier
// logs nothing per request). Cache.MaxEntries -1 disables the verified-token
// cache; 0 keeps the default (10000).
func VerifyConfig(issuer, listen string, cacheEntries int) string {
	cache := ""
	if cacheEntries != 0 {
		cache = fmt.Sprintf("cache: {maxEntries: %d}\n", cacheEntries)
	}
	return fmt.Sprintf(`issuer: %s
audience: [%s]
listen: %s
algorithms: [RS256]
%srules:
  - {host: %s, path: /public/, allow: anonymous}
  - {host: %s, path: /orders/, audience: %s, scopes: {anyOf: [email]}}
logging: {level: info, format: json}
`, issuer, ClientID, listen, cache, VerifyHost, VerifyHost, ClientID)
}

// VerifyHost and VerifyURI describe the original request the gateway asks
// about; VerifyHeaders are the headers of such a check.
const (
	VerifyHost = "api.bench.test"
	VerifyURI  = "/orders/123?expand=items"
)

// VerifyHeaders are the headers nginx's auth_request sends for a GET of
// VerifyURI on VerifyHost with token.
func VerifyHeaders(token string) http.Header {
	return http.Header{
		"Authorization":     {"Bearer " + token},
		"X-Original-Uri":    {VerifyURI},
		"X-Original-Method": {http.MethodGet},
		"X-Forwarded-Host":  {VerifyHost},
	}
}

// WrkResult is what one wrk run reported, plus the server's CPU time.
type WrkResult struct {
	Requests    int64
	Elapsed     time.Duration
	Rate        float64
	P50, P99    time.Duration
	Non2xx      int64
	SocketErrs  string // wrk's "Socket errors" line, if any
	ServerCPU   time.Duration
	Concurrency int
}

// CPUPerOp is the server's CPU time per request.
func (r WrkResult) CPUPerOp() time.Duration {
	if r.Requests == 0 {
		return 0
	}
	return r.ServerCPU / time.Duration(r.Requests)
}

var (
	wrkReqs  = regexp.MustCompile(`(\d+) requests in ([0-9.]+\w+),`)
	wrkRate  = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkPct   = regexp.MustCompile(`(?m)^\s+(50|99)(?:\.000)?%\s+([0-9.]+\w+)`)
	wrkNon2  = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	wrkSockE = regexp.MustCompile(`Socket errors: [^\n]+`)
)

// RunWrk runs `wrk -tT -cC -dD --latency` with hdr against url and reads
// p's CPU time around it.
func RunWrk(ctx context.Context, p *Proc, threads, conns int, d time.Duration, url string, hdr http.Header) (WrkResult, error) {
	args := []string{fmt.Sprintf("-t%d", threads), fmt.Sprintf("-c%d", conns), fmt.Sprintf("-d%ds", int(d.Seconds())), "--latency"}
	for k, vs := range hdr {
		for _, v := range vs {
			args = append(args, "-H", k+": "+v)
		}
	}
	args = append(args, url)
	c0 := p.CPUTicks()
	out, err := exec.CommandContext(ctx, "wrk", args...).CombinedOutput()
	c1 := p.CPUTicks()
	if err != nil {
		return WrkResult{}, fmt.Errorf("wrk: %w\n%s", err, out)
	}
	r := WrkResult{ServerCPU: CPUFromTicks(c1 - c0), Concurrency: conns}
	s := string(out)
	m := wrkReqs.FindStringSubmatch(s)
	if m == nil {
		return r, fmt.Errorf("wrk: cannot read the request count:\n%s", s)
	}
	r.Requests, _ = strconv.ParseInt(m[1], 10, 64)
	r.Elapsed, _ = time.ParseDuration(m[2])
	if m := wrkRate.FindStringSubmatch(s); m != nil {
		r.Rate, _ = strconv.ParseFloat(m[1], 64)
	}
	for _, m := range wrkPct.FindAllStringSubmatch(s, -1) {
		d, err := time.ParseDuration(m[2])
		if err != nil {
			continue
		}
		if m[1] == "50" {
			r.P50 = d
		} else {
			r.P99 = d
		}
	}
	if m := wrkNon2.FindStringSubmatch(s); m != nil {
		r.Non2xx, _ = strconv.ParseInt(m[1], 10, 64)
	}
	r.SocketErrs = wrkSockE.FindString(s)
	if r.Rate == 0 {
		return r, errors.New("wrk: no Requests/sec in its output")
	}
	return r, nil
}
