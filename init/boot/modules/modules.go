// Package modules loads Linux kernel modules as modprobe does, without
// modprobe: it reads modules.dep and modules.alias, loads dependencies
// first, decompresses .ko.xz, .ko.zst and .ko.gz in Go, and coldplugs
// every device the kernel found by matching its modalias against the
// aliases.
package modules

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Index is one kernel's module directory (/lib/modules/<release>).
type Index struct {
	Dir string

	paths   map[string]string   // module name → path relative to Dir
	deps    map[string][]string // module name → names it needs
	builtin map[string]bool
	aliases map[string][]alias // by literal prefix bucket, see bucket
	wild    []alias            // patterns too short to bucket
}

type alias struct {
	pattern string
	module  string
}

// Name normalizes a module name or file name: "virtio-net.ko.xz" and
// "virtio_net" are both "virtio_net".
func Name(s string) string {
	s = path.Base(s)
	for _, ext := range []string{".xz", ".zst", ".gz"} {
		s = strings.TrimSuffix(s, ext)
	}
	s = strings.TrimSuffix(s, ".ko")
	return strings.ReplaceAll(s, "-", "_")
}

// Open reads modules.dep, modules.alias and (when present) modules.builtin
// from dir.
func Open(dir string) (*Index, error) {
	ix := &Index{Dir: dir, paths: map[string]string{}, deps: map[string][]string{}, builtin: map[string]bool{}, aliases: map[string][]alias{}}
	dep, err := os.ReadFile(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return nil, fmt.Errorf("reading the module index: %w (the image must carry modules.dep)", err)
	}
	for _, line := range strings.Split(string(dep), "\n") {
		mod, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		name := Name(mod)
		ix.paths[name] = strings.TrimSpace(mod)
		for _, d := range strings.Fields(rest) {
			ix.deps[name] = append(ix.deps[name], Name(d))
		}
	}
	if data, err := os.ReadFile(filepath.Join(dir, "modules.alias")); err == nil {
		ix.parseAliases(data)
	}
	if data, err := os.ReadFile(filepath.Join(dir, "modules.builtin")); err == nil {
		for _, line := range strings.Fields(string(data)) {
			ix.builtin[Name(line)] = true
		}
	}
	return ix, nil
}

// bucketLen is how many literal leading characters index a pattern.
const bucketLen = 4

func (ix *Index) parseAliases(data []byte) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || f[0] != "alias" {
			continue
		}
		a := alias{pattern: f[1], module: Name(f[2])}
		lit := a.pattern
		if i := strings.IndexAny(lit, "*?[\\"); i >= 0 {
			lit = lit[:i]
		}
		if len(lit) >= bucketLen {
			ix.aliases[lit[:bucketLen]] = append(ix.aliases[lit[:bucketLen]], a)
		} else {
			ix.wild = append(ix.wild, a)
		}
	}
}

