package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"
)

// Exit codes of keyward (keyward admin documents them in its help).
const (
	exitFailure      = 1 // usage error or any other failure
	exitNotFound     = 2 // unknown subject or session
	exitUnauthorized = 3 // the admin API refused the token
)

// exitError carries the process exit code of a failure.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// exitCode is the process exit code for err (non-nil).
func exitCode(err error) int {
	var e *exitError
	if errors.As(err, &e) {
		return e.code
	}
	return exitFailure
}

const adminTokenEnv = "KEYWARD_ADMIN_TOKEN"

// adminCLI is the state shared by the keyward admin subcommands.
type adminCLI struct {
	server    string
	tokenFile string
	json      bool
	timeout   time.Duration
	// serverSet: --server was given (then no demo is looked for).
	serverSet bool
}

func newAdminCommand() *cobra.Command {
	a := &adminCLI{}
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Administer a running broker through its admin API",
		Long: `Administer a running broker through its admin API (docs/admin-api.md): list
subjects and sessions, deprovision and reinstate people, end sessions, rotate
keys, read the audit log. It talks to the API only, never to the database
file (bbolt allows one process). The broker serves the API when
admin.tokenFile is set in its configuration.

The token comes from --token-file, or else from the KEYWARD_ADMIN_TOKEN
environment variable. With neither, and no --server, keyward admin talks to
the running keyward demo (it leaves its address and token file in a private
folder under $XDG_RUNTIME_DIR or the temporary folder). Output is a readable table, with control characters
in names and emails shown escaped (\x1b, \r, \u202e); --json prints the
API's JSON answer, unchanged, for scripts.

Exit codes:
  0  success
  1  usage error, or any other failure (server unreachable, server error)
  2  not found: unknown subject, email or session
  3  unauthorized: the admin API refused the token`,
		Args: cobra.NoArgs,
		PersistentPreRun: func(cmd *cobra.Command, _ []string) {
			a.serverSet = cmd.Flags().Changed("server")
		},
	}
	f := cmd.PersistentFlags()
	f.StringVar(&a.server, "server", "http://127.0.0.1:8081", "base URL of the admin API (admin.listen)")
	f.StringVar(&a.tokenFile, "token-file", "", "file holding the admin token (default: $"+adminTokenEnv+")")
	f.BoolVar(&a.json, "json", false, "print the API's JSON answer instead of a table")
	f.DurationVar(&a.timeout, "timeout", 30*time.Second, "time limit of each request")

	subjects := &cobra.Command{Use: "subjects", Short: "List or show subjects", Args: cobra.NoArgs}
	subjects.AddCommand(
		&cobra.Command{
			Use: "list", Short: "List every subject", Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error { return a.subjectsList(cmd) },
		},
		&cobra.Command{
			Use: "show SUBJECT", Short: "Show a subject and its sessions", Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error { return a.subjectsShow(cmd, args[0]) },
		},
	)

	var email, reason string
	deprovision := &cobra.Command{
		Use:   "deprovision SUBJECT | --email ADDR",
		Short: "Take a person's access away everywhere",
		Long: `Deprovision a subject in one transaction: it is disabled with not-before =
now, its sessions, refresh tokens and pending codes are deleted, a
revocation-feed entry tells edge verifiers to drop its unexpired tokens, and
the audit log records it. With --email every subject with that email (one
per upstream the person used) is deprovisioned.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case len(args) == 1 && email != "":
				return usageError("give a SUBJECT or --email, not both")
			case len(args) == 0 && email == "":
				return usageError("give a SUBJECT or --email ADDR")
			case email != "":
				return a.deprovisionEmail(cmd, email, reason)
			default:
				return a.deprovision(cmd, args[0], reason)
			}
		},
	}
	deprovision.Flags().StringVar(&email, "email", "", "deprovision every subject with this email")
	deprovision.Flags().StringVar(&reason, "reason", "", "why (recorded in the audit log)")

	var reinstateReason string
	reinstate := &cobra.Command{
		Use:   "reinstate SUBJECT",
		Short: "Let a deprovisioned subject sign in again (old tokens stay void)",
		Args:  cobra.ExactArgs(1),
		RunE:  func(cmd *cobra.Command, args []string) error { return a.reinstate(cmd, args[0], reinstateReason) },
	}
	reinstate.Flags().StringVar(&reinstateReason, "reason", "", "why (recorded in the audit log)")

	var sessSubject, revokeReason string
	sessions := &cobra.Command{Use: "sessions", Short: "List or end Keyward sessions", Args: cobra.NoArgs}
	sessList := &cobra.Command{
		Use: "list", Short: "List sessions", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.sessionsList(cmd, sessSubject) },
	}
	sessList.Flags().StringVar(&sessSubject, "subject", "", "only the sessions of this subject")
	sessRevoke := &cobra.Command{
		Use: "revoke ID", Short: "End a session (its sid goes into the revocation feed)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return a.sessionsRevoke(cmd, args[0], revokeReason) },
	}
	sessRevoke.Flags().StringVar(&revokeReason, "reason", "", "why (recorded in the audit log)")
	sessions.AddCommand(sessList, sessRevoke)

	var rotateReason string
	keysCmd := &cobra.Command{Use: "keys", Short: "List or rotate the signing keys", Args: cobra.NoArgs}
	keysRotate := &cobra.Command{
		Use:   "rotate",
		Short: "Rotate early (the next key signs once it has been published for one JWKS max-age)",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return a.keys(cmd, true, rotateReason) },
	}
	keysRotate.Flags().StringVar(&rotateReason, "reason", "", "why (recorded in the audit log)")
	keysCmd.AddCommand(&cobra.Command{
		Use: "list", Short: "List the key set", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.keys(cmd, false, "") },
	}, keysRotate)

	clients := &cobra.Command{Use: "clients", Short: "List the registered clients", Args: cobra.NoArgs}
	clients.AddCommand(&cobra.Command{
		Use: "list", Short: "List the registered clients", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.clientsList(cmd) },
	})

	var limit int
	audit := &cobra.Command{Use: "audit", Short: "Read the audit log", Args: cobra.NoArgs}
	tail := &cobra.Command{
		Use: "tail", Short: "Show the newest audit events, oldest first", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.auditTail(cmd, limit) },
	}
	tail.Flags().IntVar(&limit, "limit", 50, "how many events (1-1000)")
	audit.AddCommand(tail)

	var scimReason string
	scimCmd := &cobra.Command{Use: "scim", Short: "SCIM provisioning", Args: cobra.NoArgs}
	scimRotate := &cobra.Command{
		Use:   "rotate-token UPSTREAM",
		Short: "Make a new SCIM bearer token for an upstream (the old one works until the next rotation)",
		Long: `Make a new bearer token for the upstream's SCIM provisioning and print it
once: paste it into the identity provider's provisioning settings. The token
it replaces keeps working until the next rotation, so provisioning does not
stop in between; the first rotation replaces scim[].tokenFile's token.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return a.scimRotateToken(cmd, args[0], scimReason) },
	}
	scimRotate.Flags().StringVar(&scimReason, "reason", "", "why (recorded in the audit log)")
	scimCmd.AddCommand(scimRotate)

	cmd.AddCommand(subjects, deprovision, reinstate, sessions, keysCmd, clients, audit, a.backupCommand(), scimCmd)
	return cmd
}

