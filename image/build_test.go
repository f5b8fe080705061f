package image

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/boards"
	"github.com/cairn-os/cairn/config/layout"
)

// These tests build from the real Debian kernel packages that `make
// kernels` fetches into out/debs (or $CAIRN_DEBS) and the real ./init.

func debsDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("CAIRN_DEBS")
	if dir == "" {
		root, err := repoRoot()
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(root, "out", "debs")
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "linux-image-*.deb")); len(m) == 0 {
		t.Skipf("no kernel packages in %s; run 'make kernels'", dir)
	}
	return dir
}

// testCache is shared by the tests of one machine so a kernel is unpacked
// once; tests that need a fresh system image remove its squashfs/ and
// initramfs/ parts.
func testCache() string { return filepath.Join(os.TempDir(), "cairn-image-test-cache") }

func build(t testing.TB, o Options) *Result {
	t.Helper()
	if o.Kernel == "" {
		o.Kernel = debsDir(t)
	}
	if o.CacheDir == "" {
		o.CacheDir = testCache()
	}
	if o.SourceDateEpoch == 0 {
		o.SourceDateEpoch = 1700000000
	}
	res, err := Build(context.Background(), o)
	if err != nil {
		t.Fatalf("Build(%s): %v", o.Board, err)
	}
	return res
}

func TestBuildIsReproducible(t *testing.T) {
	boardsToTest := []string{"qemu-x86_64", "qemu-arm64"}
	if testing.Short() {
		boardsToTest = boardsToTest[:1]
	}
	for _, board := range boardsToTest {
		t.Run(board, func(t *testing.T) {
			// One init for both builds: others may commit to ./init meanwhile.
			b0, err := boards.Load(board)
			must(t, err)
			initBin, _, err := buildInit(context.Background(), "", b0.Arch, t.TempDir(), nil)
			must(t, err)
			// The board's formats include update/, whose version must be a word.
			a := build(t, Options{Board: board, Out: t.TempDir(), Init: initBin, Version: "v1.0.0"})
			// Drop the cached system image and stage-1 archive so the
			// second build makes its own.
			os.RemoveAll(filepath.Join(testCache(), "squashfs"))
			os.RemoveAll(filepath.Join(testCache(), "initramfs"))
			b := build(t, Options{Board: board, Out: t.TempDir(), Init: initBin, Version: "v1.0.0"})
			for _, name := range []string{"vmlinuz", "initramfs.img", "cmdline", "manifest.json"} {
				x, err := os.ReadFile(filepath.Join(a.Dir, name))
				if err != nil {
					t.Fatal(err)
				}
				y, err := os.ReadFile(filepath.Join(b.Dir, name))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(x, y) {
					t.Errorf("%s differs between two builds of the same inputs", name)
				}
			}
		})
	}
}

