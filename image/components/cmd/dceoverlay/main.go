// Command dceoverlay writes the overlay and go.mod with which build.sh builds
// cairn-node, so that the linker drops the methods nothing calls (see
// internal/dceoverlay). It lists the packages' dependencies with `go list
// -deps -json` for -goos and -goarch (the target, which `go run` cannot be
// given through GOARCH: that would build this program for it) and the tags.
//
// usage: dceoverlay -o DIR [-goos OS -goarch ARCH] [-tags TAGS] [-kine-drivers pgsql,mysql,sqlite] PACKAGE...
//
// then: go build -modfile DIR/go.mod -overlay DIR/overlay.json ... PACKAGE...
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/cairn-os/cairn/image/components/internal/dceoverlay"
)

func main() {
	out := flag.String("o", "", "directory to write overlay.json, go.mod and go.sum to (inside the module)")
	tags := flag.String("tags", "", "build tags, as for go build")
	goos := flag.String("goos", "", "GOOS of the build (default: go env GOOS)")
	goarch := flag.String("goarch", "", "GOARCH of the build (default: go env GOARCH)")
	kine := flag.String("kine-drivers", "", "comma-separated kine drivers to link (pgsql,mysql,sqlite); empty: all")
	flag.Parse()
	if *out == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: dceoverlay -o DIR [-goos OS -goarch ARCH] [-tags TAGS] [-kine-drivers LIST] PACKAGE...")
		os.Exit(2)
	}
	var opt dceoverlay.Options
	if *kine != "" {
		opt.KineDrivers = strings.Split(*kine, ",")
	}
	var env []string
	if *goos != "" {
		env = append(env, "GOOS="+*goos)
	}
	if *goarch != "" {
		env = append(env, "GOARCH="+*goarch)
	}
	if err := run(*out, *tags, env, opt, flag.Args()); err != nil {
		fmt.Fprintf(os.Stderr, "dceoverlay: %v\n", err)
		os.Exit(1)
	}
}

func run(out, tags string, env []string, opt dceoverlay.Options, patterns []string) error {
	root, err := goEnv("GOMOD")
	if err != nil {
		return err
	}
	if root == "" || root == os.DevNull {
		return errors.New("not inside a Go module")
	}
	modRoot := filepath.Dir(root)
	pkgs, err := list(tags, env, patterns)
	if err != nil {
		return err
	}
	goMod, err := os.ReadFile(filepath.Join(modRoot, "go.mod"))
	if err != nil {
		return err
	}
	goSum, err := os.ReadFile(filepath.Join(modRoot, "go.sum"))
	if err != nil {
		return err
	}
	dir, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	res, err := dceoverlay.Write(dir, modRoot, pkgs, goMod, goSum, opt)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "dceoverlay: %s: text/template changed: %v (%d method names); modules swapped: %s\n",
		out, res.Template, res.TemplateNames, strings.Join(res.Modules, " "))
	return nil
}

func goEnv(name string) (string, error) {
	b, err := exec.Command("go", "env", name).Output()
	if err != nil {
		return "", fmt.Errorf("go env %s: %w", name, err)
	}
	return string(bytes.TrimSpace(b)), nil
}

// list runs go list -deps -json over the patterns, with env added to the
// environment.
func list(tags string, env, patterns []string) ([]dceoverlay.Package, error) {
	args := append([]string{"list", "-deps", "-json=ImportPath,Dir,GoFiles,EmbedFiles,Imports,Module", "-tags", tags}, patterns...)
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	b, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list: %w", err)
	}
	var pkgs []dceoverlay.Package
	dec := json.NewDecoder(bytes.NewReader(b))
	for {
		var p dceoverlay.Package
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("go list output: %w", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs, nil
}
