// Package image builds cairn's boot artifacts from a board, a Debian kernel
// package, the init, the node components and an optional cloud-config:
// vmlinuz, an initramfs carrying the init, the stage-1 modules and the
// system image (squashfs), the kernel command line and a manifest.
//
// Build is the entry point:
//
//	res, err := image.Build(ctx, image.Options{
//		Board:  "qemu-x86_64",
//		Kernel: "out/debs",          // a linux-image .deb or a directory of them
//		Out:    "out/qemu-x86_64",
//	})
//	// res.Vmlinuz, res.Initramfs, res.Cmdline
package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/cairn-os/cairn/boards"
	"github.com/cairn-os/cairn/config/layout"
	"github.com/cairn-os/cairn/image/kmod"
	"github.com/cavaliergopher/cpio"
)

// Options are a build's inputs. Board, Kernel and Out are required.
type Options struct {
	// Board is a board name from boards/ ("qemu-x86_64").
	Board string
	// Kernel is a linux-image .deb, or a directory holding the board's
	// (as `make kernels` fills out/debs).
	Kernel string
	// Out is the directory the artifacts are written to; it is created.
	Out string
	// Init is the init to put in the image: a Go package directory to
	// build for the board's architecture (default: the repository's ./init)
	// or an already built static binary.
	Init string
	// Components is a directory holding linux-<arch>/ trees (make
	// components); empty means an image without node components.
	Components string
	// Config is a cloud-config file baked in as /etc/cairn/config.yaml;
	// it is validated first.
	Config string
	// Compression of the initramfs: "zstd" or "gzip"; empty means zstd
	// when the kernel can unpack it (CONFIG_RD_ZSTD), else gzip.
	Compression string
	// SquashfsLevel is the zstd level (1-22) of the system image; 0 means
	// DefaultSquashfsLevel.
	SquashfsLevel int
	// Modules are extra modules for the system image (and their
	// dependencies), beyond the board's and NodeModules.
	Modules []string
	// SourceDateEpoch is the time every file gets; 0 means the
	// SOURCE_DATE_EPOCH environment variable, or 0 when that is unset.
	SourceDateEpoch int64
	// CacheDir holds unpacked kernels and built system images; default
	// $XDG_CACHE_HOME/cairn (~/.cache/cairn).
	CacheDir string
	// Progress, when set, receives a line for every step that takes more
	// than a second (pass os.Stderr when it is a terminal).
	Progress io.Writer
}

// Result says what a build wrote. Device trees the board lists (boards'
// dtbs) are written next to vmlinuz under their base names.
type Result struct {
	// Dir is Options.Out; the other paths are files in it.
	Dir, Vmlinuz, Initramfs, Cmdline, Manifest string
	// CmdlineText is the kernel command line.
	CmdlineText string
	// Manifest is what manifest.json holds.
	Info *Manifest
}

// Manifest is manifest.json: every artifact and every input.
type Manifest struct {
	Board           string           `json:"board"`
	Arch            string           `json:"arch"`
	SourceDateEpoch int64            `json:"source_date_epoch"`
	Artifacts       []Artifact       `json:"artifacts"`
	Kernel          KernelInput      `json:"kernel"`
	Init            InitInput        `json:"init"`
	Components      *ComponentsInput `json:"components,omitempty"`
	Config          *FileInput       `json:"config,omitempty"`
	Compression     string           `json:"compression"`
	// SquashfsCompression is the system image's compressor; the level
	// applies to zstd.
	SquashfsCompression string            `json:"squashfs_compression"`
	SquashfsLevel       int               `json:"squashfs_zstd_level"`
	Modules             map[string]Listed `json:"modules"`
	SystemImage         Artifact          `json:"system_image"`
}

// Artifact is one output file.
type Artifact struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// KernelInput is the kernel package a build used.
type KernelInput struct {
	Package string `json:"package"`
	Version string `json:"version"`
	Release string `json:"release"`
	File    string `json:"file"`
	SHA256  string `json:"sha256"`
}

// InitInput is the init binary a build used and where it came from.
type InitInput struct {
	Source  string `json:"source"`
	Version string `json:"version,omitempty"`
	SHA256  string `json:"sha256"`
}

