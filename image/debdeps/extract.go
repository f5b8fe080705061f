package debdeps

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/cairn-os/cairn/config/files"
	"github.com/cairn-os/cairn/image/deb"
)

// NodeNetworkingLinks are the links iptables' maintainer script makes with
// update-alternatives, nft backend chosen (the one Debian prefers, priority
// 20): extracting a package runs no scripts, so the builder adds them.
var NodeNetworkingLinks = func() map[string]string {
	links := map[string]string{}
	for _, tool := range []string{"iptables", "ip6tables", "arptables", "ebtables"} {
		for _, suffix := range []string{"", "-restore", "-save"} {
			links["usr/sbin/"+tool+suffix] = tool + "-nft" + suffix
		}
	}
	return links
}()

// DebFileName is the file name apt-get download gives a package:
// name_version_arch.deb, with the epoch's ":" written as "%3a".
func DebFileName(p *Package) string {
	return p.Name + "_" + strings.ReplaceAll(p.Version.String(), ":", "%3a") + "_" + p.Architecture + ".deb"
}

// Download fetches the resolved packages into dir with `apt-get download`,
// skipping those already there, and checks each file against the index's
// SHA256 when it has one. It returns the .deb paths in the order of pkgs.
func Download(ctx context.Context, pkgs []Resolved, arch, dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var fetch []string
	paths := make([]string, len(pkgs))
	have := make([]bool, len(pkgs)) // already here and verified
	for i, p := range pkgs {
		paths[i] = filepath.Join(dir, DebFileName(p.Package))
		if have[i], _ = matches(paths[i], p.SHA256); have[i] {
			continue
		}
		spec := p.String()
		if p.Architecture != "all" {
			spec = p.Name + ":" + arch + "=" + p.Version.String()
		}
		fetch = append(fetch, spec)
	}
	if len(fetch) > 0 {
		cmd := exec.CommandContext(ctx, "apt-get", append([]string{"download", "-q"}, fetch...)...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("apt-get download %s: %w\n%s", strings.Join(fetch, " "), err, out)
		}
	}
	for i, p := range pkgs {
		if have[i] {
			continue
		}
		ok, err := matches(paths[i], p.SHA256)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if !ok {
			return nil, fmt.Errorf("%s: %s does not match the index's SHA256 %s; delete it and run apt-get update", p, paths[i], p.SHA256)
		}
	}
	return paths, nil
}

// matches reports whether the file exists and, when want is set, has that SHA256.
func matches(path, want string) (bool, error) {
	sum, _, err := files.SHA256(path, -1)
	if err != nil {
		return false, err
	}
	return want == "" || sum == want, nil
}

// ExtractOptions says what to leave out and what to add.
type ExtractOptions struct {
	// Drop lists path prefixes not extracted; nil means DefaultDrop.
	Drop []string
	// Links are symlinks to make after extraction (path in the tree → target).
	Links map[string]string
}

// DefaultDrop is what an appliance does not need: documentation,
// translations, glibc's iconv modules (8 MB; nothing the node runs from
// these packages converts character sets) and systemd units. A "*" matches
// one path element.
var DefaultDrop = []string{
	"usr/share/doc/", "usr/share/man/", "usr/share/info/", "usr/share/lintian/", "usr/share/locale/", "usr/share/bug/",
	"usr/lib/*/gconv/", "lib/systemd/", "usr/lib/systemd/",
}

// dropped reports whether name (tree-relative, no leading slash) falls under
// one of the drop prefixes.
func dropped(name string, drop []string) bool {
	elems := strings.Split(name, "/")
	for _, p := range drop {
		pe := strings.Split(strings.TrimSuffix(p, "/"), "/")
		if len(elems) < len(pe) {
			continue
		}
		if ok, _ := path.Match(strings.Join(pe, "/"), strings.Join(elems[:len(pe)], "/")); ok {
			return true
		}
	}
	return false
}

// Manifest records what Extract put into a tree.
type Manifest struct {
	Packages []ManifestEntry `json:"packages"`
}

// ManifestEntry is one extracted package.
type ManifestEntry struct {
	Package      string `json:"package"`
	Version      string `json:"version"`
	Architecture string `json:"architecture"`
	SHA256       string `json:"sha256"` // of the .deb
	Files        int    `json:"files"`
}

// ManifestPath is where Extract writes the manifest inside the tree.
const ManifestPath = "usr/share/cairn/debs.json"

