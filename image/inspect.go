package image

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/squashfs"
	"github.com/klauspost/compress/zstd"

	"github.com/cavaliergopher/cpio"
)

// Entry is one file of an inspected artifact.
type Entry struct {
	// Path is absolute; a file inside a nested image is named
	// "/system.sqfs:/sbin/init".
	Path         string
	Mode         fs.FileMode
	Size         int64
	Link         string // symlink target
	Major, Minor uint32 // device numbers
	UID, GID     uint32
}

// Contents is what Inspect found in an artifact.
type Contents struct {
	// Kind is "initramfs", "squashfs" or "disk (GPT GUID, SIZE)".
	Kind string
	// Parts describes the pieces: an initramfs's concatenated archives
	// ("zstd cpio, 3.1 MiB at offset 0"), a squashfs's compressor, a
	// disk's partitions ("2 cairn-a: squashfs, 256.0 MiB at 97.0 MiB").
	Parts   []string
	Entries []Entry
}

// Inspect lists what an initramfs (concatenated newc archives, each
// uncompressed, gzip or zstd), a squashfs or a GPT disk image (partitions
// and their files) holds; a squashfs inside an uncompressed initramfs
// archive is listed too.
func Inspect(name string) (*Contents, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", name, unwrapPath(err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	magic := make([]byte, 6)
	if _, err := f.ReadAt(magic, 0); err != nil {
		return nil, fmt.Errorf("inspect %s: too short to be an image", name)
	}
	switch {
	case string(magic[:4]) == "hsqs":
		c := &Contents{Kind: "squashfs"}
		ents, err := listSquashfs(f, 0, st.Size(), "")
		if err != nil {
			return nil, fmt.Errorf("inspect %s: %w", name, err)
		}
		c.Entries = ents
		c.Parts = []string{fmt.Sprintf("squashfs, %s", HumanSize(st.Size()))}
		return c, nil
	case isGPT(f):
		c, err := inspectDisk(f, st.Size())
		if err != nil {
			return nil, fmt.Errorf("inspect %s: %w", name, err)
		}
		return c, nil
	case string(magic) == "070701" || string(magic) == "070702" || isZstd(magic) || isGzip(magic):
		c, err := inspectInitramfs(f, st.Size())
		if err != nil {
			return nil, fmt.Errorf("inspect %s: %w", name, err)
		}
		return c, nil
	}
	return nil, fmt.Errorf("inspect %s: not an initramfs (cpio, gzip or zstd), a squashfs or a GPT disk image (disk.img, cairn.iso; decompress .zst/.xz and convert .qcow2 first)", name)
}

func isZstd(b []byte) bool { return len(b) >= 4 && binary.LittleEndian.Uint32(b) == 0xFD2FB528 }
func isGzip(b []byte) bool { return len(b) >= 2 && b[0] == 0x1f && b[1] == 0x8b }

