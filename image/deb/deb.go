// Package deb reads Debian binary packages (.deb): their control fields and
// the files of their data archive, through pault.ag/go/debian's ar reader,
// decompressors (xz, zstd, gzip, bzip2, lzma or none) and control parser.
//
//	p, err := deb.Open("linux-image-6.1.0-56-amd64_6.1.192-2_amd64.deb")
//	defer p.Close()
//	fmt.Println(p.Control["Package"], p.Control["Version"])
//	err = p.Walk(func(h *tar.Header, r io.Reader) error { ... })
package deb

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	deb822 "pault.ag/go/debian/control"
	debian "pault.ag/go/debian/deb"
)

// Package is an opened .deb.
type Package struct {
	// Control holds the fields of the control file (Package, Version,
	// Architecture, Depends, ...). A field's continuation lines follow its
	// first line, each ending in "\n".
	Control map[string]string

	name   string
	data   *debian.ArEntry
	closer io.Closer
}

// Open opens the .deb at path and reads its control file.
func Open(path string) (*Package, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	p, err := NewReader(f, st.Size(), path)
	if err != nil {
		f.Close()
		return nil, err
	}
	p.closer = f
	return p, nil
}

// NewReader reads a .deb of the given size from r; name is used in errors.
func NewReader(r io.ReaderAt, size int64, name string) (*Package, error) {
	members, err := readAr(r, size)
	if err != nil {
		return nil, fmt.Errorf("%s: not a Debian package: %w", name, err)
	}
	if len(members) == 0 || members[0].Name != "debian-binary" {
		return nil, fmt.Errorf("%s: not a Debian package: first member is not debian-binary", name)
	}
	p := &Package{name: name}
	var ctl *debian.ArEntry
	for _, m := range members {
		switch {
		case strings.HasPrefix(m.Name, "control.tar"):
			ctl = m
		case strings.HasPrefix(m.Name, "data.tar"):
			p.data = m
		}
	}
	if ctl == nil || p.data == nil {
		return nil, fmt.Errorf("%s: not a Debian package: control.tar or data.tar missing", name)
	}
	err = walkTar(ctl, func(h *tar.Header, body io.Reader) error {
		if path.Clean(h.Name) != "control" {
			return nil
		}
		pr, err := deb822.NewParagraphReader(body, nil)
		if err != nil {
			return err
		}
		para, err := pr.Next()
		if err != nil {
			return fmt.Errorf("control: %w", err)
		}
		p.Control = para.Values
		return ErrStop
	})
	if err != nil {
		return nil, fmt.Errorf("%s: reading %s: %w", name, ctl.Name, err)
	}
	if p.Control == nil {
		return nil, fmt.Errorf("%s: %s has no control file", name, ctl.Name)
	}
	return p, nil
}

// Close releases the file opened by Open.
func (p *Package) Close() error {
	if p.closer != nil {
		return p.closer.Close()
	}
	return nil
}

// Walk calls fn for every entry of the data archive, in archive order. Names
// are as stored, usually "./usr/bin/x". fn may read r until the entry ends;
// returning an error stops the walk and Walk returns it, except for
// ErrStop, which stops the walk and makes Walk return nil.
func (p *Package) Walk(fn func(h *tar.Header, r io.Reader) error) error {
	if err := walkTar(p.data, fn); err != nil {
		return fmt.Errorf("%s: reading %s: %w", p.name, p.data.Name, err)
	}
	return nil
}

// ErrStop, returned by a Walk callback, ends the walk without an error.
var ErrStop = errors.New("stop walking")

// walkTar reads the tar archive member m from its start, so that a package
// can be walked more than once.
func walkTar(m *debian.ArEntry, fn func(h *tar.Header, r io.Reader) error) error {
	raw := bufio.NewReaderSize(io.NewSectionReader(m.Data.Outer()), 1<<20)
	in, err := debian.DecompressorFor(filepath.Ext(m.Name))(raw)
	if err != nil {
		return err
	}
	defer in.Close()
	tr := tar.NewReader(in)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(h, tr); err != nil {
			if err == ErrStop {
				return nil
			}
			return err
		}
	}
}

// readAr lists the members of the ar archive. The library's deb.Load reads
// members until the end without checking their sizes, and never reaches
// the end when a size is negative; here a member must fit in the file.
func readAr(r io.ReaderAt, size int64) ([]*debian.ArEntry, error) {
	ar, err := debian.LoadAr(r)
	if err != nil {
		return nil, err
	}
	var members []*debian.ArEntry
	for {
		m, err := ar.Next()
		if err == io.EOF {
			return members, nil
		}
		if err != nil {
			return nil, fmt.Errorf("ar member %d: %w", len(members)+1, err)
		}
		if _, off, n := m.Data.Outer(); n < 0 || off+n > size {
			return nil, fmt.Errorf("ar member %q: bad size", m.Name)
		}
		members = append(members, m)
	}
}
