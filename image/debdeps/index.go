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
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
	deb822 "pault.ag/go/debian/control"
	"pault.ag/go/debian/dependency"
	"pault.ag/go/debian/version"

	"github.com/cairn-os/cairn/image/deb"
)

// Package is one binary package of an index.
type Package struct {
	Name         string
	Version      version.Version
	Architecture string // amd64, arm64, all
	MultiArch    string // same, foreign, allowed, or ""
	Essential    bool
	// Depends and PreDepends are AND-lists of OR-groups:
	// "a | b (>= 1), c" is the relations [a, b (>= 1)] and [c].
	Depends    []dependency.Relation
	PreDepends []dependency.Relation
	Provides   []dependency.Possibility
	Filename   string // pool path in a mirror, or the .deb's path for a local directory
	SHA256     string
}

// String is name=version, as apt-get takes it.
func (p *Package) String() string { return p.Name + "=" + p.Version.String() }

// allows reports whether version v meets the version constraint of d, if
// it has one.
func allows(d dependency.Possibility, v version.Version) bool {
	return d.Version == nil || d.Version.SatisfiedBy(v)
}

// parseRelations parses a Depends-style field: comma-separated groups of
// "|"-separated alternatives, each "name[:arch] [(op version)]". It refuses
// what the library lets through: a version that is not one, an empty
// alternative, a substitution variable.
func parseRelations(field string) ([]dependency.Relation, error) {
	dep, err := dependency.Parse(field)
	if err != nil {
		return nil, fmt.Errorf("relation %q: %w", field, err)
	}
	for _, r := range dep.Relations {
		if len(r.Possibilities) == 0 {
			return nil, fmt.Errorf("relation %q: an alternative is empty", field)
		}
		for _, p := range r.Possibilities {
			if p.Substvar {
				return nil, fmt.Errorf("relation %q: unexpanded substitution variable ${%s}", field, p.Name)
			}
			if p.Version == nil {
				continue
			}
			if _, err := version.Parse(p.Version.Number); err != nil {
				return nil, fmt.Errorf("relation %q: version %q: %w", field, p.Version.Number, err)
			}
		}
	}
	return dep.Relations, nil
}

// fromControl makes a Package from a control stanza.
func fromControl(c map[string]string) (*Package, error) {
	p := &Package{
		Name:         c["Package"],
		Architecture: c["Architecture"],
		MultiArch:    c["Multi-Arch"],
		Essential:    c["Essential"] == "yes",
		Filename:     c["Filename"],
		SHA256:       c["SHA256"],
	}
	if p.Name == "" || c["Version"] == "" {
		return nil, fmt.Errorf("stanza without Package or Version (Package %q)", p.Name)
	}
	var err error
	if p.Version, err = version.Parse(c["Version"]); err != nil {
		return nil, fmt.Errorf("%s Version %q: %w", p.Name, c["Version"], err)
	}
	if p.Depends, err = parseRelations(c["Depends"]); err != nil {
		return nil, fmt.Errorf("%s Depends: %w", p.Name, err)
	}
	if p.PreDepends, err = parseRelations(c["Pre-Depends"]); err != nil {
		return nil, fmt.Errorf("%s Pre-Depends: %w", p.Name, err)
	}
	prov, err := parseRelations(c["Provides"])
	if err != nil {
		return nil, fmt.Errorf("%s Provides: %w", p.Name, err)
	}
	for _, g := range prov {
		p.Provides = append(p.Provides, g.Possibilities...)
	}
	return p, nil
}

// ParsePackages reads a Packages index (deb822 stanzas separated by blank lines).
func ParsePackages(r io.Reader) ([]*Package, error) {
	pr, err := deb822.NewParagraphReader(r, nil)
	if err != nil {
		return nil, err
	}
	var pkgs []*Package
	for {
		para, err := pr.Next()
		if errors.Is(err, io.EOF) {
			return pkgs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("after stanza %d: %w", len(pkgs), err)
		}
		p, err := fromControl(para.Values)
		if err != nil {
			return nil, fmt.Errorf("stanza %d: %w", len(pkgs)+1, err)
		}
		pkgs = append(pkgs, p)
	}
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
		sort.SliceStable(list, func(i, j int) bool { return version.Compare(list[i].Version, list[j].Version) > 0 })
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