func inspectInitramfs(f *os.File, size int64) (*Contents, error) {
	c := &Contents{Kind: "initramfs"}
	off := int64(0)
	head := make([]byte, 6)
	for off < size {
		n, _ := f.ReadAt(head, off)
		b := head[:n]
		switch {
		case n > 0 && b[0] == 0:
			off += zeros(f, off, size)
			continue
		case string(b) == "070701" || string(b) == "070702":
			used, err := readCPIO(f, io.NewSectionReader(f, off, size-off), off, "", c)
			if err != nil {
				return nil, fmt.Errorf("cpio at offset %d: %w", off, err)
			}
			c.Parts = append(c.Parts, fmt.Sprintf("cpio, %s at offset %d", HumanSize(used), off))
			off += used
		case isZstd(b):
			n, err := zstdFrameLen(io.NewSectionReader(f, off, size-off))
			if err != nil {
				return nil, fmt.Errorf("zstd at offset %d: %w", off, err)
			}
			z, err := zstd.NewReader(io.NewSectionReader(f, off, n), zstd.WithDecoderConcurrency(1),
				zstd.WithDecoderMaxMemory(1<<32), zstd.WithDecoderMaxWindow(1<<27))
			if err != nil {
				return nil, err
			}
			_, err = readCPIO(nil, z, 0, "", c)
			z.Close()
			if err != nil {
				return nil, fmt.Errorf("zstd cpio at offset %d: %w", off, err)
			}
			c.Parts = append(c.Parts, fmt.Sprintf("zstd cpio, %s at offset %d", HumanSize(n), off))
			off += n
		case isGzip(b):
			cr := &countingReader{r: bufio.NewReader(io.NewSectionReader(f, off, size-off))}
			z, err := gzip.NewReader(cr)
			if err != nil {
				return nil, fmt.Errorf("gzip at offset %d: %w", off, err)
			}
			z.Multistream(false)
			if _, err := readCPIO(nil, z, 0, "", c); err != nil {
				return nil, fmt.Errorf("gzip cpio at offset %d: %w", off, err)
			}
			if _, err := io.Copy(io.Discard, z); err != nil {
				return nil, fmt.Errorf("gzip at offset %d: %w", off, err)
			}
			c.Parts = append(c.Parts, fmt.Sprintf("gzip cpio, %s at offset %d", HumanSize(cr.n), off))
			off += cr.n
		default:
			return nil, fmt.Errorf("unknown data at offset %d (%x)", off, b)
		}
	}
	return c, nil
}

// zeros returns how many zero bytes (padding between archives) start at off.
func zeros(f *os.File, off, size int64) int64 {
	buf := make([]byte, 64<<10)
	var n int64
	for off+n < size {
		m, _ := f.ReadAt(buf, off+n)
		if m == 0 {
			break
		}
		for i := 0; i < m; i++ {
			if buf[i] != 0 {
				return n + int64(i)
			}
		}
		n += int64(m)
	}
	return n
}

// readCPIO appends r's entries to c and returns the bytes consumed. When
// the archive is uncompressed in f at base, a squashfs in it is listed too.
func readCPIO(f *os.File, r io.Reader, base int64, prefix string, c *Contents) (int64, error) {
	// cpio's reader takes exactly each header and body from r, so counting
	// what it consumed gives the body's offset in the archive.
	counted := &byteCounter{r: r}
	cr := cpio.NewReader(counted)
	for {
		h, err := cr.Next()
		if err == io.EOF {
			return counted.n, nil
		}
		if err != nil {
			return 0, err
		}
		p := prefix + "/" + strings.TrimPrefix(h.Name, "/")
		e := Entry{Path: p, Mode: h.FileInfo().Mode(), Size: h.Size, UID: uint32(h.Uid), GID: uint32(h.Guid)}
		if h.Mode&cpio.ModeType == cpio.TypeSymlink {
			target, err := io.ReadAll(io.LimitReader(cr, 4096))
			if err != nil {
				return 0, fmt.Errorf("%s: %w", p, err)
			}
			e.Link = string(target)
		}
		c.Entries = append(c.Entries, e)
		if !h.Mode.IsRegular() || !strings.HasSuffix(h.Name, ".sqfs") {
			continue
		}
		if f != nil {
			ents, err := listSquashfs(f, base+counted.n, h.Size, p+":")
			if err != nil {
				return 0, fmt.Errorf("%s: %w", p, err)
			}
			c.Entries = append(c.Entries, ents...)
			continue
		}
		// A squashfs inside a compressed archive: list it from a copy.
		tmp, err := os.CreateTemp("", "cairn-inspect-*.sqfs")
		if err != nil {
			return 0, err
		}
		_, err = io.Copy(tmp, cr)
		if err == nil {
			var ents []Entry
			ents, err = listSquashfs(tmp, 0, h.Size, p+":")
			c.Entries = append(c.Entries, ents...)
		}
		tmp.Close()
		os.Remove(tmp.Name())
		if err != nil {
			return 0, fmt.Errorf("%s: %w", p, err)
		}
	}
}