func usageError(format string, args ...any) error {
	return &exitError{code: exitFailure, err: fmt.Errorf(format, args...)}
}

// findDemo points a at a running keyward demo when nothing names a server
// or token: no --server, --token-file or $KEYWARD_ADMIN_TOKEN.
func (a *adminCLI) findDemo() error {
	if a.serverSet || a.tokenFile != "" || strings.TrimSpace(os.Getenv(adminTokenEnv)) != "" {
		return nil
	}
	st, ok, err := readDemoState()
	if err != nil {
		return usageError("%w", err)
	}
	if ok {
		a.server, a.tokenFile = st.Server, st.TokenFile
	}
	return nil
}

// token reads the admin token from --token-file or the environment.
func (a *adminCLI) token() (string, error) {
	if a.tokenFile != "" {
		data, err := os.ReadFile(a.tokenFile)
		if err != nil {
			return "", usageError("read the admin token: %w", err)
		}
		if t := strings.TrimSpace(string(data)); t != "" {
			return t, nil
		}
		return "", usageError("%s is empty; it must hold the admin token (admin.tokenFile)", a.tokenFile)
	}
	if t := strings.TrimSpace(os.Getenv(adminTokenEnv)); t != "" {
		return t, nil
	}
	return "", usageError("no admin token: pass --token-file (the broker's admin.tokenFile) or set %s (no keyward demo is running either)", adminTokenEnv)
}