// Lookup returns the modules whose aliases match modalias, sorted.
func (ix *Index) Lookup(modalias string) []string {
	seen := map[string]bool{}
	check := func(as []alias) {
		for _, a := range as {
			if ok, err := path.Match(a.pattern, modalias); err == nil && ok {
				seen[a.module] = true
			}
		}
	}
	if len(modalias) >= bucketLen {
		check(ix.aliases[modalias[:bucketLen]])
	}
	check(ix.wild)
	out := make([]string, 0, len(seen))
	for m := range seen {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}

// ErrNotFound is returned for a module the index does not know.
var ErrNotFound = errors.New("module not found")

// Loader loads modules from an Index into the running kernel.
type Loader struct {
	Index *Index
	// Sys is where sysfs is mounted ("/sys" when empty); loaded modules
	// show up in Sys/module.
	Sys string
	// load inserts one module image; the kernel's init_module by default.
	load func(name, file string, image []byte) error
	// tried remembers modules already attempted, with their result.
	tried map[string]error
}

// NewLoader returns a Loader for ix.
func NewLoader(ix *Index) *Loader {
	return &Loader{Index: ix, load: insert, tried: map[string]error{}}
}

// Loaded reports whether the kernel has the module (loaded or built in).
func (l *Loader) Loaded(name string) bool {
	sys := l.Sys
	if sys == "" {
		sys = "/sys"
	}
	_, err := os.Stat(filepath.Join(sys, "module", Name(name)))
	return err == nil || l.Index.builtin[Name(name)]
}

// Load loads the module and, first, everything it needs. It reports
// whether it inserted anything.
func (l *Loader) Load(name string) (bool, error) {
	return l.loadRec(Name(name), map[string]bool{})
}

func (l *Loader) loadRec(name string, visiting map[string]bool) (bool, error) {
	if err, ok := l.tried[name]; ok {
		return false, err
	}
	if l.Loaded(name) {
		l.tried[name] = nil
		return false, nil
	}
	rel, ok := l.Index.paths[name]
	if !ok {
		err := fmt.Errorf("%s: %w in %s", name, ErrNotFound, l.Index.Dir)
		l.tried[name] = err
		return false, err
	}
	if visiting[name] {
		return false, nil
	}
	visiting[name] = true
	inserted := false
	for _, d := range l.Index.deps[name] {
		did, err := l.loadRec(d, visiting)
		inserted = inserted || did
		if err != nil {
			err = fmt.Errorf("%s needs %w", name, err)
			l.tried[name] = err
			return inserted, err
		}
	}
	file := filepath.Join(l.Index.Dir, rel)
	image, err := readModule(file)
	if err == nil {
		err = l.load(name, file, image)
	}
	if err != nil {
		err = fmt.Errorf("loading %s: %w", name, err)
	}
	l.tried[name] = err
	return inserted || err == nil, err
}

// readModule returns the module's ELF image, decompressed.
func readModule(file string) ([]byte, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var r io.Reader
	switch {
	case strings.HasSuffix(file, ".xz"):
		r, err = xz.NewReader(bytes.NewReader(data))
	case strings.HasSuffix(file, ".zst"):
		var d *zstd.Decoder
		d, err = zstd.NewReader(bytes.NewReader(data))
		if err == nil {
			defer d.Close()
			r = d
		}
	case strings.HasSuffix(file, ".gz"):
		r, err = gzip.NewReader(bytes.NewReader(data))
	default:
		return data, nil
	}
	if err != nil {
		return nil, fmt.Errorf("decompressing %s: %w", file, err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("decompressing %s: %w", file, err)
	}
	return out, nil
}

// Modaliases returns every distinct modalias of the devices under sys (the
// sysfs mount point), sorted. Devices are found through their buses, the
// input and DMI classes and the CPU's own modalias: much cheaper
// than walking sys/devices, and every lookup counts under emulation, so
// directories are listed and modalias files read without globbing.
func Modaliases(sys string) []string {
	seen := map[string]bool{}
	read := func(p string) {
		data, err := os.ReadFile(p)
		if err != nil {
			return
		}
		if s := strings.TrimSpace(string(data)); s != "" {
			seen[s] = true
		}
	}
	each := func(dir string, fn func(name string)) {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			fn(e.Name())
		}
	}
	each(filepath.Join(sys, "bus"), func(bus string) {
		devs := filepath.Join(sys, "bus", bus, "devices")
		each(devs, func(dev string) { read(filepath.Join(devs, dev, "modalias")) })
	})
	// Outside buses only input devices and the DMI table carry a modalias.
	for _, class := range []string{"input", "dmi"} {
		dir := filepath.Join(sys, "class", class)
		each(dir, func(dev string) { read(filepath.Join(dir, dev, "modalias")) })
	}
	read(filepath.Join(sys, "devices/system/cpu/modalias"))
	out := make([]string, 0, len(seen))
	for s := range seen {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// Coldplug loads the modules for every device the kernel found, in
// rounds, until a round finds nothing new (loading a bus driver reveals the
// devices on that bus). It returns the modules it inserted and the errors
// of modules that failed (a driver refusing a device it does not support
// is normal and among them).
func (l *Loader) Coldplug(maxRounds int) (loaded []string, errs []error) {
	sys := l.Sys
	if sys == "" {
		sys = "/sys"
	}
	for round := 0; round < maxRounds; round++ {
		progress := false
		for _, ma := range Modaliases(sys) {
			for _, m := range l.Index.Lookup(ma) {
				if _, tried := l.tried[m]; tried {
					continue
				}
				did, err := l.Load(m)
				if err != nil {
					errs = append(errs, err)
				}
				if did && err == nil {
					loaded = append(loaded, m)
					progress = true
				}
			}
		}
		if !progress {
			break
		}
	}
	return loaded, errs
}

// Request loads what the kernel or a program asks for by module name or by
// alias ("fs-overlay", "nft-chain-2-nat", a device modalias), the way
// modprobe does, and returns the modules it resolved to.
func (l *Loader) Request(name string) ([]string, error) {
	n := Name(name)
	if _, ok := l.Index.paths[n]; ok || l.Index.builtin[n] {
		_, err := l.Load(n)
		return []string{n}, err
	}
	mods := l.Index.Lookup(name)
	if len(mods) == 0 {
		return nil, fmt.Errorf("%s: %w in %s (neither a module name nor an alias)", name, ErrNotFound, l.Index.Dir)
	}
	var errs []error
	for _, m := range mods {
		if _, err := l.Load(m); err != nil {
			errs = append(errs, err)
		}
	}
	return mods, errors.Join(errs...)
}