// Extract unpacks the data archives of debs into dest (no maintainer
// scripts run), adds opts.Links, and writes the manifest to
// dest/usr/share/cairn/debs.json. Paths that would leave dest are refused.
func Extract(debs []string, dest string, opts ExtractOptions) (*Manifest, error) {
	drop := opts.Drop
	if drop == nil {
		drop = DefaultDrop
	}
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return nil, err
	}
	m := &Manifest{}
	for _, path := range debs {
		e, err := extractOne(path, dest, drop)
		if err != nil {
			return nil, err
		}
		m.Packages = append(m.Packages, e)
	}
	names := make([]string, 0, len(opts.Links))
	for n := range opts.Links {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p, err := inside(dest, n)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, err
		}
		_ = os.Remove(p)
		if err := os.Symlink(opts.Links[n], p); err != nil {
			return nil, fmt.Errorf("linking %s: %w", n, err)
		}
	}
	sort.Slice(m.Packages, func(i, j int) bool { return m.Packages[i].Package < m.Packages[j].Package })
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	mp := filepath.Join(dest, ManifestPath)
	if err := os.MkdirAll(filepath.Dir(mp), 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(mp, append(data, '\n'), 0o644); err != nil {
		return nil, err
	}
	return m, nil
}

func extractOne(debPath, dest string, drop []string) (ManifestEntry, error) {
	var e ManifestEntry
	sum, _, err := files.SHA256(debPath, -1)
	if err != nil {
		return e, err
	}
	d, err := deb.Open(debPath)
	if err != nil {
		return e, fmt.Errorf("opening %s: %w", debPath, err)
	}
	defer d.Close()
	e = ManifestEntry{Package: d.Control["Package"], Version: d.Control["Version"], Architecture: d.Control["Architecture"], SHA256: sum}
	err = d.Walk(func(h *tar.Header, r io.Reader) error {
		name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		if name == "" {
			return nil
		}
		if dropped(name, drop) {
			return nil
		}
		target, err := inside(dest, name)
		if err != nil {
			return err
		}
		if err := parentInside(dest, target); err != nil {
			return err
		}
		// h.Mode holds Unix's bits (04000 is setuid); os.FileMode has
		// its own for setuid, setgid and sticky, which FileInfo maps.
		mode := h.FileInfo().Mode() & (os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky)
		switch h.Typeflag {
		case tar.TypeDir:
			// Writable by its owner, the builder, to extract into it.
			if err := os.MkdirAll(target, mode.Perm()|0o700); err != nil {
				return err
			}
			return os.Chmod(target, mode|0o700)
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			_ = os.Remove(target)
			f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode.Perm())
			if err != nil {
				return err
			}
			if _, err := io.Copy(f, r); err != nil {
				f.Close()
				return err
			}
			e.Files++
			if err := f.Close(); err != nil {
				return err
			}
			return os.Chmod(target, mode)
		case tar.TypeSymlink:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			_ = os.Remove(target)
			e.Files++
			return os.Symlink(h.Linkname, target)
		case tar.TypeLink:
			src, err := inside(dest, strings.TrimPrefix(path.Clean("/"+h.Linkname), "/"))
			if err != nil {
				return err
			}
			_ = os.Remove(target)
			e.Files++
			return os.Link(src, target)
		default:
			return fmt.Errorf("%s: unsupported entry type %q", h.Name, h.Typeflag)
		}
	})
	if err != nil {
		return e, fmt.Errorf("extracting %s: %w", debPath, err)
	}
	return e, nil
}

// inside joins a tree-relative name to dest, refusing to leave dest.
func inside(dest, name string) (string, error) {
	clean := path.Clean("/" + name)
	if clean == "/" || strings.Contains(name, "\x00") {
		return "", errors.New("empty or invalid path " + fmt.Sprintf("%q", name))
	}
	return filepath.Join(dest, filepath.FromSlash(clean)), nil
}

// parentInside refuses a target whose existing parent directories lead out
// of dest through a symlink the tree already holds.
func parentInside(dest, target string) error {
	dir := filepath.Dir(target)
	for {
		if _, err := os.Lstat(dir); err == nil {
			break
		}
		dir = filepath.Dir(dir)
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return err
	}
	root, err := filepath.EvalSymlinks(dest)
	if err != nil {
		return err
	}
	if real != root && !strings.HasPrefix(real, root+string(filepath.Separator)) {
		return fmt.Errorf("%s: a symlink in the tree leads out of %s", target, dest)
	}
	return nil
}