// ComponentsInput is the components tree a build used.
type ComponentsInput struct {
	Files int `json:"files"`
	// ComponentsJSON is the sha256 of usr/share/cairn/components.json.
	ComponentsJSON string `json:"components_json_sha256,omitempty"`
	Digest         string `json:"digest"`
}

// FileInput is an input file by name and digest.
type FileInput struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
}

// Listed is a list of module names carried by one image.
type Listed []string

// LiveSystem is the cmdline argument telling the init the system image is
// inside the initramfs.
const LiveSystem = layout.SystemParam + "=" + layout.SystemLive

// plan is a build's inputs resolved: the board, the kernel, the module
// subsets and the two file trees, everything but the compressed outputs.
type plan struct {
	b              *boards.Board
	k              *Kernel
	debPath        string
	out, cacheDir  string
	comp, sqComp   string
	level          int
	epoch          int64
	stage1, system []*kmod.Module
	sys, ird       tree
	initIn         *InitInput
	compIn         *ComponentsInput
	cfgData        []byte
	prog           *progress
}

// Build builds the artifacts described by o into o.Out. On error nothing is
// left under an artifact's final name that this build did not finish.
func Build(ctx context.Context, o Options) (*Result, error) {
	p, err := makePlan(ctx, o)
	if err != nil {
		return nil, err
	}
	b, k, out, cacheDir, comp, epoch, prog := p.b, p.k, p.out, p.cacheDir, p.comp, p.epoch, p.prog
	sys, ird, cfgData := p.sys, p.ird, p.cfgData
	work, err := os.MkdirTemp(cacheDir, ".build-")
	if err != nil {
		return nil, fmt.Errorf("cache directory %s: %w", cacheDir, err)
	}
	defer os.RemoveAll(work)
	sqfs := filepath.Join(work, "system.sqfs")
	if err := makeSquashfs(ctx, sys, sqfs, epoch, p.sqComp, p.level, cacheDir, prog); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	files := newOutFiles(out)
	defer files.abort()

	w, err := files.create("initramfs.img")
	if err != nil {
		return nil, err
	}
	prog.start("writing the initramfs (" + comp + ")")
	err = writeInitramfs(w, ird, sqfs, comp, epoch, cacheDir)
	prog.done()
	if err != nil {
		return nil, fmt.Errorf("initramfs: %w", err)
	}
	if w, err = files.create("vmlinuz"); err != nil {
		return nil, err
	}
	if err := copyTo(w, k.VmlinuzPath()); err != nil {
		return nil, fmt.Errorf("vmlinuz: %w", err)
	}
	var dtbs []string
	for _, rel := range b.DTBs {
		name := filepath.Base(rel)
		if w, err = files.create(name); err != nil {
			return nil, err
		}
		if err := copyTo(w, k.DTBPath(rel)); err != nil {
			return nil, fmt.Errorf("board %s: device tree %s is not in %s: %w; fix the board's dtbs list", b.Name, rel, k.Package, unwrapPath(err))
		}
		dtbs = append(dtbs, name)
	}
	cmdline := strings.TrimSpace(b.Cmdline + " " + LiveSystem)
	if w, err = files.create("cmdline"); err != nil {
		return nil, err
	}
	if err := writeTo(w, []byte(cmdline+"\n")); err != nil {
		return nil, err
	}

	m := &Manifest{
		Board: b.Name, Arch: b.Arch, SourceDateEpoch: epoch, Compression: comp, SquashfsCompression: p.sqComp, SquashfsLevel: p.level,
		Kernel: KernelInput{Package: k.Package, Version: k.Version, Release: k.Release,
			File: filepath.Base(p.debPath), SHA256: k.SHA256},
		Init:       *p.initIn,
		Components: p.compIn,
		Modules:    map[string]Listed{"initramfs": names(p.stage1), "system": names(p.system)},
	}
	if cfgData != nil {
		sum := sha256.Sum256(cfgData)
		m.Config = &FileInput{Name: filepath.Base(o.Config), SHA256: hex.EncodeToString(sum[:])}
	}
	if m.SystemImage, err = describe("system.sqfs", sqfs); err != nil {
		return nil, err
	}
	for _, name := range append([]string{"vmlinuz", "initramfs.img", "cmdline"}, dtbs...) {
		m.Artifacts = append(m.Artifacts, files.describe(name))
	}
	js, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if w, err = files.create("manifest.json"); err != nil {
		return nil, err
	}
	if err := writeTo(w, append(js, '\n')); err != nil {
		return nil, err
	}
	if err := files.commit(); err != nil {
		return nil, err
	}
	return &Result{
		Dir: out, Vmlinuz: filepath.Join(out, "vmlinuz"), Initramfs: filepath.Join(out, "initramfs.img"),
		Cmdline: filepath.Join(out, "cmdline"), Manifest: filepath.Join(out, "manifest.json"),
		CmdlineText: cmdline, Info: m,
	}, nil
}