// call sends one request to the admin API and returns the JSON answer. A
// refusal becomes an exitError with the matching exit code and the API's
// message.
func (a *adminCLI) call(ctx context.Context, method, path string, query url.Values, body any) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	resp, err := a.send(ctx, method, path, query, body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	return data, nil
}

// send sends one request to the admin API and returns a 2xx answer for the
// caller to read and close. A refusal becomes an exitError with the
// matching exit code and the API's message.
func (a *adminCLI) send(ctx context.Context, method, path string, query url.Values, body any) (*http.Response, error) {
	if err := a.findDemo(); err != nil {
		return nil, err
	}
	tok, err := a.token()
	if err != nil {
		return nil, err
	}
	u := strings.TrimRight(a.server, "/") + "/admin/v1/" + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, usageError("--server %q: %w", a.server, err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w (is keyward serve running with admin.tokenFile set, and is --server right?)", method, u, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	var e struct{ Error, Message string }
	msg := strings.TrimSpace(string(data))
	if json.Unmarshal(data, &e) == nil && e.Message != "" {
		msg = e.Message
	}
	msg = printable(msg)
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		return nil, &exitError{code: exitUnauthorized, err: fmt.Errorf("unauthorized: %s", msg)}
	case http.StatusNotFound:
		return nil, &exitError{code: exitNotFound, err: errors.New(msg)}
	default:
		return nil, &exitError{code: exitFailure, err: fmt.Errorf("%s (HTTP %d)", msg, resp.StatusCode)}
	}
}

// run calls the API and decodes its answer into v, or prints it with --json
// (then it returns false: nothing more to print).
func (a *adminCLI) run(cmd *cobra.Command, method, path string, query url.Values, body, v any) (bool, error) {
	data, err := a.call(cmd.Context(), method, path, query, body)
	if err != nil {
		return false, err
	}
	if a.json {
		_, err := cmd.OutOrStdout().Write(data)
		return false, err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("decode answer: %w", err)
	}
	return true, nil
}

// newTable starts a table on w; its header cells, like row's, pass through
// printable.
func newTable(w io.Writer, header ...string) *tabwriter.Writer {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for i, h := range header {
		header[i] = printable(h)
	}
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	return tw
}

// row writes one table row: each cell through printable, "-" for an empty
// one.
func row(tw io.Writer, cols ...string) {
	for i, c := range cols {
		if c == "" {
			c = "-"
		}
		cols[i] = printable(c)
	}
	fmt.Fprintln(tw, strings.Join(cols, "\t"))
}

// printable escapes, as Go string literals do (\x1b, \r, \u202e), the runes
// of s that would act on the terminal or the table instead of showing:
// C0 and C1 controls (ESC, BEL, CR, LF, tab…), DEL, the Unicode bidi
// controls and line/paragraph separators, and bytes that are not UTF-8.
// Everything else, backslashes included, is kept. Names and emails come
// from upstream identity providers, so every string keyward admin prints
// in its tables and messages goes through it; --json prints the API's
// answer unchanged.
func printable(s string) string {
	if utf8.ValidString(s) && strings.IndexFunc(s, unprintable) < 0 {
		return s
	}
	var b strings.Builder
	for rest := s; rest != ""; {
		r, size := utf8.DecodeRuneInString(rest)
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, rest[0])
		case unprintable(r):
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(rest[:size])
		}
		rest = rest[size:]
	}
	return b.String()
}

// unprintable reports the runes printable escapes.
func unprintable(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) ||
		unicode.In(r, unicode.Zl, unicode.Zp)
}

func fmtTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func plainCount(n int, word string) string { return strconv.Itoa(n) + " " + plural(n, word) }
