// Package multicall chooses which program of a multicall binary to run
// from its command line, the way busybox and k3s do: by the name it was
// started as (a symlink named after the program), by an environment
// variable a program sets before re-executing itself through
// os.Executable() (which resolves the symlink), or by the first argument.
// The node has two such binaries: cairn-node (the daemons) and cairn-pod
// (what runs once per pod or volume: the CNI plugins, the runc shim, mount).
package multicall

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Env names the applet a re-executed multicall binary runs: the runc shim
// starts its long-running copy through os.Executable(), which is the
// binary, not the link, so it sets Env first. Both binaries read the same
// variable (test/idle reads it to name the process).
const Env = "CAIRN_NODE_APPLET"

// Pick chooses the program for argv: the base name of argv[0] when it is
// known, else env when it is known, else argv[1]. It returns the name and
// the arguments the program sees, its own name first; args is nil when
// nothing known was found (name is then what was asked for, or "").
func Pick(argv []string, env string, known func(string) bool) (name string, args []string) {
	if len(argv) == 0 {
		return "", nil
	}
	if base := filepath.Base(argv[0]); known(base) {
		return base, argv
	}
	if known(env) {
		return env, argv
	}
	if len(argv) > 1 {
		if known(argv[1]) {
			return argv[1], append([]string{argv[1]}, argv[2:]...)
		}
		return argv[1], nil
	}
	return "", nil
}

// Binary is one multicall binary: its name in /usr/bin, its applets (each
// gets os.Args with os.Args[0] set to the applet's name and returns the
// process's exit status), and a line for its usage that points to the
// other binary.
type Binary struct {
	Name    string
	Applets map[string]func() int
	SeeAlso string
}

// Main runs the applet os.Args and $CAIRN_NODE_APPLET choose and exits with
// its status; without one it prints the usage and exits 2.
func (b Binary) Main() {
	os.Exit(b.run(os.Args, os.Getenv(Env), os.Stderr))
}

func (b Binary) run(argv []string, env string, stderr io.Writer) int {
	name, args := Pick(argv, env, func(n string) bool { _, ok := b.Applets[n]; return ok })
	applet, ok := b.Applets[name]
	if !ok || args == nil {
		b.usage(stderr, name)
		return 2
	}
	os.Args = args
	return applet()
}

func (b Binary) usage(w io.Writer, asked string) {
	var s strings.Builder
	if asked != "" {
		fmt.Fprintf(&s, "%s: %q is not an applet of this binary\n", b.Name, asked)
	}
	fmt.Fprintf(&s, "usage: %s APPLET [ARGS...], or run it through a link named after the applet\napplets:\n", b.Name)
	names := make([]string, 0, len(b.Applets))
	for n := range b.Applets {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		s.WriteString("  " + n + "\n")
	}
	if b.SeeAlso != "" {
		s.WriteString(b.SeeAlso + "\n")
	}
	io.WriteString(w, s.String()) //nolint:errcheck // the usage on stderr; nothing to do if it fails
}