// makePlan checks the inputs and resolves them into a plan.
func makePlan(ctx context.Context, o Options) (*plan, error) {
	b, err := boards.Load(o.Board)
	if err != nil {
		return nil, err
	}
	rawBoard, err := boards.Raw(o.Board)
	if err != nil {
		return nil, err
	}
	if o.Kernel == "" {
		return nil, errors.New("no kernel given; pass -kernel with a linux-image .deb or a directory of them (make kernels fills out/debs)")
	}
	if o.Out == "" {
		return nil, errors.New("no output directory given; pass -o DIR")
	}
	if c := o.Compression; c != "" && c != "zstd" && c != "gzip" {
		return nil, fmt.Errorf("initramfs compression %q is not supported; use zstd or gzip", c)
	}
	level := o.SquashfsLevel
	if level == 0 {
		level = DefaultSquashfsLevel
	}
	if level < 1 || level > 22 {
		return nil, fmt.Errorf("squashfs zstd level %d is out of range; use 1 to 22", level)
	}
	epoch := o.SourceDateEpoch
	if epoch == 0 {
		if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
			epoch, err = strconv.ParseInt(s, 10, 64)
			if err != nil || epoch < 0 {
				return nil, fmt.Errorf("SOURCE_DATE_EPOCH %q is not a number of seconds; unset it or fix it", s)
			}
		}
	}
	cacheDir := o.CacheDir
	if cacheDir == "" {
		if cacheDir, err = defaultCacheDir(); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("cache directory %s: %w; set XDG_CACHE_HOME to a writable directory", cacheDir, unwrapPath(err))
	}
	out, err := prepareOut(o.Out)
	if err != nil {
		return nil, err
	}
	prog := newProgress(o.Progress)

	var cfgData []byte
	if o.Config != "" {
		if cfgData, err = readConfig(o.Config); err != nil {
			return nil, err
		}
	}
	var compDir string
	if o.Components != "" {
		compDir = filepath.Join(o.Components, "linux-"+b.Arch)
		if st, err := os.Stat(compDir); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("components: %s is not a directory; run 'make components' or leave out -components", compDir)
		}
	}

	debPath, err := findKernelDeb(o.Kernel, b)
	if err != nil {
		return nil, err
	}
	k, err := loadKernel(debPath, b, cacheDir, prog)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	comp, err := initramfsCodec(o.Compression, k)
	if err != nil {
		return nil, err
	}
	sqComp, err := squashfsCodec(k)
	if err != nil {
		return nil, err
	}

	// Modules: the initramfs gets what stage 1 needs, the system image
	// also what the node needs.
	stage1, err := k.Modules.Closure(append(append([]string{}, b.Modules...), layout.Stage1Modules...))
	if err != nil {
		return nil, fmt.Errorf("board %s: %w; fix the board's module list", b.Name, err)
	}
	wantSys := append(append(append([]string{}, b.Modules...), layout.Stage1Modules...), NodeModules...)
	wantSys = append(wantSys, o.Modules...)
	system, err := k.Modules.Closure(wantSys)
	if err != nil {
		return nil, fmt.Errorf("%w; fix the module list", err)
	}

	initBin, initIn, err := buildInit(ctx, o.Init, b.Arch, cacheDir, prog)
	if err != nil {
		return nil, err
	}

	// The system image.
	sys := tree{}
	addBase(sys)
	if err := addOverlay(sys, "base"); err != nil {
		return nil, err
	}
	sys.file("sbin/init", 0o755, initBin)
	// The kernel runs /sbin/modprobe for modules it needs; the init answers.
	sys.symlink("sbin/modprobe", "init")
	addModules(sys, k, system)
	sys.bytes(layout.BoardFile, 0o644, rawBoard)
	if cfgData != nil {
		sys.bytes(layout.ConfigFile, 0o600, cfgData)
	}
	var compIn *ComponentsInput
	if compDir != "" {
		// Walk the directory once: its own tree gives the digest, and
		// merging it into sys is what sys.addDir would do.
		sub := tree{}
		if err := sub.addDir(compDir, ""); err != nil {
			return nil, fmt.Errorf("components %s: %w", compDir, err)
		}
		n := len(sys)
		for p, nd := range sub {
			sys[p] = nd
		}
		compIn = &ComponentsInput{Files: len(sys) - n}
		d := digests{cacheDir}
		compIn.Digest, _ = sub.digest(d)
		// Hashed by the digest just above; the memo answers this one.
		if cj, err := d.sum(filepath.Join(compDir, "usr/share/cairn/components.json")); err == nil {
			compIn.ComponentsJSON = cj
		}
	}
	// The initramfs: a compressed cpio with the init and stage-1 modules;
	// Build appends an uncompressed cpio holding the system image.
	ird := tree{}
	for _, d := range []string{"dev", "proc", "sys", "run", "tmp", "mnt", "root"} {
		ird.mkdirAll(d)
	}
	// No device nodes: the kernel's built-in initramfs, unpacked first,
	// has /dev/console, and the init mounts devtmpfs before anything else.
	ird.file("init", 0o755, initBin)
	addModules(ird, k, stage1)
	ird.bytes(layout.BoardFile, 0o644, rawBoard)

	return &plan{b: b, k: k, debPath: debPath, out: out, cacheDir: cacheDir, comp: comp, sqComp: sqComp, level: level, epoch: epoch,
		stage1: stage1, system: system, sys: sys, ird: ird, initIn: initIn, compIn: compIn, cfgData: cfgData, prog: prog}, nil
}

