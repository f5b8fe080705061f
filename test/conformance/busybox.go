package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"pault.ag/go/debian/version"
)

// The busybox image's busybox is built here from Debian's source package,
// as Debian builds busybox-static (its debian/config/pkg/static), with one
// option more: FEATURE_DI_ENV_HACK, which Debian's own installer build
// (busybox-udeb) sets. The suite needs two things of the image's shell at
// once:
//   - ash's messages: the read-only root filesystem test wants exactly
//     "/bin/sh: can't create /file: Read-only file system";
//   - environment variables whose names are not shell names passed on:
//     the envFrom tests run `sh -c env` and look for data-1=value-1.
//
// Upstream's ash (Docker's busybox) does both. Debian reverts upstream's
// change that keeps such variables (debian/patches/revert-9c143ce...) and
// puts it back behind that option; bash keeps them but words its messages
// its own way, and dash does neither.
const (
	busyboxSource = "busybox"
	busyboxOption = "CONFIG_FEATURE_DI_ENV_HACK"
	busyboxConfig = "debian/config/pkg/static"
)

// busyboxTools are the programs building it takes (`make deps` installs
// them: dpkg-dev brings dpkg-source, patch, make and bzip2).
var busyboxTools = []string{"apt-get", "dpkg-source", "patch", "bzip2", "xz", "make", "gcc"}

// busyboxBinary returns the path of a busybox built from the newest
// source package in apt's Debian archives, building it once per version:
// OUT/_work/busybox/VERSION.busybox. apt-get runs with lists of its own
// (deb-src lines for the archives apt already uses), so the machine's
// sources stay as they are; apt checks the source's hashes against the
// archive's signed index.
func (b *builder) busyboxBinary(ctx context.Context) (string, error) {
	for _, t := range busyboxTools {
		if _, err := exec.LookPath(t); err != nil {
			return "", fmt.Errorf("building busybox from Debian's source needs %s on the PATH (`make deps` installs dpkg-dev, gcc and libc6-dev)", t)
		}
	}
	dir := filepath.Join(b.out, "_work", "busybox")
	apt, err := privateApt(ctx, dir)
	if err != nil {
		return "", err
	}
	dl := filepath.Join(dir, "source")
	if err := os.MkdirAll(dl, 0o755); err != nil {
		return "", err
	}
	if _, err := runCmd(ctx, 10*time.Minute, dl, nil, "apt-get", append(apt, "source", "--download-only", "-qq", busyboxSource)...); err != nil {
		return "", fmt.Errorf("downloading Debian's %s source package: %w", busyboxSource, err)
	}
	dsc, err := newestDsc(dl)
	if err != nil {
		return "", err
	}
	version := strings.TrimSuffix(filepath.Base(dsc), ".dsc")
	bin := filepath.Join(dir, version+".busybox")
	if _, err := os.Stat(bin); err == nil {
		b.log("busybox: %s, built before from %s with %s", bin, filepath.Base(dsc), busyboxOption)
		return bin, nil
	}
	start := time.Now()
	src := filepath.Join(dir, "build")
	if err := os.RemoveAll(src); err != nil {
		return "", err
	}
	defer os.RemoveAll(src)
	if _, err := runCmd(ctx, 5*time.Minute, dl, nil, "dpkg-source", "-x", dsc, src); err != nil {
		return "", fmt.Errorf("unpacking %s: %w", dsc, err)
	}
	if err := busyboxDotConfig(src); err != nil {
		return "", fmt.Errorf("%s: %w", dsc, err)
	}
	env := append(os.Environ(), "LC_ALL=C")
	// oldconfig asks about options the file does not name; it names them
	// all, and an answer of Enter takes the default if it ever asks.
	if _, err := runInput(ctx, 5*time.Minute, src, env, strings.Repeat("\n", 4096), "make", "oldconfig"); err != nil {
		return "", fmt.Errorf("busybox's make oldconfig: %w", err)
	}
	if err := busyboxConfigHas(src, busyboxOption+"=y", "CONFIG_STATIC=y", "CONFIG_SH_IS_ASH=y"); err != nil {
		return "", err
	}
	if _, err := runCmd(ctx, 30*time.Minute, src, env, "make", fmt.Sprintf("-j%d", runtime.NumCPU()), "busybox"); err != nil {
		return "", fmt.Errorf("building busybox (%s): %w", filepath.Base(dsc), err)
	}
	tmp := bin + ".tmp"
	data, err := os.ReadFile(filepath.Join(src, "busybox"))
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(tmp, data, 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", err
	}
	b.log("busybox: built %s from %s with %s in %s", bin, filepath.Base(dsc), busyboxOption, time.Since(start).Round(time.Second))
	return bin, nil
}

// busyboxDotConfig writes the source tree's .config: Debian's static
// build's, with busyboxOption set.
func busyboxDotConfig(src string) error {
	data, err := os.ReadFile(filepath.Join(src, busyboxConfig))
	if err != nil {
		return err
	}
	cfg, err := setBusyboxOption(string(data), busyboxOption)
	if err != nil {
		return fmt.Errorf("%s: %w", busyboxConfig, err)
	}
	return os.WriteFile(filepath.Join(src, ".config"), []byte(cfg), 0o644)
}

