package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/cairn-os/cairn/config"
)

func init() {
	register("validate", "check cloud-configs and print every problem with file:line:column", func(args []string) int {
		return validate(args, os.Stdin, os.Stdout, os.Stderr)
	})
}

const validateUsage = `usage: cairn validate [--print] [--merge] FILE...

Checks each cloud-config FILE ("-" reads standard input) and prints every
problem as FILE:LINE:COL: error|warning: message on standard error.
Exits 1 when any file has an error, 0 otherwise (warnings included).
A file named network-config (or network-config.*) is read as a NoCloud
network-config file: network config version 2, not a whole cloud-config.

  --print  write the normalized config (defaults filled, secrets
           redacted) to standard output
  --merge  treat the FILEs as one node's config sources, in order: later
           files win per key, as the init merges baked config, seed and URL
`

// validate is the command's body, with its streams passed in for tests.
func validate(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, validateUsage) }
	printCfg := fs.Bool("print", false, "write the normalized, redacted config to standard output")
	merge := fs.Bool("merge", false, "merge the files in order as one node's sources")
	// Flags may come before or after the files.
	var files []string
	for {
		if err := fs.Parse(args); err != nil {
			if err == flag.ErrHelp {
				return 0
			}
			return 2
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		files = append(files, args[0])
		args = args[1:]
	}
	if len(files) == 0 {
		fmt.Fprint(stderr, validateUsage)
		return 2
	}

	var srcs []config.Source
	status := 0
	stdinRead := false
	for _, f := range files {
		var data []byte
		var err error
		name := f
		if f == "-" {
			name = "<stdin>"
			if stdinRead {
				fmt.Fprintln(stderr, "cairn: validate: standard input (-) can be given only once")
				return 2
			}
			stdinRead = true
			data, err = io.ReadAll(io.LimitReader(stdin, config.MaxDocumentSize+1))
			if err != nil {
				err = fmt.Errorf("reading standard input: %w", err)
			}
		} else {
			data, err = os.ReadFile(f)
		}
		if err != nil {
			fmt.Fprintf(stderr, "cairn: validate: %v\n", err)
			status = 1
			continue
		}
		src := config.Source{Name: name, Data: data}
		if base := filepath.Base(f); base == "network-config" || strings.HasPrefix(base, "network-config.") {
			src.Kind = config.NetworkConfig
		}
		srcs = append(srcs, src)
	}

	var groups [][]config.Source
	if *merge {
		groups = [][]config.Source{srcs}
	} else {
		for _, s := range srcs {
			groups = append(groups, []config.Source{s})
		}
	}
	printed := 0
	for _, g := range groups {
		cfg, diags := config.Load(g...)
		for _, d := range diags {
			fmt.Fprintln(stderr, d.String())
		}
		if diags.HasErrors() {
			status = 1
			continue
		}
		if *printCfg {
			out, err := cfg.Redacted().Marshal()
			if err != nil {
				fmt.Fprintf(stderr, "cairn: validate: %v\n", err)
				status = 1
				continue
			}
			if printed > 0 {
				fmt.Fprintln(stdout, "---")
			}
			stdout.Write(out)
			printed++
		}
	}
	return status
}
