package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// refuseUnknownSubcommands makes every command group of the tree (a command
// with subcommands and no action of its own) refuse an argument it does not
// know, with a "did you mean" hint, instead of cobra's default of printing
// its help and exiting 0: `keyward admin deprovison bob` must not look like a
// success to a script. A group called with no argument still prints its help.
// Leaf commands keep their own Args rules.
func refuseUnknownSubcommands(cmd *cobra.Command) {
	for _, sub := range cmd.Commands() {
		refuseUnknownSubcommands(sub)
	}
	if !cmd.HasSubCommands() || cmd.Runnable() {
		return
	}
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(c *cobra.Command, args []string) error {
		if len(args) == 0 {
			return c.Help()
		}
		return unknownSubcommand(c, args[0])
	}
}

// unknownSubcommand is the error for arg given to the group c.
func unknownSubcommand(c *cobra.Command, arg string) error {
	msg := fmt.Sprintf("unknown command %q for %q", arg, c.CommandPath())
	if s := c.SuggestionsFor(arg); len(s) > 0 {
		msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t")
	}
	return usageError("%s\n\nRun '%s --help' for the commands it has", msg, c.CommandPath())
}