// listSquashfs lists the squashfs of the given size at offset start in f.
func listSquashfs(f *os.File, start, size int64, prefix string) ([]Entry, error) {
	sq, err := squashfs.Read(file.New(f, true), size, start, 0)
	if err != nil {
		return nil, fmt.Errorf("reading squashfs: %w", err)
	}
	var out []Entry
	var walk func(dir string) error
	walk = func(dir string) error {
		ents, err := sq.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("%s: %w", dir, err)
		}
		for _, e := range ents {
			info, err := e.Info()
			if err != nil {
				return err
			}
			p := path.Join(dir, e.Name())
			en := Entry{Path: prefix + "/" + p, Mode: info.Mode(), Size: info.Size()}
			if st, ok := info.Sys().(*squashfs.StatT); ok {
				en.UID, en.GID, en.Link = st.UID, st.GID, st.LinkTarget
			}
			if info.IsDir() {
				en.Size = 0
			}
			out = append(out, en)
			if info.IsDir() {
				if err := walk(p); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk("."); err != nil {
		return nil, err
	}
	return out, nil
}

// zstdFrameLen returns the length of the zstd frame at the start of r (and
// of any skippable frames before it), walking its block headers.
func zstdFrameLen(r io.Reader) (int64, error) {
	br := &countingReader{r: bufio.NewReader(r)}
	read := func(n int) ([]byte, error) {
		b := make([]byte, n)
		_, err := io.ReadFull(br, b)
		return b, err
	}
	for {
		m, err := read(4)
		if err != nil {
			return 0, err
		}
		magic := binary.LittleEndian.Uint32(m)
		if magic&0xFFFFFFF0 == 0x184D2A50 { // skippable frame
			s, err := read(4)
			if err != nil {
				return 0, err
			}
			if _, err := io.CopyN(io.Discard, br, int64(binary.LittleEndian.Uint32(s))); err != nil {
				return 0, err
			}
			continue
		}
		if magic != 0xFD2FB528 {
			return 0, errors.New("not a zstd frame")
		}
		break
	}
	fhd, err := read(1)
	if err != nil {
		return 0, err
	}
	d := fhd[0]
	single := d&0x20 != 0
	n := 0
	if !single {
		n++ // window descriptor
	}
	n += []int{0, 1, 2, 4}[d&3]
	switch d >> 6 {
	case 0:
		if single {
			n++
		}
	case 1:
		n += 2
	case 2:
		n += 4
	case 3:
		n += 8
	}
	if _, err := read(n); err != nil {
		return 0, err
	}
	for {
		bh, err := read(3)
		if err != nil {
			return 0, err
		}
		v := uint32(bh[0]) | uint32(bh[1])<<8 | uint32(bh[2])<<16
		last, typ, bsize := v&1 == 1, (v>>1)&3, int64(v>>3)
		switch typ {
		case 1: // RLE: one byte repeated
			bsize = 1
		case 3:
			return 0, errors.New("reserved zstd block type")
		}
		if _, err := io.CopyN(io.Discard, br, bsize); err != nil {
			return 0, err
		}
		if last {
			break
		}
	}
	if d&0x04 != 0 { // content checksum
		if _, err := read(4); err != nil {
			return 0, err
		}
	}
	return br.n, nil
}

// byteCounter counts the bytes read through it.
type byteCounter struct {
	r io.Reader
	n int64
}

func (c *byteCounter) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

// countingReader counts the bytes read through it; it is an io.ByteReader
// so decompressors read no further than they need.
type countingReader struct {
	r *bufio.Reader
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

func (c *countingReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.n++
	}
	return b, err
}

// HumanSize writes a byte count the way people read it: "66.6 MiB".
func HumanSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// Format writes a listing like ls -l, one entry a line.
func (c *Contents) Format(w io.Writer) error {
	var b bytes.Buffer
	for _, e := range c.Entries {
		size := fmt.Sprint(e.Size)
		if e.Mode&fs.ModeDevice != 0 {
			size = fmt.Sprintf("%d, %d", e.Major, e.Minor)
		}
		name := e.Path
		if e.Link != "" {
			name += " -> " + e.Link
		}
		fmt.Fprintf(&b, "%s %d/%d %10s %s\n", e.Mode, e.UID, e.GID, size, name)
	}
	_, err := w.Write(b.Bytes())
	return err
}
