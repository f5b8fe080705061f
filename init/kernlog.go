package main

import (
	"os"

	"github.com/cairn-os/cairn/init/cmdline"
)

// consoleLevel is the kernel's console log level the init sets: messages
// below it reach the console, so 5 lets through errors and warnings and
// keeps notices and information (a bridge port changing state, a file
// system mounted) in the kernel log only, where dmesg shows them.
const consoleLevel = "5"

// kernelLevelWords on the command line say the user chose what the kernel
// prints; the init leaves it alone then.
var kernelLevelWords = []string{"cairn.debug", "loglevel", "debug", "ignore_loglevel", "quiet"}

// quietKernel makes the console cairn's: its lines and the kernel's
// warnings and errors, not the kernel's routine chatter, unless the
// command line asks for the kernel's own level (docs/console.md). It says
// nothing: a machine where it fails prints as before.
func quietKernel(l cmdline.Line, printk string) {
	for _, w := range kernelLevelWords {
		if l.Has(w) {
			return
		}
	}
	os.WriteFile(printk, []byte(consoleLevel), 0)
}
