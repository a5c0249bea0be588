package main

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestCommandTreeRefusesUnknownArguments walks every command of the binary:
// each group refuses a misspelt subcommand with a non-zero exit code and a
// hint, and prints its help (exit 0) only when called bare.
func TestCommandTreeRefusesUnknownArguments(t *testing.T) {
	var groups []string
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.HasSubCommands() {
			groups = append(groups, strings.TrimPrefix(c.CommandPath(), "keyward"))
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(newRootCommand())
	if len(groups) < 6 { // keyward, admin, subjects, sessions, keys, clients, audit
		t.Fatalf("found command groups %q, want at least 6", groups)
	}
	for _, g := range groups {
		path := strings.Fields(g)
		t.Run("keyward "+g, func(t *testing.T) {
			// A typo of the group's first subcommand: one letter dropped.
			root := newRootCommand()
			group, _, err := root.Find(path)
			if err != nil {
				t.Fatal(err)
			}
			first := group.Commands()[0].Name()
			typo := first[:len(first)-1]
			msg, code := runCLI(t, append(append([]string{}, path...), typo, "extra")...)
			if code == 0 {
				t.Fatalf("keyward %s %s extra exited 0, output %q; want non-zero", g, typo, msg)
			}
			if !strings.Contains(msg, `unknown command "`+typo+`"`) {
				t.Errorf("output %q does not name the unknown command %q", msg, typo)
			}
			if !strings.Contains(msg, "Did you mean this?\n\t"+first) {
				t.Errorf("output %q does not suggest %q", msg, first)
			}

			out, code := runCLI(t, path...)
			if code != 0 {
				t.Fatalf("keyward %s (bare) exited %d (%q), want its help and 0", g, code, out)
			}
			if !strings.Contains(out, "Available Commands:") {
				t.Errorf("keyward %s (bare) printed %q, want its help", g, out)
			}
		})
	}
}

// TestCommandTreeExamplesFromTheIssue are the exact typos a script could
// have taken for success.
func TestCommandTreeExamplesFromTheIssue(t *testing.T) {
	for _, args := range [][]string{
		{"admin", "deprovison", "bob"},
		{"admin", "keys", "rotat"},
		{"admin", "sessions", "end", "abc"},
		{"admin", "subjects", "lst"},
		{"nosuch"},
	} {
		if out, code := runCLI(t, args...); code == 0 {
			t.Errorf("keyward %s exited 0 (%q), want non-zero", strings.Join(args, " "), out)
		}
	}
}
