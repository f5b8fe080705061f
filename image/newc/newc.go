// Package newc writes and reads cpio archives in the "newc" (SVR4, no CRC)
// format the Linux kernel unpacks as an initramfs, including device nodes
// such as /dev/console, which the kernel needs before init runs.
package newc

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
)

// Kinds of entries, the file-type bits of a cpio mode.
const (
	TypeDir     = 0o040000
	TypeFile    = 0o100000
	TypeSymlink = 0o120000
	TypeChar    = 0o020000
	TypeBlock   = 0o060000
	typeMask    = 0o170000
)

// Header is one archive entry. Owners are always written as 0:0.
type Header struct {
	Name string // without a leading "/"
	// Mode is the file type (TypeDir, ...) ORed with the permission bits.
	Mode  uint32
	MTime int64
	Size  int64 // file size or symlink target length; set by Writer
	// Major and Minor are the device numbers of a device node.
	Major, Minor uint32
	// Linkname is a symlink's target.
	Linkname string
	UID, GID uint32
}

// Type returns the file-type bits of the mode.
func (h *Header) Type() uint32 { return h.Mode & typeMask }

// FileMode converts the mode to an fs.FileMode.
func (h *Header) FileMode() fs.FileMode {
	m := fs.FileMode(h.Mode & 0o777)
	if h.Mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	switch h.Type() {
	case TypeDir:
		m |= fs.ModeDir
	case TypeSymlink:
		m |= fs.ModeSymlink
	case TypeChar:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case TypeBlock:
		m |= fs.ModeDevice
	}
	return m
}

// Writer writes a newc archive. Inode numbers are assigned in order from 1.
type Writer struct {
	w   io.Writer
	n   int64 // bytes written
	ino uint32
	rem int64 // bytes of the current file still to write
	err error
}

// NewWriter returns a writer on w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

const magic = "070701"

// maxPath bounds names and symlink targets read (the kernel's PATH_MAX).
const maxPath = 4096

func (w *Writer) write(b []byte) {
	if w.err != nil {
		return
	}
	n, err := w.w.Write(b)
	w.n += int64(n)
	w.err = err
}

func (w *Writer) pad() {
	if r := w.n % 4; r != 0 {
		w.write(make([]byte, 4-r))
	}
}

// WriteHeader starts an entry. For a file, Size bytes must follow via Write;
// for a symlink the target is written from Linkname.
func (w *Writer) WriteHeader(h *Header) error {
	if w.rem != 0 {
		return fmt.Errorf("cpio: %d bytes of the previous entry missing", w.rem)
	}
	size := h.Size
	switch h.Type() {
	case TypeSymlink:
		size = int64(len(h.Linkname))
	case TypeFile:
	default:
		size = 0
	}
	if size > 0xffffffff {
		return fmt.Errorf("cpio: %s is larger than 4 GiB", h.Name)
	}
	w.ino++
	nlink := uint32(1)
	if h.Type() == TypeDir {
		nlink = 2
	}
	hdr := fmt.Sprintf("%s%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		magic, w.ino, h.Mode, h.UID, h.GID, nlink, uint32(h.MTime), uint32(size),
		0, 0, h.Major, h.Minor, len(h.Name)+1, 0)
	w.write([]byte(hdr))
	w.write(append([]byte(h.Name), 0))
	w.pad()
	if h.Type() == TypeSymlink {
		w.write([]byte(h.Linkname))
		w.pad()
		return w.err
	}
	w.rem = size
	if size == 0 {
		w.pad()
	}
	return w.err
}

// Write writes the current file's data.
func (w *Writer) Write(b []byte) (int, error) {
	if int64(len(b)) > w.rem {
		return 0, errors.New("cpio: write beyond the entry's size")
	}
	before := w.n
	w.write(b)
	n := int(w.n - before)
	w.rem -= int64(n)
	if w.rem == 0 {
		w.pad()
	}
	return n, w.err
}

// Close writes the trailer. It does not close the underlying writer.
func (w *Writer) Close() error {
	if w.rem != 0 {
		return fmt.Errorf("cpio: %d bytes of the last entry missing", w.rem)
	}
	w.ino = 0
	w.WriteHeader(&Header{Name: "TRAILER!!!", Mode: 0})
	return w.err
}

// Reader reads a newc archive.
type Reader struct {
	r   *bufio.Reader
	n   int64
	rem int64 // unread data of the current entry, padding included
}

// NewReader returns a reader on r.
func NewReader(r io.Reader) *Reader { return &Reader{r: bufio.NewReader(r)} }

func (r *Reader) skip(n int64) error {
	m, err := io.CopyN(io.Discard, r.r, n)
	r.n += m
	return err
}

func (r *Reader) align() error {
	if x := r.n % 4; x != 0 {
		return r.skip(4 - x)
	}
	return nil
}

// Next returns the next entry's header, io.EOF after the trailer. A file's
// data can be read with Read until the next call of Next.
func (r *Reader) Next() (*Header, error) {
	if err := r.skip(r.rem); err != nil {
		return nil, err
	}
	r.rem = 0
	if err := r.align(); err != nil {
		return nil, err
	}
	raw := make([]byte, 110)
	if _, err := io.ReadFull(r.r, raw); err != nil {
		if err == io.EOF {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	r.n += 110
	if string(raw[:6]) != magic && string(raw[:6]) != "070702" {
		return nil, fmt.Errorf("cpio: bad magic %q at offset %d", raw[:6], r.n-110)
	}
	var f [13]uint32
	for i := range f {
		v, err := strconv.ParseUint(string(raw[6+8*i:14+8*i]), 16, 32)
		if err != nil {
			return nil, fmt.Errorf("cpio: bad header field at offset %d", r.n-110)
		}
		f[i] = uint32(v)
	}
	if f[11] > maxPath {
		return nil, fmt.Errorf("cpio: name of %d bytes at offset %d", f[11], r.n-110)
	}
	name := make([]byte, f[11])
	if _, err := io.ReadFull(r.r, name); err != nil {
		return nil, err
	}
	r.n += int64(len(name))
	if len(name) > 0 && name[len(name)-1] == 0 {
		name = name[:len(name)-1]
	}
	if err := r.align(); err != nil {
		return nil, err
	}
	h := &Header{Name: string(name), Mode: f[1], UID: f[2], GID: f[3], MTime: int64(f[5]),
		Size: int64(f[6]), Major: f[9], Minor: f[10]}
	if h.Name == "TRAILER!!!" {
		return nil, io.EOF
	}
	if h.Type() == TypeSymlink {
		if h.Size > maxPath {
			return nil, fmt.Errorf("cpio: %s: symlink target of %d bytes", h.Name, h.Size)
		}
		t := make([]byte, h.Size)
		if _, err := io.ReadFull(r.r, t); err != nil {
			return nil, err
		}
		r.n += h.Size
		h.Linkname = string(t)
		return h, nil
	}
	r.rem = h.Size
	return h, nil
}

// Read reads the current entry's data.
func (r *Reader) Read(b []byte) (int, error) {
	if r.rem == 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > r.rem {
		b = b[:r.rem]
	}
	n, err := r.r.Read(b)
	r.n += int64(n)
	r.rem -= int64(n)
	return n, err
}

// Offset is the number of bytes consumed so far.
func (r *Reader) Offset() int64 { return r.n }
