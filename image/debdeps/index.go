// Package debdeps resolves Debian packages' dependencies from a Packages
// index and extracts the closure into a file tree, recording each package's
// version. The builder uses it for what a node needs and Go modules cannot
// give: iptables and nftables userland for kube-proxy and pod masquerading,
// and conntrack.
//
//	ix, err := debdeps.LoadAptLists("/var/lib/apt/lists", "arm64")
//	pkgs, err := ix.Resolve(debdeps.NodeNetworking)
//	debs, err := debdeps.Download(ctx, pkgs, "out/debs/arm64")
//	m, err := debdeps.Extract(debs, "out/netfilter/linux-arm64", debdeps.ExtractOptions{})
package debdeps

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/cairn-os/cairn/image/deb"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
)

// Package is one binary package of an index.
type Package struct {
	Name         string
	Version      string
	Architecture string // amd64, arm64, all
	MultiArch    string // same, foreign, allowed, or ""
	Essential    bool
	// Depends and PreDepends are AND-lists of OR-groups:
	// "a | b (>= 1), c" is [[a, b>=1], [c]].
	Depends    [][]Dep
	PreDepends [][]Dep
	Provides   []Dep
	Filename   string // pool path in a mirror, or the .deb's path for a local directory
	SHA256     string
}

// String is name=version, as apt-get takes it.
func (p *Package) String() string { return p.Name + "=" + p.Version }

// Dep is one package relation: a name, an optional architecture qualifier
// (":any", ":native") and an optional version constraint.
type Dep struct {
	Name    string
	Arch    string
	Op      string // <<, <=, =, >=, >> or ""
	Version string
}

func (d Dep) String() string {
	s := d.Name
	if d.Arch != "" {
		s += ":" + d.Arch
	}
	if d.Op != "" {
		s += " (" + d.Op + " " + d.Version + ")"
	}
	return s
}

// Allows reports whether version satisfies the dependency's constraint.
func (d Dep) Allows(version string) bool {
	if d.Op == "" {
		return true
	}
	c := CompareVersions(version, d.Version)
	switch d.Op {
	case "<<":
		return c < 0
	case "<=":
		return c <= 0
	case "=":
		return c == 0
	case ">=":
		return c >= 0
	case ">>":
		return c > 0
	}
	return false
}

// ParseRelations parses a Depends-style field: comma-separated groups of
// "|"-separated alternatives, each "name[:arch] [(op version)] [<profile>]".
func ParseRelations(field string) ([][]Dep, error) {
	var groups [][]Dep
	for _, group := range strings.Split(field, ",") {
		group = strings.TrimSpace(group)
		if group == "" {
			continue
		}
		var alts []Dep
		for _, alt := range strings.Split(group, "|") {
			d, err := parseDep(strings.TrimSpace(alt))
			if err != nil {
				return nil, err
			}
			alts = append(alts, d)
		}
		groups = append(groups, alts)
	}
	return groups, nil
}

func parseDep(s string) (Dep, error) {
	// Build profiles (<!nocheck>) and arch restrictions ([amd64]) do not
	// apply to binary packages' fields; drop them if present.
	if i := strings.IndexAny(s, "[<"); i >= 0 && !strings.Contains(s[:i], "(") {
		s = strings.TrimSpace(s[:i])
	}
	var d Dep
	name := s
	if i := strings.IndexByte(s, '('); i >= 0 {
		j := strings.IndexByte(s, ')')
		if j < i {
			return d, fmt.Errorf("relation %q: unclosed version constraint", s)
		}
		name = strings.TrimSpace(s[:i])
		c := strings.TrimSpace(s[i+1 : j])
		k := strings.IndexFunc(c, func(r rune) bool { return r != '<' && r != '>' && r != '=' })
		if k < 0 {
			k = len(c) // an operator and no version
		}
		if k == 0 {
			return d, fmt.Errorf("relation %q: version constraint %q has no operator", s, c)
		}
		d.Op, d.Version = c[:k], strings.TrimSpace(c[k:])
		switch d.Op {
		case "<<", "<=", "=", ">=", ">>":
		case "<":
			d.Op = "<="
		case ">":
			d.Op = ">="
		default:
			return d, fmt.Errorf("relation %q: unknown operator %q", s, d.Op)
		}
		if d.Version == "" {
			return d, fmt.Errorf("relation %q: empty version", s)
		}
	}
	d.Name, d.Arch, _ = strings.Cut(name, ":")
	if d.Name == "" || strings.ContainsAny(d.Name, " \t") {
		return d, fmt.Errorf("relation %q: bad package name", s)
	}
	return d, nil
}

