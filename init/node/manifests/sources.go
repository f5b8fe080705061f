package manifests

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/config/files"
)

// Bounds of the directory: the files read, and their bytes in all.
var (
	maxFiles       = 256
	maxAll   int64 = 8 << 20
)

// sources are the manifests of one round.
type sources struct {
	// list are the manifests to apply, by name.
	list []manifest
	// held are the names of manifests that are there but could not be
	// read: their objects stay as they are.
	held map[string]bool
	// partial says the directory could not be listed: no manifest
	// counts as removed.
	partial bool
}

// holds says whether the round's manifests include name, read or not.
func (s sources) holds(name string) bool {
	return s.held[name] || slices.ContainsFunc(s.list, func(m manifest) bool { return m.name == name })
}

// gather reads the inline manifests and the directory's files, telling
// once each what it skips and why.
func (a *applier) gather() sources {
	s := sources{held: map[string]bool{}}
	seen := map[string]string{} // name → where
	for _, m := range a.o.Inline {
		where := "manifests[" + m.Name + "]"
		seen[m.Name] = where
		if a.disabled(m.Name) {
			a.say("disabled "+where, "", "manifests: %s is not applied: kubernetes.disable names it", where)
			continue
		}
		s.list = append(s.list, newManifest(m.Name, where, []byte(m.Content)))
	}
	entries, err := os.ReadDir(a.o.Dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		a.quiet("list")
	case err != nil:
		s.partial = true
		a.say("list", err.Error(), "manifests: cannot list %s: %v; its manifests are left as they are", a.o.Dir, err)
	default:
		a.quiet("list")
	}
	var total int64
	n := 0
	for _, e := range entries {
		name, ok := config.ManifestFile(e.Name())
		if !ok {
			continue
		}
		path := filepath.Join(a.o.Dir, e.Name())
		if msg := config.CheckManifestName(name); msg != "" {
			a.say("read "+path, "name", "manifests: %s is skipped: its name %q %s; rename the file", path, name, msg)
			continue
		}
		if other, dup := seen[name]; dup {
			a.say("read "+path, "same name", "manifests: %s is skipped: %s has the same name; rename one", path, other)
			continue
		}
		seen[name] = path
		if a.disabled(name) {
			a.say("disabled "+path, "", "manifests: %s is not applied: kubernetes.disable names %s", path, name)
			continue
		}
		var data []byte
		if n++; n > maxFiles {
			err = fmt.Errorf("%s has more than %d manifests; this one is left out", a.o.Dir, maxFiles)
		} else if data, err = a.readFile(path); err == nil && total+int64(len(data)) > maxAll {
			err = fmt.Errorf("the manifests of %s are more than %d MiB in all; this one is left out", a.o.Dir, maxAll>>20)
		}
		if err != nil {
			s.held[name] = true
			a.say("read "+path, err.Error(), "manifests: cannot read %s: %v; its objects are left as they are", path, err)
			continue
		}
		a.quiet("read " + path)
		total += int64(len(data))
		s.list = append(s.list, newManifest(name, path, data))
	}
	slices.SortFunc(s.list, func(x, y manifest) int { return strings.Compare(x.name, y.name) })
	return s
}

// readFile reads a manifest file, a regular one (a FIFO would block)
// of at most config.MaxManifestSize bytes.
func (a *applier) readFile(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	return files.Read(path, config.MaxManifestSize)
}
