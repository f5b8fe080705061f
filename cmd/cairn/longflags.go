package main

import (
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// longFlags rewrites the single-dash long flags of earlier cairn releases
// (-board NAME, -squashfs-level=19), which Go's flag package accepted, to
// the GNU spelling (--board NAME) for cmd, the command args name. Without
// it pflag would read -board as -b with the value "oard". Values of flags
// and everything after "--" are left alone.
func longFlags(cmd *cobra.Command, args []string) []string {
	cmd.InitDefaultHelpFlag() // -help too
	lookup := func(name string) *pflag.Flag {
		if f := cmd.Flags().Lookup(name); f != nil {
			return f
		}
		return cmd.InheritedFlags().Lookup(name)
	}
	shorthand := func(c string) *pflag.Flag {
		if f := cmd.Flags().ShorthandLookup(c); f != nil {
			return f
		}
		return cmd.InheritedFlags().ShorthandLookup(c)
	}
	out := make([]string, len(args))
	copy(out, args)
	for i := 0; i < len(out); i++ {
		a := out[i]
		if a == "--" {
			break
		}
		if len(a) < 2 || a[0] != '-' {
			continue
		}
		var f *pflag.Flag
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch {
		case strings.HasPrefix(a, "--"):
			f = lookup(name)
		case len(name) > 1 && lookup(name) != nil:
			f = lookup(name)
			out[i] = "-" + a
		case len(name) == 1:
			f = shorthand(name)
		}
		// A flag that takes a value and was not given one with = takes
		// the next argument, whatever it looks like.
		if f != nil && !hasValue && f.NoOptDefVal == "" {
			i++
		}
	}
	return out
}
