package image

import (
	"archive/tar"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/cairn-os/cairn/config/files"
	"github.com/cairn-os/cairn/image/deb"
)

// newestDeb is the newest Debian package matching glob in dir, or in the
// directory of the file dir names (the kernel package), with the
// directory searched; "" when there is none. A board's boot loader and
// firmware come from packages beside its kernel's.
func newestDeb(dir, glob string) (path, searched string) {
	if st, err := os.Stat(dir); err == nil && !st.IsDir() {
		dir = filepath.Dir(dir)
	}
	found, _ := filepath.Glob(filepath.Join(dir, glob))
	if len(found) == 0 {
		return "", dir
	}
	sort.Slice(found, func(i, j int) bool { return naturalLess(found[i], found[j]) })
	return found[len(found)-1], dir
}

// readDeb reads the regular files names from the Debian package at path,
// at most limit bytes each, and the package's name and digest for the
// manifest. A file the package lacks is not in the map; what ("boot
// loader", "firmware") names the package in errors.
func readDeb(path, what string, names []string, limit int64) (map[string][]byte, *FileInput, error) {
	p, err := deb.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("%s package %s: %w", what, path, err)
	}
	defer p.Close()
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	data := map[string][]byte{}
	err = p.Walk(func(h *tar.Header, r io.Reader) error {
		name := strings.TrimPrefix(h.Name, "./")
		if !want[name] || h.Typeflag != tar.TypeReg {
			return nil
		}
		if h.Size > limit {
			return fmt.Errorf("%s package %s: %s is %d bytes, more than cairn reads of a %s file (%d)", what, path, name, h.Size, what, limit)
		}
		b, err := io.ReadAll(io.LimitReader(r, limit))
		if err != nil {
			return err
		}
		data[name] = b
		if len(data) == len(want) {
			return deb.ErrStop
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	sum, _, err := files.SHA256(path, -1)
	if err != nil {
		return nil, nil, err
	}
	return data, &FileInput{Name: filepath.Base(path), SHA256: sum}, nil
}
