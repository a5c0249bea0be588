package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/oauth2"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/test/brokertest"
	"github.com/keyward/keyward/web"
)

const (
	cliAdminToken = "admin-token-0123456789-0123456789-abcdef"
	cliApp        = "app"
	cliAppSecret  = "app-secret-0123456789-0123456789-abcdef"
	cliAppRedir   = "http://127.0.0.1:1/app/callback"
)

// adminTestEnv is a broker with its admin API on a live listener, and a
// token file for the CLI.
type adminTestEnv struct {
	env       *brokertest.Env
	server    string
	tokenFile string
}

func newAdminTestEnv(t *testing.T) *adminTestEnv {
	t.Helper()
	env := brokertest.New(t, brokertest.Options{
		Dir: t.TempDir(), NoSync: true, AutoLogin: "alice",
		Clients: []broker.Client{{ID: cliApp, Name: "The App", Secret: cliAppSecret, RedirectURIs: []string{cliAppRedir}}},
	})
	api := httptest.NewServer(web.NewAdmin(web.AdminConfig{Broker: env.Broker, Keys: env.Keys, Token: []byte(cliAdminToken)}))
	t.Cleanup(api.Close)
	file := filepath.Join(t.TempDir(), "admin-token")
	if err := os.WriteFile(file, []byte(cliAdminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return &adminTestEnv{env: env, server: api.URL, tokenFile: file}
}

// admin runs `keyward admin ARGS` with --server and --token-file set, and
// returns its output (and error text) and exit code.
func (e *adminTestEnv) admin(t *testing.T, args ...string) (string, int) {
	t.Helper()
	return runCLI(t, append([]string{"admin", "--server", e.server, "--token-file", e.tokenFile}, args...)...)
}

func runCLI(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out bytes.Buffer
	root := newRootCommand()
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	if err := root.ExecuteContext(t.Context()); err != nil {
		out.WriteString("keyward: " + err.Error() + "\n")
		return out.String(), exitCode(err)
	}
	return out.String(), 0
}

// signIn runs a code flow in a new browser; claims, when non-nil, override
// the upstream ID token's (another person: another sub).
func (e *adminTestEnv) signIn(t *testing.T, claims map[string]any) *oauth2.Token {
	t.Helper()
	if claims != nil {
		e.env.IdPs[0].SetNextClaims(claims)
	}
	tok, err := e.env.SignIn(t.Context(), *e.oauth())
	if err != nil {
		t.Fatalf("sign in: %v", err)
	}
	return tok
}

func (e *adminTestEnv) oauth() *oauth2.Config {
	return &oauth2.Config{
		ClientID: cliApp, ClientSecret: cliAppSecret, RedirectURL: cliAppRedir,
		Endpoint: oauth2.Endpoint{AuthURL: e.env.Issuer + "/authorize", TokenURL: e.env.Issuer + "/token", AuthStyle: oauth2.AuthStyleInHeader},
		Scopes:   []string{"openid", "email", "offline_access"},
	}
}

// refresh redeems rt and returns the status and the OAuth error code.
func (e *adminTestEnv) refresh(t *testing.T, rt string) (int, string) {
	t.Helper()
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, e.env.Issuer+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(cliApp, cliAppSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m struct{ Error string }
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m.Error
}

// subjectID finds the subject of email with `keyward admin subjects list --json`.
func (e *adminTestEnv) subjectID(t *testing.T, email string) string {
	t.Helper()
	out, code := e.admin(t, "subjects", "list", "--json")
	if code != 0 {
		t.Fatalf("subjects list --json: exit %d: %s", code, out)
	}
	var l struct {
		Subjects []struct{ ID, Email string }
	}
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatalf("subjects list --json is not JSON: %v: %s", err, out)
	}
	for _, s := range l.Subjects {
		if s.Email == email {
			return s.ID
		}
	}
	t.Fatalf("no subject with email %s in %s", email, out)
	return ""
}

func TestAdminCLIRefusals(t *testing.T) {
	e := newAdminTestEnv(t)
	wrong := filepath.Join(t.TempDir(), "wrong")
	if err := os.WriteFile(wrong, []byte("not-the-admin-token-0123456789-0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		env      string
		wantCode int
		wantText string
	}{
		{"wrong token", []string{"admin", "--server", e.server, "--token-file", wrong, "subjects", "list"}, "", exitUnauthorized, "unauthorized"},
		{"wrong token from env", []string{"admin", "--server", e.server, "keys", "list"}, "nope", exitUnauthorized, "unauthorized"},
		{"no token", []string{"admin", "--server", e.server, "subjects", "list"}, "", exitFailure, "no admin token"},
		{"unknown subject", []string{"admin", "--server", e.server, "--token-file", e.tokenFile, "subjects", "show", "nobody"}, "", exitNotFound, "unknown subject: nobody"},
		{"deprovision unknown subject", []string{"admin", "--server", e.server, "--token-file", e.tokenFile, "deprovision", "nobody"}, "", exitNotFound, "unknown subject: nobody"},
		{"deprovision unknown email", []string{"admin", "--server", e.server, "--token-file", e.tokenFile, "deprovision", "--email", "x@example.com"}, "", exitNotFound, "x@example.com"},
		{"unknown session", []string{"admin", "--server", e.server, "--token-file", e.tokenFile, "sessions", "revoke", "nosuch"}, "", exitNotFound, "unknown session: nosuch"},
		{"subject and email", []string{"admin", "--server", e.server, "--token-file", e.tokenFile, "deprovision", "s", "--email", "x@example.com"}, "", exitFailure, "not both"},
		{"server down", []string{"admin", "--server", "http://127.0.0.1:1", "--token-file", e.tokenFile, "keys", "list"}, "", exitFailure, "is keyward serve running"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(adminTokenEnv, tc.env)
			out, code := runCLI(t, tc.args...)
			if code != tc.wantCode || !strings.Contains(out, tc.wantText) {
				t.Errorf("keyward %s = exit %d %q, want exit %d containing %q", strings.Join(tc.args[3:], " "), code, out, tc.wantCode, tc.wantText)
			}
		})
	}
	t.Run("token from env", func(t *testing.T) {
		t.Setenv(adminTokenEnv, cliAdminToken)
		if out, code := runCLI(t, "admin", "--server", e.server, "clients", "list"); code != 0 || !strings.Contains(out, "The App") {
			t.Errorf("clients list with %s = exit %d %q, want the app", adminTokenEnv, code, out)
		}
	})
}

func TestAdminCLIDeprovisionAndReinstate(t *testing.T) {
	e := newAdminTestEnv(t)
	alice := e.signIn(t, nil)
	bob := e.signIn(t, map[string]any{"sub": "demo-bob", "email": "bob@example.com", "name": "Bob Example"})
	aliceID, bobID := e.subjectID(t, "alice@example.com"), e.subjectID(t, "bob@example.com")

	out, code := e.admin(t, "subjects", "list")
	if code != 0 || !strings.Contains(out, "SUBJECT") || !strings.Contains(out, aliceID) || !strings.Contains(out, bobID) {
		t.Fatalf("subjects list = exit %d:\n%s", code, out)
	}

	out, code = e.admin(t, "deprovision", aliceID, "--reason", "left the company")
	if code != 0 || !strings.Contains(out, "Deprovisioned "+aliceID) {
		t.Fatalf("deprovision = exit %d: %s", code, out)
	}
	if status, errCode := e.refresh(t, alice.RefreshToken); status != http.StatusBadRequest || errCode != "invalid_grant" {
		t.Errorf("alice's refresh after deprovision = %d %q, want 400 invalid_grant", status, errCode)
	}
	status, _ := e.refresh(t, bob.RefreshToken)
	if status != http.StatusOK {
		t.Errorf("bob's refresh after alice's deprovision = %d, want 200", status)
	}
	out, _ = e.admin(t, "subjects", "show", aliceID)
	if !strings.Contains(out, "disabled") || !strings.Contains(out, "0 sessions") {
		t.Errorf("subjects show after deprovision:\n%s\nwant disabled, no sessions", out)
	}
	out, _ = e.admin(t, "sessions", "list")
	if strings.Contains(out, aliceID) || !strings.Contains(out, bobID) {
		t.Errorf("sessions list after deprovision:\n%s\nwant only bob's", out)
	}

	out, code = e.admin(t, "reinstate", aliceID, "--reason", "came back")
	if code != 0 || !strings.Contains(out, "Reinstated "+aliceID) {
		t.Fatalf("reinstate = exit %d: %s", code, out)
	}
	again := e.signIn(t, nil)
	if status, _ := e.refresh(t, again.RefreshToken); status != http.StatusOK {
		t.Errorf("refresh of a new sign-in after reinstate = %d, want 200", status)
	}
	if status, errCode := e.refresh(t, alice.RefreshToken); status != http.StatusBadRequest || errCode != "invalid_grant" {
		t.Errorf("alice's old refresh after reinstate = %d %q, want 400 invalid_grant", status, errCode)
	}

	out, code = e.admin(t, "audit", "tail", "--limit", "5")
	if code != 0 || !strings.Contains(out, "deprovision") || !strings.Contains(out, "left the company") || !strings.Contains(out, "reinstate") {
		t.Errorf("audit tail = exit %d:\n%s", code, out)
	}
	for _, args := range [][]string{{"keys", "list"}, {"keys", "rotate", "--reason", "drill"}, {"clients", "list"}, {"sessions", "list", "--subject", bobID}} {
		if out, code := e.admin(t, args...); code != 0 || len(strings.Split(strings.TrimSpace(out), "\n")) < 2 {
			t.Errorf("keyward admin %s = exit %d:\n%s", strings.Join(args, " "), code, out)
		}
	}
}

// TestAdminEscapesUpstreamStrings: names and emails come from upstream
// identity providers. The tables and messages of keyward admin show their
// control characters escaped, so they can neither drive the terminal (ESC
// sequences, bidi overrides) nor forge rows (CR, LF, tab); --json passes
// the API's answer through unchanged.
func TestAdminEscapesUpstreamStrings(t *testing.T) {
	const (
		email = "eve\x1b[31m@example.com\a"
		name  = "Mallory\r\nsub-2  alice@example.com\tAlice"
		bidi  = "exe.\u202etxt"
	)
	subject := web.AdminSubject{ID: "sub-1", Email: email, Name: name, UpstreamID: bidi}
	session := web.AdminSession{ID: "sid-1", Subject: "sub-1", Email: email, UpstreamID: bidi}
	answers := map[string]any{
		"GET /admin/v1/subjects":                  map[string]any{"subjects": []web.AdminSubject{subject}},
		"GET /admin/v1/subjects/sub-1":            web.AdminSubjectDetail{Subject: subject, Sessions: []web.AdminSession{session}},
		"GET /admin/v1/sessions":                  map[string]any{"sessions": []web.AdminSession{session}},
		"POST /admin/v1/subjects/sub-1/reinstate": map[string]any{"subject": subject},
		"GET /admin/v1/audit": map[string]any{"events": []map[string]any{{
			"seq": 1, "actor": "upstream:" + bidi, "action": "session.revoke", "target": "sid-1", "reason": name,
		}}},
	}
	bodies := map[string][]byte{}
	for k, v := range answers {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		bodies[k] = b
	}
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := bodies[r.Method+" "+r.URL.Path]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":"not_found","message":"no subject \u001b[2J` + "\\r\\n" + `here"}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	}))
	t.Cleanup(api.Close)
	file := filepath.Join(t.TempDir(), "admin-token")
	if err := os.WriteFile(file, []byte(cliAdminToken), 0o600); err != nil {
		t.Fatal(err)
	}
	admin := func(args ...string) string {
		out, _ := runCLI(t, append([]string{"admin", "--server", api.URL, "--token-file", file}, args...)...)
		return out
	}

	for _, args := range [][]string{
		{"subjects", "list"}, {"subjects", "show", "sub-1"}, {"sessions", "list"},
		{"reinstate", "sub-1", "--reason", "back"}, {"audit", "tail"}, {"subjects", "show", "nobody"},
	} {
		out := admin(args...)
		if i := strings.IndexAny(out, "\x1b\a\r\t\u202e"); i >= 0 {
			r, _ := utf8.DecodeRuneInString(out[i:])
			t.Errorf("keyward admin %s printed %q raw:\n%s", strings.Join(args, " "), r, out)
		}
		if n := strings.Count(out, "\n"); args[0] == "sessions" && n != 2 {
			t.Errorf("keyward admin sessions list: %d lines, want 2 (header and one row):\n%s", n, out)
		}
	}
	out := admin("subjects", "list")
	for _, want := range []string{`eve\x1b[31m@example.com\a`, `Mallory\r\nsub-2  alice@example.com\tAlice`, `exe.\u202etxt`} {
		if !strings.Contains(out, want) {
			t.Errorf("keyward admin subjects list lacks %s:\n%s", want, out)
		}
	}
	if out := admin("subjects", "show", "nobody"); !strings.Contains(out, `no subject \x1b[2J\r\nhere`) {
		t.Errorf("an API error message is not escaped: %q", out)
	}
	if out := admin("subjects", "list", "--json"); out != string(bodies["GET /admin/v1/subjects"]) {
		t.Errorf("keyward admin subjects list --json = %q, want the API's answer %q", out, bodies["GET /admin/v1/subjects"])
	}
}

func TestPrintable(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"alice@example.com", "alice@example.com"},
		{`C:\path`, `C:\path`},
		{"Zoë 李 👩‍💻", "Zoë 李 👩‍💻"},
		{"a\x1b[31mb", `a\x1b[31mb`},
		{"\a\b\f\n\r\t\v\x00\x7f", `\a\b\f\n\r\t\v\x00\x7f`},
		{"c1:\u0085\u009b", `c1:\u0085\u009b`},
		{"\u202e\u2066\u200f\u061c", `\u202e\u2066\u200f\u061c`},
		{"line\u2028para\u2029", `line\u2028para\u2029`},
		{"bad\xff\xc3", `bad\xff\xc3`},
		{"\ufffd", "\ufffd"},
	} {
		if got := printable(tc.in); got != tc.want {
			t.Errorf("printable(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