// initramfsCodec picks the initramfs compression: the one asked for, which
// the kernel must be able to unpack, or zstd, or gzip for a kernel without
// zstd support.
func initramfsCodec(asked string, k *Kernel) (string, error) {
	option := map[string]string{"zstd": "CONFIG_RD_ZSTD", "gzip": "CONFIG_RD_GZIP"}
	if asked != "" {
		if !k.ConfigEnabled(option[asked], false) {
			return "", fmt.Errorf("kernel %s cannot unpack a %s initramfs (%s is not set); pass another -compress", k.Release, asked, option[asked])
		}
		return asked, nil
	}
	for _, c := range []string{"zstd", "gzip"} {
		if k.ConfigEnabled(option[c], false) {
			return c, nil
		}
	}
	return "", fmt.Errorf("kernel %s can unpack neither a zstd nor a gzip initramfs (CONFIG_RD_ZSTD, CONFIG_RD_GZIP); use a kernel with one of them", k.Release)
}

// squashfsCodec picks the system image's compressor: zstd, else xz, else
// gzip, whichever the kernel's squashfs reads first.
func squashfsCodec(k *Kernel) (string, error) {
	if !k.ConfigEnabled("CONFIG_SQUASHFS", true) {
		return "", fmt.Errorf("kernel %s has no squashfs (CONFIG_SQUASHFS); use a kernel with it", k.Release)
	}
	for _, c := range []struct{ codec, option string }{
		{"zstd", "CONFIG_SQUASHFS_ZSTD"}, {"xz", "CONFIG_SQUASHFS_XZ"}, {"gzip", "CONFIG_SQUASHFS_ZLIB"},
	} {
		if k.ConfigEnabled(c.option, false) {
			return c.codec, nil
		}
	}
	return "", fmt.Errorf("kernel %s's squashfs reads neither zstd, xz nor gzip; use a kernel with CONFIG_SQUASHFS_ZSTD", k.Release)
}

func defaultCacheDir() (string, error) {
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory: %w; set XDG_CACHE_HOME", err)
	}
	return filepath.Join(d, "cairn"), nil
}

