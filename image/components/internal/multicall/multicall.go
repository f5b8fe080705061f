// Package multicall chooses which program of a multicall binary to run
// from its command line, the way busybox and k3s do: by the name it was
// started as (a symlink named after the program), by an environment
// variable a program sets before re-executing itself through
// os.Executable() (which resolves the symlink), or by the first argument.
package multicall

import "path/filepath"

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