func TestBuildLayout(t *testing.T) {
	comps := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(comps, "linux-amd64/usr/bin"), 0o755))
	must(t, os.WriteFile(filepath.Join(comps, "linux-amd64/usr/bin/cairn-node"), []byte("#!not really\n"), 0o755))
	must(t, os.Symlink("cairn-node", filepath.Join(comps, "linux-amd64/usr/bin/kubelet")))
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	must(t, os.WriteFile(cfg, []byte("#cloud-config\nhostname: node1\n"), 0o644))

	res := build(t, Options{Board: "qemu-x86_64", Out: t.TempDir(), Components: comps, Config: cfg, Compression: "gzip"})
	if res.CmdlineText != "console=ttyS0,115200 panic=-1 cairn.system=live" {
		t.Errorf("cmdline = %q", res.CmdlineText)
	}
	c, err := Inspect(res.Initramfs)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Parts) != 2 || !strings.HasPrefix(c.Parts[0], "gzip cpio") || !strings.HasPrefix(c.Parts[1], "cpio") {
		t.Errorf("initramfs parts = %q, want a gzip cpio then a plain one", c.Parts)
	}
	got := map[string]Entry{}
	for _, e := range c.Entries {
		got[e.Path] = e
		if e.UID != 0 || e.GID != 0 {
			t.Errorf("%s is owned by %d:%d, want 0:0", e.Path, e.UID, e.GID)
		}
	}
	rel := res.Info.Kernel.Release
	mods := "/lib/modules/" + rel + "/"
	for _, want := range []struct {
		path string
		mode fs.FileMode
	}{
		{"/init", 0o755},
		{"/sbin/modprobe", fs.ModeSymlink | 0o777},
		{"/dev", fs.ModeDir | 0o755},
		{"/etc/cairn/board.yaml", 0o644},
		{mods + "modules.dep", 0o644},
		{mods + "modules.alias", 0o644},
		{mods + "kernel/drivers/block/virtio_blk.ko", 0o644},
		{mods + "kernel/fs/squashfs/squashfs.ko", 0o644},
		{"/system.sqfs", 0o644},
		{"/system.sqfs:/sbin/init", 0o755},
		{"/system.sqfs:/sbin/modprobe", fs.ModeSymlink | 0o777},
		{"/system.sqfs:/etc/cairn/config.yaml", 0o600},
		{"/system.sqfs:/etc/cairn/board.yaml", 0o644},
		{"/system.sqfs:/etc/passwd", 0o644},
		{"/system.sqfs:/etc/os-release", fs.ModeSymlink | 0o777},
		{"/system.sqfs:/usr/bin/cairn-node", 0o755},
		{"/system.sqfs:/usr/bin/kubelet", fs.ModeSymlink | 0o777},
		{"/system.sqfs:" + mods + "modules.dep", 0o644},
		{"/system.sqfs:" + mods + "kernel/net/bridge/br_netfilter.ko", 0o644},
		{"/system.sqfs:" + mods + "kernel/drivers/net/vxlan/vxlan.ko", 0o644},
	} {
		e, ok := got[want.path]
		if !ok {
			t.Errorf("%s is missing", want.path)
			continue
		}
		if e.Mode != want.mode {
			t.Errorf("%s has mode %v, want %v", want.path, e.Mode, want.mode)
		}
	}
	// /dev/console comes from the kernel's built-in initramfs; ours holds
	// no device nodes (the cpio library cannot write them).
	if _, ok := got["/dev/console"]; ok {
		t.Error("the initramfs carries /dev/console; the kernel's built-in archive provides it")
	}
	// The initramfs carries only stage 1's modules; the node's are in the system image.
	if _, ok := got[mods+"kernel/net/bridge/br_netfilter.ko"]; ok {
		t.Error("the initramfs carries br_netfilter, a node module stage 1 does not need")
	}
	for _, a := range res.Info.Artifacts {
		st, err := os.Stat(filepath.Join(res.Dir, a.Name))
		if err != nil || st.Size() != a.Size || a.SHA256 == "" {
			t.Errorf("manifest artifact %+v does not match the file (%v)", a, err)
		}
	}
	if res.Info.Components == nil || res.Info.Components.Files != 2 || res.Info.Config == nil {
		t.Errorf("manifest components/config = %+v / %+v", res.Info.Components, res.Info.Config)
	}
}

