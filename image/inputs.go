package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/config/files"
)

const modulePath = "github.com/cairn-os/cairn"

// repoRoot finds the cairn source tree: the directory holding the go.mod of
// module github.com/cairn-os/cairn, searched upwards from the working
// directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(bytes.TrimSpace(data), []byte("module "+modulePath+"\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("the cairn source tree (go.mod of " + modulePath + ") is not in the working directory or above it; run cairn build from the repository")
		}
		dir = parent
	}
}

// buildInit returns the init binary for arch: src itself when it is a file,
// else the Go package in directory src (default the repository's ./init)
// built static and stripped into cacheDir, versioned by git describe.
func buildInit(ctx context.Context, src, arch, cacheDir string, prog *progress) (string, *InitInput, error) {
	return buildVersionedInit(ctx, src, arch, "", cacheDir, prog)
}

// buildVersionedInit is buildInit with the version given (Options.Version)
// rather than git describe's, when version is not empty. An init given as
// a binary keeps the version built into it; the image is labelled version.
func buildVersionedInit(ctx context.Context, src, arch, version, cacheDir string, prog *progress) (string, *InitInput, error) {
	if src != "" {
		if st, err := os.Stat(src); err != nil {
			return "", nil, fmt.Errorf("init %s: %w; pass -init a Go package directory or a static binary", src, unwrapPath(err))
		} else if !st.IsDir() {
			bin, in, err := initInput(src, filepath.Base(src))
			if in != nil && version != "" {
				in.Version = version
			}
			return bin, in, err
		}
	}
	pkg := src
	dir := ""
	if pkg == "" {
		root, err := repoRoot()
		if err != nil {
			return "", nil, err
		}
		dir, pkg = root, "./init"
	}
	ver := version
	if ver == "" {
		ver = sourceVersion(ctx, dir)
	}
	ldflags := "-s -w -buildid= -X main.version=" + ver
	if t := sourceTime(ctx, dir); t != "" {
		// A clock earlier than the source's last commit is plainly wrong;
		// the init steps it forward before anything checks a certificate.
		ldflags += " -X " + modulePath + "/init/clock.BuildTimestamp=" + t
	}
	env := append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	// An unchanged source tree reuses the last binary: go build relinks
	// every time, which is most of a warm rebuild.
	key, err := initKey(ctx, dir, pkg, arch, ldflags, env, digests{cacheDir})
	if err != nil {
		return "", nil, err
	}
	out := filepath.Join(cacheDir, "init", arch, key[:32])
	if !cacheHit(out) {
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return "", nil, fmt.Errorf("cache directory: %w", err)
		}
		tf, err := os.CreateTemp(filepath.Dir(out), ".build-*.tmp")
		if err != nil {
			return "", nil, fmt.Errorf("cache directory: %w", err)
		}
		tf.Close()
		tmp := tf.Name()
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags, "-o", tmp, pkg)
		cmd.Dir = dir
		cmd.Env = env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		prog.start("building the init (" + pkg + ") for linux/" + arch)
		err = cmd.Run()
		prog.done()
		if err != nil {
			os.Remove(tmp)
			return "", nil, fmt.Errorf("building the init (%s) for %s failed: %s", pkg, arch, oneLine(goErr(&stderr, err)))
		}
		if err := os.Rename(tmp, out); err != nil {
			return "", nil, err
		}
		pruneExcept(filepath.Dir(out), filepath.Base(out))
	}
	name := pkg
	if name == "./init" {
		name = modulePath + "/init"
	}
	bin, in, err := initInput(out, name)
	if in != nil {
		in.Version = ver
	}
	return bin, in, err
}

