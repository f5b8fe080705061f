// Package deb reads Debian binary packages (.deb): their control fields and
// the files of their data archive. It is pure Go and reads data.tar
// compressed with xz, zstd, gzip or nothing.
//
// A .deb is an ar archive holding debian-binary, control.tar[.xz|.zst|.gz]
// and data.tar[.xz|.zst|.gz], in that order.
//
//	p, err := deb.Open("linux-image-6.1.0-56-amd64_6.1.192-2_amd64.deb")
//	defer p.Close()
//	fmt.Println(p.Control["Package"], p.Control["Version"])
//	err = p.Walk(func(h *tar.Header, r io.Reader) error { ... })
package deb

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Package is an opened .deb.
type Package struct {
	// Control holds the fields of the control file (Package, Version,
	// Architecture, Depends, ...). Continuation lines are joined with "\n".
	Control map[string]string

	r       io.ReaderAt
	closer  io.Closer
	name    string
	data    member
	hasData bool
}

type member struct {
	name   string
	offset int64
	size   int64
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
	p := &Package{r: r, name: name}
	members, err := readAr(r, size)
	if err != nil {
		return nil, fmt.Errorf("%s: not a Debian package: %w", name, err)
	}
	if len(members) == 0 || members[0].name != "debian-binary" {
		return nil, fmt.Errorf("%s: not a Debian package: first member is not debian-binary", name)
	}
	var control *member
	for i := range members {
		m := &members[i]
		switch {
		case strings.HasPrefix(m.name, "control.tar"):
			control = m
		case strings.HasPrefix(m.name, "data.tar"):
			p.data, p.hasData = *m, true
		}
	}
	if control == nil || !p.hasData {
		return nil, fmt.Errorf("%s: not a Debian package: control.tar or data.tar missing", name)
	}
	err = walkTar(r, *control, func(h *tar.Header, body io.Reader) error {
		if h.Name != "./control" && h.Name != "control" {
			return nil
		}
		b, err := io.ReadAll(body)
		if err != nil {
			return err
		}
		p.Control = ParseControl(b)
		return ErrStop
	})
	if err != nil {
		return nil, fmt.Errorf("%s: reading %s: %w", name, control.name, err)
	}
	if p.Control == nil {
		return nil, fmt.Errorf("%s: %s has no control file", name, control.name)
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
	if err := walkTar(p.r, p.data, fn); err != nil {
		return fmt.Errorf("%s: reading %s: %w", p.name, p.data.name, err)
	}
	return nil
}

// ErrStop, returned by a Walk callback, ends the walk without an error.
var ErrStop = errors.New("stop walking")

func walkTar(r io.ReaderAt, m member, fn func(h *tar.Header, r io.Reader) error) error {
	raw := bufio.NewReaderSize(io.NewSectionReader(r, m.offset, m.size), 1<<20)
	var in io.Reader
	switch {
	case strings.HasSuffix(m.name, ".tar"):
		in = raw
	case strings.HasSuffix(m.name, ".tar.gz"):
		z, err := gzip.NewReader(raw)
		if err != nil {
			return err
		}
		in = z
	case strings.HasSuffix(m.name, ".tar.xz"):
		z, err := xz.NewReader(raw)
		if err != nil {
			return err
		}
		in = z
	case strings.HasSuffix(m.name, ".tar.zst"):
		z, err := zstd.NewReader(raw, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return err
		}
		defer z.Close()
		in = z
	default:
		return fmt.Errorf("unsupported compression of %s", m.name)
	}
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

// readAr lists the members of a common-format ar archive.
func readAr(r io.ReaderAt, size int64) ([]member, error) {
	magic := make([]byte, 8)
	if _, err := r.ReadAt(magic, 0); err != nil {
		return nil, err
	}
	if string(magic) != "!<arch>\n" {
		return nil, errors.New("no ar magic")
	}
	var members []member
	off := int64(8)
	hdr := make([]byte, 60)
	for off < size {
		if _, err := r.ReadAt(hdr, off); err != nil {
			return nil, fmt.Errorf("ar header at %d: %w", off, err)
		}
		if string(hdr[58:60]) != "`\n" {
			return nil, fmt.Errorf("ar header at %d: bad terminator", off)
		}
		name := strings.TrimRight(string(hdr[0:16]), " ")
		name = strings.TrimSuffix(name, "/") // GNU ar style
		n, err := strconv.ParseInt(strings.TrimSpace(string(hdr[48:58])), 10, 64)
		if err != nil || n < 0 || off+60+n > size {
			return nil, fmt.Errorf("ar member %q: bad size", name)
		}
		members = append(members, member{name: name, offset: off + 60, size: n})
		off += 60 + n
		if off%2 == 1 {
			off++
		}
	}
	return members, nil
}

// ParseControl parses a deb822 control paragraph into its fields.
func ParseControl(b []byte) map[string]string {
	fields := map[string]string{}
	var last string
	for _, line := range bytes.Split(b, []byte("\n")) {
		s := string(line)
		if s == "" {
			if len(fields) > 0 {
				break
			}
			continue
		}
		if (s[0] == ' ' || s[0] == '\t') && last != "" {
			fields[last] += "\n" + strings.TrimSpace(s)
			continue
		}
		k, v, ok := strings.Cut(s, ":")
		if !ok {
			continue
		}
		last = strings.TrimSpace(k)
		fields[last] = strings.TrimSpace(v)
	}
	return fields
}