func TestBuildRejectsBadInput(t *testing.T) {
	debs := debsDir(t)
	var arm64Deb string
	if m, _ := filepath.Glob(filepath.Join(debs, "linux-image-*_arm64.deb")); len(m) > 0 {
		arm64Deb = m[0]
	}
	notDir := filepath.Join(t.TempDir(), "file")
	must(t, os.WriteFile(notDir, nil, 0o644))
	badCfg := filepath.Join(t.TempDir(), "bad.yaml")
	must(t, os.WriteFile(badCfg, []byte("#cloud-config\nhostname: a\nno_such_key: 1\n"), 0o644))
	emptyDir := t.TempDir()

	cases := []struct {
		name      string
		o         Options
		want      []string // every one appears in the error
		multiline bool
	}{
		{"board that does not exist", Options{Board: "pdp-11"}, []string{`board "pdp-11" does not exist`, "qemu-x86_64"}, false},
		{"missing kernel", Options{Kernel: "/nonexistent/k.deb"}, []string{"/nonexistent/k.deb", "make kernels"}, false},
		{"no kernel in the directory", Options{Kernel: emptyDir}, []string{emptyDir, "linux-image-amd64", "make kernels"}, false},
		{"kernel that is not a .deb", Options{Kernel: notDir}, []string{notDir, "not a Debian package"}, false},
		{"kernel for another arch", Options{Kernel: arm64Deb}, []string{"is for arm64", "qemu-x86_64 needs amd64"}, false},
		{"module that is not in the kernel", Options{Modules: []string{"no_such_module"}}, []string{`module "no_such_module"`, "not in the kernel"}, false},
		{"unwritable output directory", Options{Out: filepath.Join(notDir, "out")}, []string{"output directory " + filepath.Join(notDir, "out"), "writable"}, false},
		{"format that does not exist", Options{Formats: []string{"floppy"}}, []string{`format "floppy" does not exist`, "kernel"}, false},
		{"bad config", Options{Config: badCfg}, []string{badCfg + ":3:1: error", "no_such_key"}, true},
		{"components without the arch", Options{Components: emptyDir}, []string{"linux-amd64", "make components"}, false},
		{"unknown compression", Options{Compression: "lz4"}, []string{`"lz4"`, "zstd or gzip"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "kernel for another arch" && arm64Deb == "" {
				t.Skip("no arm64 kernel package")
			}
			o := c.o
			if o.Board == "" {
				o.Board = "qemu-x86_64"
			}
			if o.Kernel == "" {
				o.Kernel = debs
			}
			if o.Out == "" {
				o.Out = t.TempDir()
			}
			o.CacheDir = testCache()
			res, err := Build(context.Background(), o)
			if err == nil {
				t.Fatalf("Build succeeded: %+v", res)
			}
			msg := err.Error()
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not say %q", msg, w)
				}
			}
			if !c.multiline && strings.Contains(msg, "\n") {
				t.Errorf("error is not one line: %q", msg)
			}
			for _, name := range []string{"vmlinuz", "initramfs.img", "cmdline", "manifest.json"} {
				if _, err := os.Stat(filepath.Join(o.Out, name)); err == nil {
					t.Errorf("%s was left in the output directory", name)
				}
			}
			if ents, _ := os.ReadDir(o.Out); len(ents) > 0 && !strings.HasPrefix(o.Out, notDir) {
				t.Errorf("output directory holds %d leftover files (%s...)", len(ents), ents[0].Name())
			}
		})
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// The modules.dep the builder writes agrees with depmod's for the same
// module subset of the real kernel, and its order is a valid load order.
func TestModulesDepMatchesDepmod(t *testing.T) {
	depmod, err := exec.LookPath("depmod")
	if err != nil {
		t.Skip("depmod (kmod) is not installed")
	}
	for _, board := range []string{"qemu-x86_64", "qemu-arm64"} {
		t.Run(board, func(t *testing.T) {
			b, err := boards.Load(board)
			must(t, err)
			deb, err := findKernelDeb(debsDir(t), b)
			must(t, err)
			k, err := loadKernel(deb, b, testCache(), nil)
			must(t, err)
			mods, err := k.Modules.Closure(append(append(append([]string{}, b.Modules...), layout.Stage1Modules...), NodeModules...))
			must(t, err)
			root := t.TempDir()
			dir := filepath.Join(root, "lib", "modules", k.Release)
			for _, m := range mods {
				dst := filepath.Join(dir, m.Path)
				must(t, os.MkdirAll(filepath.Dir(dst), 0o755))
				must(t, copyFile(k.ModulePath(m.Path), dst))
			}
			must(t, os.WriteFile(filepath.Join(dir, "modules.builtin"), []byte(k.Modules.BuiltinFile), 0o644))
			if out, err := exec.Command(depmod, "-b", root, k.Release).CombinedOutput(); err != nil {
				t.Fatalf("depmod: %v\n%s", err, out)
			}
			theirs, err := os.ReadFile(filepath.Join(dir, "modules.dep"))
			must(t, err)
			ours := k.Modules.BuildIndex(mods).Dep
			parse := func(s string) map[string][]string {
				m := map[string][]string{}
				for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
					k, v, _ := strings.Cut(line, ":")
					m[k] = strings.Fields(v)
				}
				return m
			}
			o, th := parse(ours), parse(string(theirs))
			if len(th) < 50 || len(o) != len(th) {
				t.Errorf("modules.dep: %d modules, depmod has %d", len(o), len(th))
			}
			byPath := map[string]string{}
			for _, m := range mods {
				byPath[m.Path] = m.Name
			}
			for path, deps := range th {
				if !sameSet(o[path], deps) {
					t.Errorf("%s: dependencies %q, depmod says %q", path, o[path], deps)
				}
				// Loading the list from its end, then the module, loads
				// every module after its direct dependencies.
				loaded := map[string]bool{}
				for i := len(o[path]) - 1; i >= 0; i-- {
					m := k.Modules.Modules[byPath[o[path][i]]]
					for _, d := range m.Depends {
						if !loaded[d] {
							t.Errorf("%s: %s comes before its dependency %s", path, m.Name, d)
						}
					}
					loaded[m.Name] = true
				}
			}
		})
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]int{}
	for _, x := range a {
		m[x]++
	}
	for _, x := range b {
		m[x]--
	}
	for _, v := range m {
		if v != 0 {
			return false
		}
	}
	return true
}

// Builds sharing a cold cache may run at once (tests build several boards
// in parallel): they unpack kernels, build inits and fill caches side by side.
func TestConcurrentBuildsShareACache(t *testing.T) {
	if testing.Short() {
		t.Skip("unpacks a kernel into a fresh cache")
	}
	debs := debsDir(t)
	cache := t.TempDir()
	boardsToBuild := []string{"qemu-x86_64", "qemu-x86_64"}
	results := make([]*Result, len(boardsToBuild))
	errs := make([]error, len(boardsToBuild))
	done := make(chan int)
	for i, board := range boardsToBuild {
		go func() {
			results[i], errs[i] = Build(context.Background(), Options{Board: board, Kernel: debs, Out: t.TempDir(), CacheDir: cache, SourceDateEpoch: 1})
			done <- i
		}()
	}
	for range boardsToBuild {
		<-done
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("build %d (%s): %v", i, boardsToBuild[i], err)
		}
	}
	for i := 0; i < len(results); i += 2 {
		a, b := results[i].Info.Artifacts, results[i+1].Info.Artifacts
		for j := range a {
			if a[j] != b[j] {
				t.Errorf("%s: %s differs between two concurrent builds", boardsToBuild[i], a[j].Name)
			}
		}
	}
}
