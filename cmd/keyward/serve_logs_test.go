package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// jsonLineKeys returns the top-level keys of one JSON log line in order,
// duplicates included (slog's JSON handler writes a key as often as it was
// added, and encoding/json would keep only the last).
func jsonLineKeys(t *testing.T, line string) []string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(line))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("log line is not a JSON object: %s", line)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("log line %s: %v", line, err)
		}
		keys = append(keys, tok.(string))
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("log line %s: %v", line, err)
		}
	}
	return keys
}

// textLineKeys returns the keys of one log line of slog's text handler in
// order, duplicates included.
func textLineKeys(t *testing.T, line string) []string {
	t.Helper()
	var keys []string
	for s := strings.TrimSpace(line); s != ""; s = strings.TrimLeft(s, " ") {
		key, rest, ok := textToken(s, "=")
		if !ok || !strings.HasPrefix(rest, "=") {
			t.Fatalf("log line is not key=value text: %s", line)
		}
		keys = append(keys, key)
		if _, s, ok = textToken(rest[1:], " "); !ok {
			t.Fatalf("log line has a bad quoted value: %s", line)
		}
	}
	return keys
}

// textToken splits a quoted or bare token (ending before stop) off s.
func textToken(s, stop string) (tok, rest string, ok bool) {
	if strings.HasPrefix(s, `"`) {
		q, err := strconv.QuotedPrefix(s)
		if err != nil {
			return "", "", false
		}
		tok, _ = strconv.Unquote(q)
		return tok, s[len(q):], true
	}
	if i := strings.Index(s, stop); i >= 0 {
		return s[:i], s[i:], true
	}
	return s, "", true
}

// checkNoRepeatedKey fails the test for every log line that has a key twice
// and returns the lines' values of key "component".
func checkNoRepeatedKey(t *testing.T, log string, keysOf func(*testing.T, string) []string) map[string]bool {
	t.Helper()
	components := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		seen := map[string]bool{}
		for _, k := range keysOf(t, line) {
			if seen[k] {
				t.Errorf("log line has %q twice: %s", k, line)
			}
			seen[k] = true
		}
		if m := regexp.MustCompile(`component"?[=:]"?([\w./-]+)`).FindStringSubmatch(line); m != nil {
			components[m[1]] = true
		}
	}
	return components
}

// TestServeLogsListeners starts serve with the admin API and metrics on and
// JSON logs: each listener it opens is logged once with its real address,
// and no log line repeats a key.
func TestServeLogsListeners(t *testing.T) {
	dir := t.TempDir()
	cfgPath := writeFile(t, dir, "keyward.yaml", fmt.Sprintf(`issuer: http://127.0.0.1:5556
listen: 127.0.0.1:0
sessionSecretFile: %s
store: {path: %s}
upstreams:
  - {id: corp, issuer: %s, clientID: keyward, clientSecret: upstream-secret}
clients:
  - {id: app, secret: app-secret, redirectURIs: ["http://127.0.0.1:3000/callback"]}
metrics: {listen: "localhost:0"}
admin: {listen: "%s", tokenFile: %s}
logging: {format: json, level: debug}
`, writeFile(t, dir, "session-secret", strings.Repeat("s", 32)+"\n"), filepath.Join(dir, "keyward.db"),
		unreachableIssuer(t), strings.TrimPrefix(unreachableIssuer(t), "http://"), writeFile(t, dir, "admin-token", strings.Repeat("a", 32)+"\n")))
	cfg, sec, err := loadConfigFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	logs := &lockedBuffer{}
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, sec, logs) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve ended with %v", err)
		}
	}()
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(logs.String(), `"msg":"keyward serving"`); time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-done:
			t.Fatalf("serve stopped early: %v\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start within 20s:\n%s", logs.String())
		}
	}

	listens := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var l struct{ Msg, Listen string }
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("log line is not JSON: %s", line)
		}
		if l.Listen != "" {
			if _, twice := listens[l.Msg]; twice {
				t.Errorf("%q logged twice", l.Msg)
			}
			listens[l.Msg] = l.Listen
		}
	}
	for _, msg := range []string{"keyward serving", "admin API serving", "metrics serving"} {
		addr := listens[msg]
		if addr == "" || strings.HasSuffix(addr, ":0") {
			t.Fatalf("no %q line with the listener's address in the log:\n%s", msg, logs.String())
		}
	}
	// The logged metrics address is the one serving.
	resp, err := http.Get("http://" + listens["metrics serving"] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("go_goroutines")) {
		t.Fatalf("metrics at the logged address: %d\n%.300s", resp.StatusCode, body)
	}
	checkNoRepeatedKey(t, logs.String(), jsonLineKeys)
}

// TestServeMetricsListenError: a metrics address in use fails serve before
// it reports serving, naming the setting.
func TestServeMetricsListenError(t *testing.T) {
	dir := t.TempDir()
	cfg, sec, err := loadConfigFile(writeFile(t, dir, "keyward.yaml", fmt.Sprintf(`issuer: http://127.0.0.1:5556
listen: 127.0.0.1:0
sessionSecretFile: %s
store: {path: %s}
upstreams:
  - {id: corp, issuer: %s, clientID: keyward, clientSecret: upstream-secret}
clients:
  - {id: app, secret: app-secret, redirectURIs: ["http://127.0.0.1:3000/callback"]}
metrics: {listen: "%s"}
`, writeFile(t, dir, "session-secret", strings.Repeat("s", 32)+"\n"), filepath.Join(dir, "keyward.db"),
		unreachableIssuer(t), busyAddr(t))))
	if err != nil {
		t.Fatal(err)
	}
	err = serve(t.Context(), cfg, sec, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "metrics.listen") {
		t.Fatalf("serve with a busy metrics address: %v", err)
	}
}

// busyAddr is a loopback address on which the test keeps listening.
func busyAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return ln.Addr().String()
}

// TestDemoLogsNoRepeatedKey signs in through the demo with debug logs: no
// log line of the demo's components names a key twice.
func TestDemoLogsNoRepeatedKey(t *testing.T) {
	logs := &lockedBuffer{}
	appURL, _ := startDemoLogging(t, demoOptions{port: 0, verbose: true}, logs)
	signInDemo(t, appURL, "alice", "alice-demo")
	components := checkNoRepeatedKey(t, logs.String(), textLineKeys)
	for _, c := range []string{"fakeidp", "demoapp", "web"} {
		if !components[c] {
			t.Errorf("no log line of component %s; the check saw %v", c, components)
		}
	}
}