// prepareOut creates the output directory and checks it is writable.
func prepareOut(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("output directory %s: %w; pass -o a writable directory", dir, unwrapPath(err))
	}
	f, err := os.CreateTemp(dir, ".cairn-write-test-")
	if err != nil {
		return "", fmt.Errorf("output directory %s: %w; pass -o a writable directory", dir, unwrapPath(err))
	}
	f.Close()
	os.Remove(f.Name())
	return dir, nil
}

// unwrapPath drops the path from an *fs.PathError: the message names it.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// base directories of the system image, which the init mounts over or
// writes to.
func addBase(t tree) {
	for _, d := range []string{"dev", "proc", "sys", "run", "tmp", "mnt", "root", "var", "etc/cairn", "usr/bin", "usr/lib"} {
		t.mkdirAll(d)
	}
	t["tmp"].mode = cpio.TypeDir | 0o1777
	t["root"].mode = cpio.TypeDir | 0o700
	t.symlink("bin", "usr/bin")
}

// addOverlay adds overlays/NAME from the repository, when it can be found.
func addOverlay(t tree, name string) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	dir := filepath.Join(root, "overlays", name)
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("overlay %s: %w", dir, unwrapPath(err))
	}
	if err := t.addDir(dir, ""); err != nil {
		return fmt.Errorf("overlay %s: %w", dir, err)
	}
	return nil
}

func addModules(t tree, k *Kernel, mods []*kmod.Module) {
	base := "lib/modules/" + k.Release + "/"
	for _, m := range mods {
		t.file(base+m.Path, 0o644, k.ModulePath(m.Path))
	}
	idx := k.Modules.BuildIndex(mods)
	t.bytes(base+"modules.dep", 0o644, []byte(idx.Dep))
	t.bytes(base+"modules.alias", 0o644, []byte(idx.Alias))
	t.bytes(base+"modules.softdep", 0o644, []byte(idx.Softdep))
	t.bytes(base+"modules.builtin", 0o644, []byte(idx.Builtin))
}

func names(mods []*kmod.Module) Listed {
	out := make(Listed, len(mods))
	for i, m := range mods {
		out[i] = m.Name
	}
	sort.Strings(out)
	return out
}

// writeInitramfs writes the compressed stage-1 cpio, zero padding to a
// 4-byte boundary, then an uncompressed cpio holding /system.sqfs (already
// compressed; the kernel unpacks concatenated archives in turn).
func writeInitramfs(w io.WriteCloser, t tree, sqfs, comp string, mtime int64, cacheDir string) error {
	seg, err := compressedCPIO(t, comp, mtime, cacheDir)
	if err != nil {
		w.Close()
		return err
	}
	cw := &countWriter{w: w}
	f, err := os.Open(seg)
	if err != nil {
		w.Close()
		return err
	}
	_, err = io.Copy(cw, f)
	f.Close()
	if err != nil {
		w.Close()
		return err
	}
	if r := cw.n % 4; r != 0 {
		cw.Write(make([]byte, 4-r))
	}
	live := tree{}
	live.file(layout.SystemImage, 0o644, sqfs)
	if err := live.writeCPIO(cw, mtime); err != nil {
		w.Close()
		return err
	}
	if cw.err != nil {
		w.Close()
		return cw.err
	}
	return w.Close()
}

// compressedCPIO returns a file holding t as a compressed cpio, cached in
// cacheDir by the tree's digest and the codec's settings.
func compressedCPIO(t tree, comp string, mtime int64, cacheDir string) (string, error) {
	d, err := t.digest(digests{cacheDir})
	if err != nil {
		return "", err
	}
	settings := "zstd better concurrency=2"
	if comp == "gzip" {
		settings = "gzip best"
	}
	key := sha256.Sum256(fmt.Appendf(nil, "%s\n%d\n%s", d, mtime, settings))
	path := filepath.Join(cacheDir, "initramfs", hex.EncodeToString(key[:16])+".cpio."+comp)
	if cacheHit(path) {
		return path, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	cachePrune(filepath.Dir(path))
	f, err := os.CreateTemp(filepath.Dir(path), ".seg-")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	var zw io.WriteCloser
	switch comp {
	case "gzip":
		zw, _ = gzip.NewWriterLevel(f, gzip.BestCompression)
	default:
		zw, err = zstd.NewWriter(f, zstd.WithEncoderLevel(zstd.SpeedBetterCompression), zstd.WithEncoderConcurrency(2))
		if err != nil {
			f.Close()
			return "", err
		}
	}
	if err := t.writeCPIO(zw, mtime); err != nil {
		f.Close()
		return "", err
	}
	if err := zw.Close(); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return "", err
	}
	return path, nil
}

type countWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countWriter) Write(b []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(b)
	c.n += int64(n)
	c.err = err
	return n, err
}

func describe(name, path string) (Artifact, error) {
	st, err := os.Stat(path)
	if err != nil {
		return Artifact{}, err
	}
	sum, err := fileSHA256(path)
	if err != nil {
		return Artifact{}, err
	}
	return Artifact{Name: name, Size: st.Size(), SHA256: sum}, nil
}

func copyTo(w io.WriteCloser, src string) error {
	f, err := os.Open(src)
	if err != nil {
		w.Close()
		return err
	}
	defer f.Close()
	if _, err := io.Copy(w, f); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

func writeTo(w io.WriteCloser, data []byte) error {
	if _, err := io.Copy(w, bytes.NewReader(data)); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

// outFiles writes artifacts under temporary names in the output directory
// and renames them all at the end; abort removes what was not committed.
type outFiles struct {
	dir     string
	tmp     map[string]string
	written map[string]*hashingFile
	order   []string
}

func newOutFiles(dir string) *outFiles {
	return &outFiles{dir: dir, tmp: map[string]string{}, written: map[string]*hashingFile{}}
}

func (o *outFiles) create(name string) (io.WriteCloser, error) {
	f, err := os.CreateTemp(o.dir, "."+name+".tmp-")
	if err != nil {
		return nil, fmt.Errorf("output directory %s: %w; pass -o a writable directory", o.dir, unwrapPath(err))
	}
	o.tmp[name] = f.Name()
	o.order = append(o.order, name)
	hf := &hashingFile{f: f, h: sha256.New()}
	o.written[name] = hf
	return hf, nil
}

// describe returns the size and digest of an artifact written with create.
func (o *outFiles) describe(name string) Artifact {
	hf := o.written[name]
	return Artifact{Name: name, Size: hf.n, SHA256: hex.EncodeToString(hf.h.Sum(nil))}
}

// hashingFile is a file that hashes and counts what is written to it.
type hashingFile struct {
	f *os.File
	h hash.Hash
	n int64
}

func (w *hashingFile) Write(b []byte) (int, error) {
	n, err := w.f.Write(b)
	w.h.Write(b[:n])
	w.n += int64(n)
	return n, err
}

func (w *hashingFile) Close() error { return w.f.Close() }

func (o *outFiles) commit() error {
	for _, name := range o.order {
		if err := os.Chmod(o.tmp[name], 0o644); err != nil {
			return fmt.Errorf("output %s: %w", name, err)
		}
		if err := os.Rename(o.tmp[name], filepath.Join(o.dir, name)); err != nil {
			return fmt.Errorf("output %s: %w", name, err)
		}
		delete(o.tmp, name)
	}
	return nil
}

func (o *outFiles) abort() {
	for _, p := range o.tmp {
		os.Remove(p)
	}
}

// progress prints a step to a terminal when it takes longer than a second.
type progress struct {
	w     io.Writer
	msg   string
	begin time.Time
	timer *time.Timer
	shown chan bool
}

func newProgress(w io.Writer) *progress { return &progress{w: w} }

func (p *progress) start(msg string) {
	if p == nil || p.w == nil {
		return
	}
	p.msg, p.begin = msg, time.Now()
	shown := make(chan bool, 1)
	p.shown = shown
	p.timer = time.AfterFunc(time.Second, func() {
		fmt.Fprintf(p.w, "cairn: build: %s ...\n", msg)
		shown <- true
	})
}

func (p *progress) done() {
	if p == nil || p.w == nil || p.timer == nil {
		return
	}
	if !p.timer.Stop() {
		<-p.shown
		fmt.Fprintf(p.w, "cairn: build: %s done in %.1fs\n", p.msg, time.Since(p.begin).Seconds())
	}
	p.timer = nil
}
