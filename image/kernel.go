package image

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/cairn-os/cairn/boards"
	"github.com/cairn-os/cairn/image/deb"
	"github.com/cairn-os/cairn/image/kmod"
)

// Kernel is a kernel package unpacked into the cache: the image, its config
// and every module with its modinfo.
type Kernel struct {
	// Package, Version and Arch are the .deb's control fields.
	Package string `json:"package"`
	Version string `json:"version"`
	Arch    string `json:"arch"`
	// SHA256 is the .deb's digest; File its path when it was read.
	SHA256 string `json:"sha256"`
	File   string `json:"-"`
	// Release is the kernel release ("6.1.0-56-amd64").
	Release string `json:"release"`
	// Config is the kernel's .config ("CONFIG_RD_ZSTD=y" lines).
	Config string `json:"-"`
	// Modules is every module of the kernel.
	Modules *kmod.Set `json:"modules"`
	// DTBs lists the device trees shipped, relative to the dtbs directory.
	DTBs []string `json:"dtbs,omitempty"`

	dir string // cache directory holding vmlinuz, config, modules/, dtbs/
}

// VmlinuzPath is the kernel image file.
func (k *Kernel) VmlinuzPath() string { return filepath.Join(k.dir, "vmlinuz") }

// ModulePath is the file of a module path relative to /lib/modules/<release>/.
func (k *Kernel) ModulePath(rel string) string {
	return filepath.Join(k.dir, "modules", filepath.FromSlash(rel))
}

// DTBPath is the file of a device tree relative to the dtbs directory.
func (k *Kernel) DTBPath(rel string) string {
	return filepath.Join(k.dir, "dtbs", filepath.FromSlash(rel))
}

// ConfigEnabled reports whether the kernel config sets option to y (or m
// when module is true).
func (k *Kernel) ConfigEnabled(option string, module bool) bool {
	for _, line := range strings.Split(k.Config, "\n") {
		if v, ok := strings.CutPrefix(line, option+"="); ok {
			return v == "y" || (module && v == "m")
		}
	}
	return false
}

var versionedKernel = regexp.MustCompile(`^linux-image-[0-9].*`)

// findKernelDeb returns the kernel .deb for board: path itself when it is a
// file, else the newest matching package in the directory path.
func findKernelDeb(path string, b *boards.Board) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("kernel %s: %w; run 'make kernels' or pass -kernel with a linux-image .deb or a directory of them", path, errors.Unwrap(err))
	}
	if !st.IsDir() {
		return path, nil
	}
	ents, err := os.ReadDir(path)
	if err != nil {
		return "", fmt.Errorf("kernel directory %s: %w", path, err)
	}
	var found []string
	for _, e := range ents {
		n := e.Name()
		if !strings.HasSuffix(n, "_"+b.Arch+".deb") || !strings.HasPrefix(n, "linux-image-") {
			continue
		}
		pkg, _, _ := strings.Cut(n, "_")
		if matchesKernelPackage(pkg, b.Kernel.Package) {
			found = append(found, filepath.Join(path, n))
		}
	}
	if len(found) == 0 {
		return "", fmt.Errorf("kernel: no %s package for %s in %s; run 'make kernels' (or .ci/kernels %s)", b.Kernel.Package, b.Arch, path, path)
	}
	sort.Slice(found, func(i, j int) bool { return naturalLess(found[i], found[j]) })
	return found[len(found)-1], nil
}

// matchesKernelPackage reports whether pkg is want or, when want is a
// metapackage like linux-image-amd64, a versioned package of its flavour
// (linux-image-6.1.0-56-amd64, not -dbg or -unsigned).
func matchesKernelPackage(pkg, want string) bool {
	if pkg == want {
		return true
	}
	if versionedKernel.MatchString(want) {
		return false
	}
	flavour := strings.TrimPrefix(want, "linux-image-")
	return versionedKernel.MatchString(pkg) && strings.HasSuffix(pkg, "-"+flavour)
}

