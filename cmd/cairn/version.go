package main

import (
	_ "embed"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// componentsEnv is a copy of image/components/versions.env, where the node
// components' versions are pinned; TestComponentsEnvIsCurrent fails when the
// two differ. go:embed cannot reach into another module's directory, hence
// the copy.
//
//go:generate cp ../../image/components/versions.env components.env
//go:embed components.env
var componentsEnv string

func init() { register(newVersionCmd) }

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "print cairn's version and the versions of the node components it pins",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			printVersion(cmd.OutOrStdout())
			return nil
		},
	}
}

func printVersion(w io.Writer) {
	fmt.Fprintf(w, "cairn %s (%s, %s/%s)\n", cairnVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintln(w, "node components:")
	for _, line := range strings.Split(componentsEnv, "\n") {
		key, value, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok || strings.HasPrefix(key, "#") {
			continue
		}
		name := strings.ReplaceAll(strings.ToLower(strings.TrimSuffix(key, "_VERSION")), "_", "-")
		fmt.Fprintf(w, "  %-14s %s\n", name, value)
	}
}

// version is the build's version word, stamped by `make cairn` with
// -X main.version: the same word `cairn build` gives the images it builds
// from this tree (git describe), so `cairn version` and the nodes'
// os-release agree.
var version string

// cairnVersion is the stamped version; else the module version the go
// command stamped into the binary (a tag, or a pseudo-version naming the
// commit, +dirty for uncommitted changes; `go install`); "(devel)" when
// built without either.
func cairnVersion() string {
	if version != "" {
		return version
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		return info.Main.Version
	}
	return "(devel)"
}
