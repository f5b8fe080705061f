package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cairn-os/cairn/init/boot"
	"github.com/cairn-os/cairn/init/boot/modules"
)

// modprobeMain is the init's modprobe personality. The system image links
// /sbin/modprobe to the init, and the kernel runs it ("modprobe -q --
// NAME") when something needs a module it does not have yet: a netfilter
// match for an iptables rule, a filesystem, a socket family.
func modprobeMain(args []string) int {
	name, quiet, err := parseModprobeArgs(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "modprobe: %v\n", err)
		return 2
	}
	ix, err := modules.Open(boot.ModuleDir("/"))
	if err == nil {
		_, err = modules.NewLoader(ix).Request(name)
	}
	if err != nil {
		if !quiet || !errors.Is(err, modules.ErrNotFound) {
			fmt.Fprintf(os.Stderr, "modprobe: %v\n", err)
		}
		return 1
	}
	return 0
}

// parseModprobeArgs takes the module (or alias) to load from modprobe's
// command line. Options that only change modprobe's manner (-b, -v, -s)
// are accepted; module parameters are refused: the image has no
// modprobe.d to carry them either.
func parseModprobeArgs(args []string) (name string, quiet bool, err error) {
	var names []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			names = append(names, args[i+1:]...)
			i = len(args)
		case a == "-q" || a == "--quiet":
			quiet = true
		case a == "-b" || a == "--use-blacklist" || a == "-v" || a == "--verbose" || a == "-s" || a == "--syslog":
		case strings.HasPrefix(a, "-"):
			return "", false, fmt.Errorf("option %s is not supported; cairn's modprobe loads one module or alias with its dependencies", a)
		default:
			names = append(names, a)
		}
	}
	switch {
	case len(names) == 0:
		return "", false, errors.New("no module named; usage: modprobe [-q] [--] MODULE")
	case len(names) > 1:
		return "", false, fmt.Errorf("module parameters (%s) are not supported", strings.Join(names[1:], " "))
	}
	return names[0], quiet, nil
}