// naturalLess compares strings with digit runs compared as numbers.
func naturalLess(a, b string) bool {
	for a != "" && b != "" {
		da, db := digits(a), digits(b)
		if da > 0 && db > 0 {
			na, _ := strconv.ParseUint(a[:da], 10, 64)
			nb, _ := strconv.ParseUint(b[:db], 10, 64)
			if na != nb {
				return na < nb
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

func digits(s string) int {
	n := 0
	for n < len(s) && n < 18 && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}

// loadKernel returns the kernel of the .deb at path for board, unpacking it
// into cacheDir on first use (the cache is keyed by the .deb's sha256).
func loadKernel(path string, b *boards.Board, cacheDir string, prog *progress) (*Kernel, error) {
	sum, err := digests{cacheDir}.sum(path)
	if err != nil {
		return nil, fmt.Errorf("kernel package %s: %w", path, err)
	}
	dir := filepath.Join(cacheDir, "kernel", sum[:32])
	k, err := readKernelCache(dir)
	if err != nil {
		k, err = unpackKernel(path, sum, dir, prog)
		if err != nil {
			return nil, err
		}
	}
	k.File = path
	if k.Arch != b.Arch {
		return nil, fmt.Errorf("kernel package %s is for %s, board %s needs %s; pass a %s kernel", path, k.Arch, b.Name, b.Arch, b.Arch)
	}
	return k, nil
}

func readKernelCache(dir string) (*Kernel, error) {
	data, err := os.ReadFile(filepath.Join(dir, "kernel.json"))
	if err != nil {
		return nil, err
	}
	var k Kernel
	if err := json.Unmarshal(data, &k); err != nil {
		return nil, err
	}
	cfg, err := os.ReadFile(filepath.Join(dir, "config"))
	if err != nil {
		return nil, err
	}
	k.Config = string(cfg)
	k.dir = dir
	return &k, nil
}

// unpackKernel extracts vmlinuz, the config, the modules (with their
// modinfo) and the DTBs of a kernel .deb into dir, reporting the bytes read
// against the package's Installed-Size.
func unpackKernel(path, sum, dir string, prog *progress) (*Kernel, error) {
	p, err := deb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("kernel package %s: %w", path, err)
	}
	defer p.Close()
	size := int64(-1) // unknown: a spinner rather than a bar
	if kib, err := strconv.ParseInt(p.Control["Installed-Size"], 10, 64); err == nil {
		size = kib * 1024
	}
	prog.startSized("unpacking "+filepath.Base(path)+" (once; cached after)", size)
	defer prog.done()
	k := &Kernel{Package: p.Control["Package"], Version: p.Control["Version"], Arch: p.Control["Architecture"], SHA256: sum}
	if !versionedKernel.MatchString(k.Package) {
		return nil, fmt.Errorf("kernel package %s is %q, not a linux-image-<version>-<flavour> package; pass the versioned package (make kernels fetches it)", path, k.Package)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, fmt.Errorf("kernel cache %s: %w", filepath.Dir(dir), err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".unpack-")
	if err != nil {
		return nil, fmt.Errorf("kernel cache %s: %w", filepath.Dir(dir), err)
	}
	defer os.RemoveAll(tmp)

	set := &kmod.Set{Modules: map[string]*kmod.Module{}}
	var gotVmlinuz, gotConfig bool
	err = p.Walk(func(h *tar.Header, r io.Reader) error {
		name := strings.TrimPrefix(h.Name, "./")
		if h.Typeflag != tar.TypeReg {
			return nil
		}
		prog.add(h.Size)
		var dst string
		switch {
		case strings.HasPrefix(name, "boot/vmlinuz-"):
			k.Release = strings.TrimPrefix(name, "boot/vmlinuz-")
			dst, gotVmlinuz = "vmlinuz", true
		case strings.HasPrefix(name, "boot/config-"):
			dst, gotConfig = "config", true
		case strings.HasPrefix(name, "lib/modules/") || strings.HasPrefix(name, "usr/lib/modules/"):
			rest := strings.TrimPrefix(strings.TrimPrefix(name, "usr/"), "lib/modules/")
			rel, file, ok := strings.Cut(rest, "/")
			if !ok {
				return nil
			}
			set.Version = rel
			dst = "modules/" + file
			if kmod.IsModuleFile(file) {
				data, err := io.ReadAll(r)
				if err != nil {
					return err
				}
				m, err := kmod.ReadModule(file, data)
				if err != nil {
					return err
				}
				set.Modules[m.Name] = m
				return writeFile(filepath.Join(tmp, dst), data)
			}
			if file == "modules.builtin" {
				data, err := io.ReadAll(r)
				if err != nil {
					return err
				}
				set.BuiltinFile = string(data)
				set.Builtin = kmod.ParseBuiltin(set.BuiltinFile)
				return nil
			}
			return nil
		case strings.HasPrefix(name, "usr/lib/linux-image-") && strings.HasSuffix(name, ".dtb"):
			_, rel, _ := strings.Cut(strings.TrimPrefix(name, "usr/lib/"), "/")
			k.DTBs = append(k.DTBs, rel)
			dst = "dtbs/" + rel
		default:
			return nil
		}
		data, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		return writeFile(filepath.Join(tmp, dst), data)
	})
	if err != nil {
		return nil, fmt.Errorf("kernel package %s: %w", path, err)
	}
	if !gotVmlinuz || !gotConfig || len(set.Modules) == 0 {
		return nil, fmt.Errorf("kernel package %s has no boot/vmlinuz-*, boot/config-* or modules; pass a linux-image-<version>-<flavour> package", path)
	}
	if set.Builtin == nil {
		set.Builtin = map[string]bool{}
	}
	k.Modules = set
	sort.Strings(k.DTBs)
	js, err := json.Marshal(k)
	if err != nil {
		return nil, err
	}
	if err := writeFile(filepath.Join(tmp, "kernel.json"), js); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Another build unpacked the same package meanwhile: use its copy.
		if k, err2 := readKernelCache(dir); err2 == nil {
			return k, nil
		}
		return nil, fmt.Errorf("kernel cache %s: %w; remove it and build again", dir, err)
	}
	return readKernelCache(dir)
}

func writeFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}
