package main

import (
	_ "embed"
	"fmt"
	"io"
	"regexp"
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

// cairnVersion is the stamped version, else the word git describe would
// have given the commit the go command recorded (versionFromBuild).
func cairnVersion() string {
	if version != "" {
		return version
	}
	info, _ := debug.ReadBuildInfo()
	return versionFromBuild(info)
}

// pseudoVersion matches the tail of a Go pseudo-version
// (v0.0.0-20261207022816-7e5d475abcde, +dirty when modified): the go
// command's name for an untagged commit.
var pseudoVersion = regexp.MustCompile(`[.-]\d{14}-[0-9a-f]{12}(\+dirty)?$`)

// versionFromBuild is, for a binary built with `go build` in a git
// checkout and no -X main.version, the word `git describe --tags --always
// --dirty` gives the same tree, as far as the go command's record allows: a
// tag when the commit is tagged, else the commit's short hash, "-dirty"
// either way when the tree had changes. A tag that is not on the commit
// itself (describe's v1.2.3-4-gabc1234) cannot be told from the record; the
// short hash names the same commit. The go command counts untracked files
// as changes, git describe does not. "dev", the builder's word outside git,
// when the binary carries no record (-buildvcs=false, go run).
func versionFromBuild(info *debug.BuildInfo) string {
	if info == nil {
		return "dev"
	}
	var rev string
	var modified bool
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	dirty := ""
	if modified {
		dirty = "-dirty"
	}
	v := info.Main.Version
	if v != "" && v != "(devel)" && !pseudoVersion.MatchString(v) {
		// A tag: git describe's form of it (-dirty, not +dirty).
		tag := strings.TrimSuffix(v, "+dirty")
		if rev == "" && tag != v {
			dirty = "-dirty"
		}
		return tag + dirty
	}
	if len(rev) >= 7 {
		return rev[:7] + dirty
	}
	return "dev"
}
