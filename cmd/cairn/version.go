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

// cairnVersion is the module version the binary was built from, or the
// commit (with "-dirty" for uncommitted changes) when the go command
// recorded only that.
func cairnVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch {
		case s.Key == "vcs.revision":
			rev = s.Value
		case s.Key == "vcs.modified" && s.Value == "true":
			dirty = "-dirty"
		}
	}
	if rev == "" {
		return "(devel)"
	}
	return rev[:min(12, len(rev))] + dirty
}