// initKey identifies an init build: the Go version, the flags and the
// contents of every non-standard-library source file the package uses.
func initKey(ctx context.Context, dir, pkg, arch, ldflags string, env []string, d digests) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "list", "-deps", "-f",
		"{{if not .Standard}}{{.Dir}}{{range .GoFiles}} {{.}}{{end}}{{range .EmbedFiles}} {{.}}{{end}}{{end}}", pkg)
	cmd.Dir = dir
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("building the init (%s) failed: %s", pkg, oneLine(goErr(&stderr, err)))
	}
	gover, _ := exec.CommandContext(ctx, "go", "env", "GOVERSION").Output()
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\n", strings.TrimSpace(string(gover)), ldflags, arch)
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		for _, name := range f[1:] {
			sum, err := d.sum(filepath.Join(f[0], name))
			if err != nil {
				return "", fmt.Errorf("init source %s: %w", filepath.Join(f[0], name), err)
			}
			fmt.Fprintf(h, "%s/%s %s\n", f[0], name, sum)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func goErr(stderr *bytes.Buffer, err error) string {
	if msg := strings.TrimSpace(stderr.String()); msg != "" {
		return msg
	}
	return err.Error()
}

// pruneExcept removes the files of dir other than keep that are older than
// an hour (a concurrent build may be about to use a recent one).
func pruneExcept(dir, keep string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if info, err := e.Info(); err == nil && e.Name() != keep && time.Since(info.ModTime()) > time.Hour {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// sourceVersion names the source tree the init is built from: git describe
// of the repository ("v0.1.0-3-gabc1234-dirty"), or "dev" outside git.
func sourceVersion(ctx context.Context, dir string) string {
	cmd := exec.CommandContext(ctx, "git", "describe", "--tags", "--always", "--dirty")
	cmd.Dir = dir
	out, err := cmd.Output()
	if v := strings.TrimSpace(string(out)); err == nil && v != "" && !strings.ContainsAny(v, " '\"") {
		return v
	}
	return "dev"
}

// sourceTime is the commit time of the source tree in Unix seconds, or ""
// outside a git checkout. It is stable for a commit, so builds stay
// reproducible.
func sourceTime(ctx context.Context, dir string) string {
	cmd := exec.CommandContext(ctx, "git", "log", "-1", "--format=%ct")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	t := strings.TrimSpace(string(out))
	if _, err := strconv.ParseInt(t, 10, 64); err != nil {
		return ""
	}
	return t
}

// initInput describes an init binary: its digest and, from the Go build
// information in it, the version control revision it was built from.
func initInput(path, source string) (string, *InitInput, error) {
	sum, _, err := files.SHA256(path, -1)
	if err != nil {
		return "", nil, fmt.Errorf("init %s: %w", path, err)
	}
	in := &InitInput{Source: source, SHA256: sum}
	if bi, err := buildinfo.ReadFile(path); err == nil {
		var rev, modified string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
		in.Version = bi.Main.Version
		if rev != "" {
			in.Version = rev
			if modified == "true" {
				in.Version += "-dirty"
			}
		}
	}
	return path, in, nil
}

// oneLine joins a tool's multi-line error output for a one-line message.
func oneLine(s string) string {
	lines := strings.Split(s, "\n")
	if len(lines) > 3 {
		lines = append(lines[:3], "...")
	}
	return strings.Join(lines, "; ")
}

// readConfig reads and validates a cloud-config to bake in. A bad one is an
// error carrying every diagnostic the validator gave, one per line.
func readConfig(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w; pass -config a readable cloud-config file", path, unwrapPath(err))
	}
	if _, diags := config.Load(config.Source{Name: path, Data: data}); diags.HasErrors() {
		return nil, fmt.Errorf("config %s is invalid, not baking it in:\n%w", path, diags.Err())
	}
	return data, nil
}

// inputs are what a build reads or makes before planning: the kernel
// unpacked, the init built, the config validated, and the overlay and
// components trees walked.
type inputs struct {
	debPath             string
	k                   *Kernel
	initBin             string
	initIn              *InitInput
	cfgData             []byte
	cfgName             string
	overlay, components tree
	compIn              *ComponentsInput
	bootloader          []byte
	bootloaderIn        *FileInput
	firmware            []fatFile
	firmwareIn          *FileInput
	k3s                 string
	k3sIn               *FileInput
}

// gather reads, unpacks and builds the inputs o names.
func gather(ctx context.Context, o Options, s *settings, prog *progress) (*inputs, error) {
	in := &inputs{}
	var err error
	if o.Config != "" {
		if in.cfgData, err = readConfig(o.Config); err != nil {
			return nil, err
		}
		in.cfgName = filepath.Base(o.Config)
	}
	var compDir string
	if o.Components != "" {
		if compDir, err = componentsTree(o.Components, s.board.Arch); err != nil {
			return nil, err
		}
	}
	if in.debPath, err = findKernelDeb(o.Kernel, s.board); err != nil {
		return nil, err
	}
	if in.k, err = loadKernel(in.debPath, s.board, s.cacheDir, prog); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if in.initBin, in.initIn, err = buildVersionedInit(ctx, o.Init, s.board.Arch, o.Version, s.cacheDir, prog); err != nil {
		return nil, err
	}
	if s.board.Bootloader != nil && slices.ContainsFunc(s.formats, func(f format) bool { return f.bootloader }) {
		if in.bootloader, in.bootloaderIn, err = readBootloader(o.Kernel, s.board); err != nil {
			return nil, err
		}
	}
	if s.board.Firmware != nil && slices.ContainsFunc(s.formats, func(f format) bool { return f.firmware }) {
		if in.firmware, in.firmwareIn, err = readFirmware(o.Kernel, s.board); err != nil {
			return nil, err
		}
	}
	if o.K3s != "" {
		if in.k3sIn, err = checkK3s(o.K3s, s.board.Arch, digests{s.cacheDir}); err != nil {
			return nil, err
		}
		in.k3s = o.K3s
	}
	if in.overlay, err = readOverlay("base"); err != nil {
		return nil, err
	}
	if err := versionOSRelease(in.overlay, in.initIn.Version); err != nil {
		return nil, err
	}
	if compDir != "" {
		in.components = tree{}
		if err := in.components.addDir(compDir, ""); err != nil {
			return nil, fmt.Errorf("components %s: %w", compDir, err)
		}
		d := digests{s.cacheDir}
		in.compIn = &ComponentsInput{}
		in.compIn.Digest, _ = in.components.digest(d)
		// Hashed by the digest just above; the memo answers this one.
		if cj, err := d.sum(filepath.Join(compDir, "usr/share/cairn/components.json")); err == nil {
			in.compIn.ComponentsJSON = cj
		}
	}
	return in, nil
}

// readOverlay reads overlays/NAME from the repository.
func readOverlay(name string) (tree, error) {
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(root, "overlays", name)
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("overlay %s: %w", dir, unwrapPath(err))
	}
	t := tree{}
	if err := t.addDir(dir, ""); err != nil {
		return nil, fmt.Errorf("overlay %s: %w", dir, err)
	}
	return t, nil
}

// osRelease is os-release(5) in the system image; /etc/os-release links
// to it.
const osRelease = "usr/lib/os-release"

// versionOSRelease writes version into the overlay's os-release: the
// PRETTY_NAME it has followed by the version ("cairn v0.3.0", the OS image
// `kubectl get nodes -o wide` shows) and VERSION_ID. An overlay without
// os-release is left alone.
func versionOSRelease(t tree, version string) error {
	n, ok := t[osRelease]
	if !ok || !n.isFile() || version == "" {
		return nil
	}
	data := n.data
	if n.src != "" {
		var err error
		if data, err = os.ReadFile(n.src); err != nil {
			return fmt.Errorf("overlay %s: %w", osRelease, err)
		}
	}
	var out []string
	hasID := false
	for _, line := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		key, val, ok := strings.Cut(line, "=")
		switch {
		case ok && key == "PRETTY_NAME":
			line = "PRETTY_NAME=" + osReleaseQuote(osReleaseUnquote(val)+" "+version)
		case ok && key == "VERSION_ID":
			line, hasID = "VERSION_ID="+osReleaseQuote(version), true
		}
		out = append(out, line)
	}
	if !hasID {
		out = append(out, "VERSION_ID="+osReleaseQuote(version))
	}
	t.bytes(osRelease, n.mode&0o777, []byte(strings.Join(out, "\n")+"\n"))
	return nil
}

// osReleaseQuote quotes s for os-release when it needs it, escaping what
// a shell would expand inside double quotes.
func osReleaseQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-") == "" {
		return s
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "`", "\\`", "$", `\$`)
	return `"` + r.Replace(s) + `"`
}

// osReleaseUnquote undoes osReleaseQuote.
func osReleaseUnquote(s string) string {
	if len(s) >= 2 && (s[0] == '"' || s[0] == '\'') && s[len(s)-1] == s[0] {
		s = s[1 : len(s)-1]
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// componentsTree is the node components' tree for arch under dir.
// linux-ARCH is a link that a components build swaps in one rename
// (image/components/publish.sh): it is resolved once here, so a build
// reads one tree whole, the old or the new, never a mix.
func componentsTree(dir, arch string) (string, error) {
	link := filepath.Join(dir, "linux-"+arch)
	if st, err := os.Stat(link); err != nil || !st.IsDir() {
		return "", fmt.Errorf("components: %s is not a directory; run 'make components' or leave out -components", link)
	}
	tree, err := filepath.EvalSymlinks(link)
	if err != nil {
		return "", fmt.Errorf("components: %w", err)
	}
	return tree, nil
}
