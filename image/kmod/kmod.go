// Package kmod knows a kernel's loadable modules: it reads a module's
// .modinfo (name, dependencies, soft dependencies, aliases), takes the
// closure of a set of wanted modules over their dependencies, and writes the
// index files modprobe-style loaders read (modules.dep, modules.alias,
// modules.softdep, modules.builtin) for that subset.
package kmod

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Module is one loadable module of a kernel.
type Module struct {
	// Name is the module's name with '-' replaced by '_' ("nf_conntrack").
	Name string `json:"name"`
	// Path is the file relative to /lib/modules/<version>/, compression
	// suffix included ("kernel/fs/overlayfs/overlay.ko").
	Path string `json:"path"`
	// Depends are the names of the modules it needs loaded first.
	Depends []string `json:"depends,omitempty"`
	// SoftPre and SoftPost are its soft dependencies ("softdep=pre: crc32c").
	SoftPre  []string `json:"softpre,omitempty"`
	SoftPost []string `json:"softpost,omitempty"`
	// Aliases are the module's alias patterns ("pci:v00001AF4d*", "fs-overlay").
	Aliases []string `json:"aliases,omitempty"`
}

// Set is every module of one kernel.
type Set struct {
	// Version is the kernel release, the directory name under /lib/modules.
	Version string `json:"version"`
	// Modules by name.
	Modules map[string]*Module `json:"modules"`
	// Builtin are the names of modules built into the kernel image.
	Builtin map[string]bool `json:"builtin"`
	// BuiltinFile is modules.builtin as shipped, kept verbatim.
	BuiltinFile string `json:"builtin_file"`
}

// Normalize returns a module name in the form the kernel uses ('-' → '_').
func Normalize(name string) string { return strings.ReplaceAll(name, "-", "_") }

// IsModuleFile reports whether a file name is a kernel module, compressed or not.
func IsModuleFile(name string) bool {
	for _, s := range []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"} {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}

// nameFromPath derives a module's name from its file name.
func nameFromPath(p string) string {
	b := path.Base(p)
	if i := strings.Index(b, ".ko"); i >= 0 {
		b = b[:i]
	}
	return Normalize(b)
}

// Decompress returns the ELF bytes of a module file, undoing the compression
// its name says it has.
func Decompress(name string, data []byte) ([]byte, error) {
	var r io.Reader
	switch {
	case strings.HasSuffix(name, ".ko"):
		return data, nil
	case strings.HasSuffix(name, ".ko.xz"):
		z, err := xz.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		r = z
	case strings.HasSuffix(name, ".ko.gz"):
		z, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		r = z
	case strings.HasSuffix(name, ".ko.zst"):
		z, err := zstd.NewReader(bytes.NewReader(data), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		defer z.Close()
		r = z
	default:
		return nil, fmt.Errorf("%s: not a kernel module file", name)
	}
	return io.ReadAll(r)
}

// ReadModule reads the .modinfo section of a module file (relPath is its
// path under /lib/modules/<version>/, data its possibly compressed bytes).
func ReadModule(relPath string, data []byte) (*Module, error) {
	raw, err := Decompress(relPath, data)
	if err != nil {
		return nil, fmt.Errorf("module %s: decompressing: %w", relPath, err)
	}
	f, err := elf.NewFile(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("module %s: not an ELF file: %w", relPath, err)
	}
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("module %s: no .modinfo section", relPath)
	}
	info, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("module %s: reading .modinfo: %w", relPath, err)
	}
	m := &Module{Path: relPath, Name: nameFromPath(relPath)}
	for _, kv := range bytes.Split(info, []byte{0}) {
		k, v, ok := strings.Cut(string(kv), "=")
		if !ok {
			continue
		}
		switch k {
		case "name":
			m.Name = Normalize(v)
		case "depends":
			for _, d := range strings.Split(v, ",") {
				if d = strings.TrimSpace(d); d != "" {
					m.Depends = append(m.Depends, Normalize(d))
				}
			}
		case "softdep":
			pre, post := parseSoftdep(v)
			m.SoftPre = append(m.SoftPre, pre...)
			m.SoftPost = append(m.SoftPost, post...)
		case "alias":
			m.Aliases = append(m.Aliases, v)
		}
	}
	return m, nil
}

// parseSoftdep splits "pre: a b post: c" into its pre and post lists.
func parseSoftdep(v string) (pre, post []string) {
	var cur *[]string
	for _, w := range strings.Fields(v) {
		switch w {
		case "pre:":
			cur = &pre
		case "post:":
			cur = &post
		default:
			if cur != nil {
				*cur = append(*cur, Normalize(w))
			}
		}
	}
	return pre, post
}