// setBusyboxOption turns on a boolean option that a config file names as
// "# NAME is not set" (or already sets); a file that names it otherwise,
// or not at all, is not the config this was written for.
func setBusyboxOption(cfg, name string) (string, error) {
	unset, set := "# "+name+" is not set", name+"=y"
	lines := strings.Split(cfg, "\n")
	found := false
	for i, l := range lines {
		switch {
		case l == unset || l == set:
			lines[i], found = set, true
		case strings.HasPrefix(l, name+"="):
			return "", fmt.Errorf("%s is %q, not a boolean", name, l)
		}
	}
	if !found {
		return "", fmt.Errorf("%s is not named: Debian's config is not the one this build expects", name)
	}
	return strings.Join(lines, "\n"), nil
}

// busyboxConfigHas checks that the configured tree's .config has each line.
func busyboxConfigHas(src string, want ...string) error {
	data, err := os.ReadFile(filepath.Join(src, ".config"))
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, l := range strings.Split(string(data), "\n") {
		have[l] = true
	}
	for _, w := range want {
		if !have[w] {
			return fmt.Errorf("busybox's .config after make oldconfig lacks %s", w)
		}
	}
	return nil
}

// newestDsc is the .dsc in dir with the highest version, as dpkg orders
// versions (apt-get source leaves older downloads in place).
func newestDsc(dir string) (string, error) {
	all, err := filepath.Glob(filepath.Join(dir, busyboxSource+"_*.dsc"))
	if err != nil || len(all) == 0 {
		return "", fmt.Errorf("no %s source package in %s after apt-get source", busyboxSource, dir)
	}
	newest, newestV := "", version.Version{}
	for _, p := range all {
		// A file name carries the version without its epoch.
		v, err := version.Parse(strings.TrimPrefix(strings.TrimSuffix(filepath.Base(p), ".dsc"), busyboxSource+"_"))
		if err != nil {
			return "", fmt.Errorf("%s: %w", p, err)
		}
		if newest == "" || version.Compare(v, newestV) > 0 {
			newest, newestV = p, v
		}
	}
	return newest, nil
}

// privateApt writes deb-src lines for the Debian archives apt uses (their
// main component) into dir and updates lists of its own there; it returns
// the options that make apt-get use them.
func privateApt(ctx context.Context, dir string) ([]string, error) {
	out, err := runCmd(ctx, time.Minute, "", nil, "apt-get", "indextargets", "--format", "$(REPO_URI) $(RELEASE) $(COMPONENT)", "Created-By: Packages")
	if err != nil {
		return nil, fmt.Errorf("asking apt for its archives: %w", err)
	}
	list := sourceLines(out)
	if list == "" {
		return nil, fmt.Errorf("apt knows no archive with a main component (run apt-get update)")
	}
	for _, d := range []string{"lists/partial", "cache/archives/partial", "parts"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	sources := filepath.Join(dir, "sources.list")
	if err := os.WriteFile(sources, []byte(list), 0o644); err != nil {
		return nil, err
	}
	opts := []string{
		"-o", "Dir::Etc::SourceList=" + sources,
		"-o", "Dir::Etc::SourceParts=" + filepath.Join(dir, "parts"),
		"-o", "Dir::State::Lists=" + filepath.Join(dir, "lists"),
		"-o", "Dir::Cache=" + filepath.Join(dir, "cache"),
		"-o", "APT::Sandbox::User=root",
	}
	if _, err := runCmd(ctx, 10*time.Minute, "", nil, "apt-get", append(opts, "update", "-qq")...); err != nil {
		return nil, fmt.Errorf("apt-get update of the source lists (%s): %w", sources, err)
	}
	return opts, nil
}

// sourceLines turns apt's "URI RELEASE COMPONENT" lines into deb-src
// lines, one per archive and release, main only.
func sourceLines(indextargets string) string {
	seen := map[string]bool{}
	var lines []string
	for _, l := range strings.Split(indextargets, "\n") {
		f := strings.Fields(l)
		if len(f) != 3 || f[2] != "main" {
			continue
		}
		line := "deb-src " + f[0] + " " + f[1] + " main"
		if !seen[line] {
			seen[line] = true
			lines = append(lines, line)
		}
	}
	sort.Strings(lines)
	if len(lines) == 0 {
		return ""
	}
	return strings.Join(lines, "\n") + "\n"
}

// runCmd runs a command in dir for at most limit and returns its output
// (at most 64 KiB; the last 2 KiB of it in the error).
func runCmd(ctx context.Context, limit time.Duration, dir string, env []string, name string, args ...string) (string, error) {
	return runInput(ctx, limit, dir, env, "", name, args...)
}

func runInput(ctx context.Context, limit time.Duration, dir string, env []string, stdin, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	c := exec.CommandContext(ctx, name, args...)
	c.Dir, c.Env = dir, env
	c.Stdin = strings.NewReader(stdin)
	var out tailBuffer
	out.max = 64 << 10
	c.Stdout, c.Stderr = &out, &out
	if err := c.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, lastBytes(out.String(), 2048))
	}
	return out.String(), nil
}

// tailBuffer keeps the last max bytes written to it (a build's error is at
// its end).
type tailBuffer struct {
	b   []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.b) }

func lastBytes(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