// fromControl makes a Package from a control stanza.
func fromControl(c map[string]string) (*Package, error) {
	p := &Package{
		Name:         c["Package"],
		Version:      c["Version"],
		Architecture: c["Architecture"],
		MultiArch:    c["Multi-Arch"],
		Essential:    c["Essential"] == "yes",
		Filename:     c["Filename"],
		SHA256:       c["SHA256"],
	}
	if p.Name == "" || p.Version == "" {
		return nil, fmt.Errorf("stanza without Package or Version (Package %q)", p.Name)
	}
	var err error
	if p.Depends, err = ParseRelations(c["Depends"]); err != nil {
		return nil, fmt.Errorf("%s Depends: %w", p.Name, err)
	}
	if p.PreDepends, err = ParseRelations(c["Pre-Depends"]); err != nil {
		return nil, fmt.Errorf("%s Pre-Depends: %w", p.Name, err)
	}
	prov, err := ParseRelations(c["Provides"])
	if err != nil {
		return nil, fmt.Errorf("%s Provides: %w", p.Name, err)
	}
	for _, g := range prov {
		p.Provides = append(p.Provides, g...)
	}
	return p, nil
}

// ParsePackages reads a Packages index (deb822 stanzas separated by blank lines).
func ParsePackages(r io.Reader) ([]*Package, error) {
	var pkgs []*Package
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	var stanza bytes.Buffer
	line := 0
	flush := func() error {
		if stanza.Len() == 0 {
			return nil
		}
		p, err := fromControl(deb.ParseControl(stanza.Bytes()))
		stanza.Reset()
		if err != nil {
			return fmt.Errorf("stanza ending at line %d: %w", line, err)
		}
		pkgs = append(pkgs, p)
		return nil
	}
	for sc.Scan() {
		line++
		if strings.TrimSpace(sc.Text()) == "" {
			if err := flush(); err != nil {
				return nil, err
			}
			continue
		}
		stanza.Write(sc.Bytes())
		stanza.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return pkgs, nil
}

// Index holds the packages of one architecture (plus "all"), by name and
// by what they provide.
type Index struct {
	Arch     string
	byName   map[string][]*Package
	provides map[string][]*Package
}

// NewIndex indexes pkgs for arch; packages of other architectures are left out.
func NewIndex(arch string, pkgs []*Package) *Index {
	ix := &Index{Arch: arch, byName: map[string][]*Package{}, provides: map[string][]*Package{}}
	for _, p := range pkgs {
		if p.Architecture != arch && p.Architecture != "all" {
			continue
		}
		ix.byName[p.Name] = append(ix.byName[p.Name], p)
		for _, pr := range p.Provides {
			ix.provides[pr.Name] = append(ix.provides[pr.Name], p)
		}
	}
	for _, list := range ix.byName {
		sort.SliceStable(list, func(i, j int) bool { return CompareVersions(list[i].Version, list[j].Version) > 0 })
	}
	return ix
}

// Len is the number of package versions in the index.
func (ix *Index) Len() int {
	n := 0
	for _, l := range ix.byName {
		n += len(l)
	}
	return n
}

// LoadAptLists indexes apt's downloaded lists (/var/lib/apt/lists) for
// arch: every *_binary-<arch>_Packages file, plain or compressed with lz4,
// gzip or xz. Run `apt-get update` first (and `dpkg --add-architecture
// arm64` for arm64).
func LoadAptLists(dir, arch string) (*Index, error) {
	var all []*Package
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading apt lists: %w", err)
	}
	found := 0
	for _, e := range entries {
		name := e.Name()
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, ".lz4"), ".gz"), ".xz")
		if !strings.HasSuffix(base, "_binary-"+arch+"_Packages") {
			continue
		}
		found++
		pkgs, err := readPackagesFile(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		all = append(all, pkgs...)
	}
	if found == 0 {
		return nil, fmt.Errorf("no Packages lists for %s in %s; run `dpkg --add-architecture %s && apt-get update`", arch, dir, arch)
	}
	return NewIndex(arch, all), nil
}

func readPackagesFile(path string) ([]*Package, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = f
	switch filepath.Ext(path) {
	case ".lz4":
		r = lz4.NewReader(f)
	case ".gz":
		if r, err = gzip.NewReader(f); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	case ".xz":
		if r, err = xz.NewReader(f); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	pkgs, err := ParsePackages(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return pkgs, nil
}

// LoadDebDir indexes the .deb files in dir (as fetched by `apt-get
// download`), reading each one's control file; Filename is the .deb's path.
func LoadDebDir(dir, arch string) (*Index, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.deb"))
	if err != nil {
		return nil, err
	}
	var pkgs []*Package
	for _, path := range paths {
		d, err := deb.Open(path)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", path, err)
		}
		p, err := fromControl(d.Control)
		d.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		p.Filename = path
		pkgs = append(pkgs, p)
	}
	return NewIndex(arch, pkgs), nil
}