// ParseBuiltin reads modules.builtin ("kernel/fs/ext4/ext4.ko" per line)
// into a set of module names.
func ParseBuiltin(data string) map[string]bool {
	b := map[string]bool{}
	for _, line := range strings.Split(data, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			b[nameFromPath(line)] = true
		}
	}
	return b
}

// ErrUnknown is wrapped by Closure's error for a wanted module the kernel
// neither has as a module nor builds in.
var ErrUnknown = errors.New("not in the kernel")

// Closure returns the modules needed to load every wanted module: the
// wanted ones and, transitively, their dependencies and soft dependencies,
// sorted by name. A wanted name may be a module name, a built-in module
// (which needs nothing and is left out) or an alias ("crc32c",
// "fs-overlay"), which brings in every module that declares it. A wanted
// name that is none of these is an error naming it.
func (s *Set) Closure(wanted []string) ([]*Module, error) {
	seen := map[string]bool{}
	var visit func(name string, optional bool) error
	visit = func(name string, optional bool) error {
		name = Normalize(name)
		if seen[name] {
			return nil
		}
		m, ok := s.Modules[name]
		if !ok {
			if s.Builtin[name] {
				return nil
			}
			providers := s.byAlias(name)
			if len(providers) == 0 {
				if optional {
					return nil
				}
				return fmt.Errorf("module %q: %w %s (neither a module, a built-in nor an alias)", name, ErrUnknown, s.Version)
			}
			for _, p := range providers {
				if err := visit(p, false); err != nil {
					return err
				}
			}
			return nil
		}
		seen[name] = true
		for _, d := range m.Depends {
			if err := visit(d, false); err != nil {
				return fmt.Errorf("%s needs %w", name, err)
			}
		}
		for _, d := range append(append([]string{}, m.SoftPre...), m.SoftPost...) {
			if err := visit(d, true); err != nil {
				return err
			}
		}
		return nil
	}
	for _, w := range wanted {
		if err := visit(w, false); err != nil {
			return nil, err
		}
	}
	out := make([]*Module, 0, len(seen))
	for n := range seen {
		out = append(out, s.Modules[n])
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// byAlias returns the names of the modules declaring alias a, sorted. Only
// literal aliases match (no glob patterns): "crc32c" finds crc32c_generic.
func (s *Set) byAlias(a string) []string {
	var names []string
	for _, m := range s.Modules {
		for _, al := range m.Aliases {
			if Normalize(al) == a {
				names = append(names, m.Name)
				break
			}
		}
	}
	sort.Strings(names)
	return names
}

// Index holds the text of the module index files for a subset of modules.
type Index struct {
	Dep, Alias, Softdep, Builtin string
}

// BuildIndex writes modules.dep, modules.alias and modules.softdep for mods
// (a closure, so every dependency is in it) and carries modules.builtin over.
//
// modules.dep has depmod's format: "PATH: DEP DEP ..." listing every module's
// full transitive dependencies, ordered so that a module comes before the
// modules it depends on: load the list from its end to its start, then the
// module itself.
func (s *Set) BuildIndex(mods []*Module) Index {
	byName := map[string]*Module{}
	for _, m := range mods {
		byName[m.Name] = m
	}
	var dep, alias, soft strings.Builder
	for _, m := range mods {
		order := depOrder(m, byName)
		dep.WriteString(m.Path + ":")
		for _, d := range order {
			dep.WriteString(" " + d.Path)
		}
		dep.WriteString("\n")
		for _, a := range m.Aliases {
			fmt.Fprintf(&alias, "alias %s %s\n", a, m.Name)
		}
		if len(m.SoftPre)+len(m.SoftPost) > 0 {
			fmt.Fprintf(&soft, "softdep %s", m.Name)
			if len(m.SoftPre) > 0 {
				soft.WriteString(" pre: " + strings.Join(m.SoftPre, " "))
			}
			if len(m.SoftPost) > 0 {
				soft.WriteString(" post: " + strings.Join(m.SoftPost, " "))
			}
			soft.WriteString("\n")
		}
	}
	return Index{Dep: dep.String(), Alias: alias.String(), Softdep: soft.String(), Builtin: s.BuiltinFile}
}

// depOrder returns m's transitive dependencies (m excluded) with every
// module before the ones it depends on.
func depOrder(m *Module, byName map[string]*Module) []*Module {
	var post []*Module // dependencies first (post-order)
	seen := map[string]bool{m.Name: true}
	var walk func(x *Module)
	walk = func(x *Module) {
		for _, d := range x.Depends {
			dm, ok := byName[d]
			if !ok || seen[d] {
				continue
			}
			seen[d] = true
			walk(dm)
			post = append(post, dm)
		}
	}
	walk(m)
	// reverse: dependents first, their dependencies after them
	for i, j := 0, len(post)-1; i < j; i, j = i+1, j-1 {
		post[i], post[j] = post[j], post[i]
	}
	return post
}
