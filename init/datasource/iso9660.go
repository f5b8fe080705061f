package datasource

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"unicode/utf16"
)

// isoFS reads files from an ISO 9660 image (the seed cloud-localds makes)
// without mounting it. Names come from the Joliet tree when there is one,
// else from Rock Ridge NM entries, else from the plain ISO names.
type isoFS struct {
	r      io.ReaderAt
	block  int64
	label  string
	root   isoEntry
	joliet bool
}

type isoEntry struct {
	name   string
	dir    bool
	extent int64 // byte offset
	size   int64
}

const isoSector = 2048

// openISO reads the volume descriptors starting at sector 16.
func openISO(r io.ReaderAt) (*isoFS, error) {
	f := &isoFS{r: r}
	var pvd, joliet []byte
descriptors:
	for i := int64(16); i < 16+64; i++ {
		d := make([]byte, isoSector)
		if _, err := r.ReadAt(d, i*isoSector); err != nil {
			return nil, fmt.Errorf("reading volume descriptor %d: %w", i, err)
		}
		if string(d[1:6]) != "CD001" {
			return nil, errors.New("no ISO 9660 volume descriptor")
		}
		switch d[0] {
		case 1:
			if pvd == nil {
				pvd = d
			}
		case 2:
			esc := d[88:91]
			if esc[0] == '%' && esc[1] == '/' && (esc[2] == '@' || esc[2] == 'C' || esc[2] == 'E') {
				joliet = d
			}
		case 255:
			break descriptors
		}
	}
	if pvd == nil {
		return nil, errors.New("no ISO 9660 primary volume descriptor")
	}
	f.label = strings.TrimRight(string(pvd[40:72]), " \x00")
	f.block = int64(binary.LittleEndian.Uint16(pvd[128:]))
	if f.block != 512 && f.block != 1024 && f.block != 2048 {
		return nil, fmt.Errorf("ISO 9660 logical block size %d is not supported", f.block)
	}
	desc := pvd
	if joliet != nil {
		desc, f.joliet = joliet, true
	}
	root, _, ok := f.record(desc[156:190])
	if !ok || !root.dir {
		return nil, errors.New("ISO 9660 root directory record is damaged")
	}
	f.root = root
	return f, nil
}

// Label is the primary volume descriptor's volume identifier.
func (f *isoFS) Label() string { return f.label }

// record decodes one directory record; name is "" for "." and "..".
func (f *isoFS) record(b []byte) (isoEntry, int, bool) {
	if len(b) < 34 || int(b[0]) < 34 || int(b[0]) > len(b) {
		return isoEntry{}, 0, false
	}
	n := int(b[0])
	nameLen := int(b[32])
	if 33+nameLen > n {
		return isoEntry{}, 0, false
	}
	e := isoEntry{
		dir:    b[25]&0x02 != 0,
		extent: (int64(binary.LittleEndian.Uint32(b[2:])) + int64(b[1])) * f.block,
		size:   int64(binary.LittleEndian.Uint32(b[10:])),
	}
	raw := b[33 : 33+nameLen]
	if nameLen == 1 && (raw[0] == 0 || raw[0] == 1) {
		return e, n, true
	}
	if f.joliet {
		u := make([]uint16, 0, nameLen/2)
		for i := 0; i+1 < nameLen; i += 2 {
			u = append(u, binary.BigEndian.Uint16(raw[i:]))
		}
		e.name = trimVersion(string(utf16.Decode(u)))
		return e, n, true
	}
	su := 33 + nameLen
	if nameLen%2 == 0 {
		su++
	}
	if rr := rockRidgeName(b[min(su, n):n]); rr != "" {
		e.name = rr
	} else {
		e.name = strings.ToLower(trimVersion(string(raw)))
	}
	return e, n, true
}

func trimVersion(s string) string {
	if i := strings.IndexByte(s, ';'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSuffix(s, ".")
}

// rockRidgeName assembles the NM entries of a System Use area.
func rockRidgeName(su []byte) string {
	var name []byte
	for len(su) >= 4 {
		l := int(su[2])
		if l < 4 || l > len(su) {
			break
		}
		if bytes.Equal(su[:2], []byte("NM")) && l >= 5 && su[4]&0x06 == 0 {
			name = append(name, su[5:l]...)
		}
		if bytes.Equal(su[:2], []byte("ST")) {
			break
		}
		su = su[l:]
	}
	return string(name)
}

func (f *isoFS) readDir(d isoEntry) ([]isoEntry, error) {
	if d.size > maxFile {
		return nil, fmt.Errorf("a directory of %d bytes is implausible", d.size)
	}
	raw := make([]byte, d.size)
	if _, err := f.r.ReadAt(raw, d.extent); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading a directory: %w", err)
	}
	var out []isoEntry
	for off := 0; off < len(raw); {
		if raw[off] == 0 { // records never cross a sector: skip the padding
			off = (off/isoSector + 1) * isoSector
			continue
		}
		e, n, ok := f.record(raw[off:])
		if !ok {
			return nil, errors.New("a directory record is damaged")
		}
		off += n
		if e.name != "" {
			out = append(out, e)
		}
	}
	return out, nil
}

// ReadFile returns the file at the slash-separated path. Names match
// case-insensitively. A missing file is fs.ErrNotExist.
func (f *isoFS) ReadFile(path string) ([]byte, error) {
	cur := f.root
	parts := strings.Split(strings.Trim(path, "/"), "/")
	for i, p := range parts {
		entries, err := f.readDir(cur)
		if err != nil {
			return nil, err
		}
		found := false
		for _, e := range entries {
			if strings.EqualFold(e.name, p) {
				cur, found = e, true
				break
			}
		}
		if !found || (i < len(parts)-1 && !cur.dir) {
			return nil, fmt.Errorf("%s: %w", path, fs.ErrNotExist)
		}
	}
	if cur.dir {
		return nil, fmt.Errorf("%s is a directory", path)
	}
	if cur.size > maxFile {
		return nil, fmt.Errorf("%s is %d bytes, more than the %d a config file may have", path, cur.size, maxFile)
	}
	data := make([]byte, cur.size)
	if _, err := f.r.ReadAt(data, cur.extent); err != nil && !(errors.Is(err, io.EOF) && cur.size == 0) {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return data, nil
}
