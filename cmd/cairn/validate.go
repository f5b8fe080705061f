package main

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cairn-os/cairn/config"
)

func init() { register(newValidateCmd) }

func newValidateCmd() *cobra.Command {
	var printCfg, merge, cluster bool
	cmd := &cobra.Command{
		Use:   "validate [--print] [--merge | --cluster] FILE...",
		Short: "check cloud-configs and print every problem with file:line:column",
		Long: `Checks each cloud-config FILE ("-" reads standard input) and prints every
problem as FILE:LINE:COL: error|warning: message on standard error.
Exits 1 when any file has an error, 0 otherwise (warnings included).
A file named network-config (or network-config.*) is read as a NoCloud
network-config file: network config version 2, not a whole cloud-config.
With --cluster, the FILEs are the configs of one cluster's nodes, checked
together once each is valid: the keys servers must agree on, one token,
and agents pointing at an address the servers serve.`,
		Args: func(_ *cobra.Command, files []string) error {
			if len(files) == 0 {
				return errors.New("no FILE given: name the cloud-configs to check, or - for standard input")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, files []string) error {
			if merge && cluster {
				return usageErrorf("--merge and --cluster do not go together: --merge reads one node's sources, --cluster one file per node")
			}
			return validate(files, printCfg, merge, cluster, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().BoolVarP(&printCfg, "print", "p", false, "write the normalized config (defaults filled, secrets redacted) to standard output")
	cmd.Flags().BoolVar(&merge, "merge", false, "treat the FILEs as one node's config sources, in order: later files win per key, as the init merges baked config, seed and URL")
	cmd.Flags().BoolVar(&cluster, "cluster", false, "treat the FILEs as the configs of one cluster's nodes, one file per node, and check them together")
	return cmd
}

// validate checks files, printing diagnostics to stderr and, with printCfg,
// the normalized configs to stdout; with cluster, it then checks the
// files together as one cluster's nodes. It returns errReported when any
// file has an error.
func validate(files []string, printCfg, merge, cluster bool, stdin io.Reader, stdout, stderr io.Writer) error {
	var srcs []config.Source
	failed := false
	stdinRead := false
	for _, f := range files {
		var data []byte
		var err error
		name := f
		if f == "-" {
			name = "<stdin>"
			if stdinRead {
				return usageErrorf("standard input (-) can be given only once")
			}
			stdinRead = true
			data, err = config.ReadLimited(stdin)
			if err != nil {
				err = fmt.Errorf("reading standard input: %w", err)
			}
		} else {
			data, err = config.ReadFile(f)
		}
		if err != nil {
			fmt.Fprintf(stderr, "cairn validate: %v\n", err)
			failed = true
			continue
		}
		src := config.Source{Name: name, Data: data}
		if base := filepath.Base(f); base == "network-config" || strings.HasPrefix(base, "network-config.") {
			src.Kind = config.NetworkConfig
		}
		srcs = append(srcs, src)
	}

	var groups [][]config.Source
	if merge {
		groups = [][]config.Source{srcs}
	} else {
		for _, s := range srcs {
			groups = append(groups, []config.Source{s})
		}
	}
	printed := 0
	var nodes []*config.Config
	for _, g := range groups {
		cfg, diags := config.Load(g...)
		for _, d := range diags {
			fmt.Fprintln(stderr, d.String())
		}
		if diags.HasErrors() {
			failed = true
			continue
		}
		nodes = append(nodes, cfg)
		if printCfg {
			out, err := cfg.Redacted().Marshal()
			if err != nil {
				fmt.Fprintf(stderr, "cairn validate: %v\n", err)
				failed = true
				continue
			}
			if printed > 0 {
				fmt.Fprintln(stdout, "---")
			}
			stdout.Write(out)
			printed++
		}
	}
	if cluster {
		if failed {
			fmt.Fprintln(stderr, "cairn validate: the cluster is checked once every file is valid")
			return errReported
		}
		diags := config.CheckCluster(nodes)
		for _, d := range diags {
			fmt.Fprintln(stderr, d.String())
		}
		failed = diags.HasErrors()
	}
	if failed {
		return errReported
	}
	return nil
}
