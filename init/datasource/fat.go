package datasource

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"unicode/utf16"

	"github.com/cairn-os/cairn/config"
)

// maxFile bounds what a seed may hand us: config documents are small, and a
// corrupt size field must not make PID 1 allocate gigabytes.
const maxFile = config.MaxDocumentSize

// fatFS reads files from a FAT12, FAT16 or FAT32 volume without mounting it,
// so a seed is readable even when the kernel lacks the vfat module.
type fatFS struct {
	r            io.ReaderAt
	bytesPerSec  int64
	secPerClus   int64
	fatStart     int64 // byte offset of the first FAT
	rootStart    int64 // byte offset of the FAT12/16 root directory
	rootEntries  int64
	dataStart    int64 // byte offset of cluster 2
	clusters     uint32
	bits         int // 12, 16 or 32
	rootCluster  uint32
	bpbLabel     string
	rootDirLabel string
}

type fatEntry struct {
	name    string
	short   string
	dir     bool
	cluster uint32
	size    int64
}

// openFAT parses the boot sector. It fails on anything that is not a
// plausible FAT boot sector, so it doubles as the probe.
func openFAT(r io.ReaderAt) (*fatFS, error) {
	b := make([]byte, 512)
	if _, err := r.ReadAt(b, 0); err != nil {
		return nil, fmt.Errorf("reading the boot sector: %w", err)
	}
	if b[510] != 0x55 || b[511] != 0xAA {
		return nil, errors.New("no boot sector signature")
	}
	le := binary.LittleEndian
	f := &fatFS{r: r}
	f.bytesPerSec = int64(le.Uint16(b[11:]))
	f.secPerClus = int64(b[13])
	reserved := int64(le.Uint16(b[14:]))
	numFATs := int64(b[16])
	f.rootEntries = int64(le.Uint16(b[17:]))
	totSec := int64(le.Uint16(b[19:]))
	if totSec == 0 {
		totSec = int64(le.Uint32(b[32:]))
	}
	fatSz := int64(le.Uint16(b[22:]))
	if fatSz == 0 {
		fatSz = int64(le.Uint32(b[36:]))
	}
	switch f.bytesPerSec {
	case 512, 1024, 2048, 4096:
	default:
		return nil, errors.New("not a FAT boot sector (bytes per sector)")
	}
	if f.secPerClus == 0 || f.secPerClus&(f.secPerClus-1) != 0 || reserved == 0 || numFATs == 0 || fatSz == 0 || totSec == 0 {
		return nil, errors.New("not a FAT boot sector (geometry)")
	}
	rootSecs := (f.rootEntries*32 + f.bytesPerSec - 1) / f.bytesPerSec
	firstData := reserved + numFATs*fatSz + rootSecs
	if firstData >= totSec {
		return nil, errors.New("not a FAT boot sector (size)")
	}
	count := (totSec - firstData) / f.secPerClus
	f.fatStart = reserved * f.bytesPerSec
	f.rootStart = (reserved + numFATs*fatSz) * f.bytesPerSec
	f.dataStart = firstData * f.bytesPerSec
	f.clusters = uint32(min(count, 0x0FFFFFF0))
	switch {
	case count < 4085:
		f.bits = 12
	case count < 65525:
		f.bits = 16
	default:
		f.bits = 32
	}
	labelAt, sigAt := 43, 38
	if f.bits == 32 {
		labelAt, sigAt = 71, 66
		f.rootCluster = le.Uint32(b[44:])
		if f.rootEntries != 0 {
			return nil, errors.New("not a FAT boot sector (FAT32 with a fixed root directory)")
		}
	} else if f.rootEntries == 0 {
		return nil, errors.New("not a FAT boot sector (no root directory)")
	}
	if b[sigAt] == 0x29 {
		f.bpbLabel = cleanLabel(string(b[labelAt : labelAt+11]))
	}
	// The volume label entry in the root directory is what Linux reports
	// and what fatlabel changes; the boot sector copy is the fallback.
	if _, err := f.readDir(0, true); err != nil {
		return nil, err
	}
	return f, nil
}

func cleanLabel(s string) string {
	s = strings.TrimRight(s, " \x00")
	if s == "NO NAME" {
		return ""
	}
	return s
}

// Label is the volume label: the root directory entry when present, else the
// boot sector's.
func (f *fatFS) Label() string {
	if f.rootDirLabel != "" {
		return f.rootDirLabel
	}
	return f.bpbLabel
}

// next returns the FAT entry of cluster c.
func (f *fatFS) next(c uint32) (uint32, error) {
	var b [4]byte
	switch f.bits {
	case 12:
		off := f.fatStart + int64(c) + int64(c)/2
		if _, err := f.r.ReadAt(b[:2], off); err != nil {
			return 0, err
		}
		v := uint32(binary.LittleEndian.Uint16(b[:2]))
		if c&1 == 1 {
			v >>= 4
		}
		v &= 0xFFF
		if v >= 0xFF7 {
			v = 0x0FFFFFFF
		}
		return v, nil
	case 16:
		if _, err := f.r.ReadAt(b[:2], f.fatStart+int64(c)*2); err != nil {
			return 0, err
		}
		v := uint32(binary.LittleEndian.Uint16(b[:2]))
		if v >= 0xFFF7 {
			v = 0x0FFFFFFF
		}
		return v, nil
	default:
		if _, err := f.r.ReadAt(b[:4], f.fatStart+int64(c)*4); err != nil {
			return 0, err
		}
		return binary.LittleEndian.Uint32(b[:4]) & 0x0FFFFFFF, nil
	}
}

// chain reads the cluster chain starting at c, up to limit bytes.
func (f *fatFS) chain(c uint32, limit int64) ([]byte, error) {
	clusterSize := f.bytesPerSec * f.secPerClus
	var out []byte
	for steps := uint32(0); c >= 2 && c < f.clusters+2 && int64(len(out)) < limit; steps++ {
		if steps > f.clusters {
			return nil, errors.New("cluster chain loops")
		}
		buf := make([]byte, clusterSize)
		if _, err := f.r.ReadAt(buf, f.dataStart+int64(c-2)*clusterSize); err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		out = append(out, buf...)
		n, err := f.next(c)
		if err != nil {
			return nil, err
		}
		c = n
	}
	if int64(len(out)) > limit {
		out = out[:limit]
	}
	return out, nil
}

// readDir lists the directory starting at cluster c (0: the root).
func (f *fatFS) readDir(c uint32, root bool) ([]fatEntry, error) {
	var raw []byte
	var err error
	switch {
	case root && f.bits != 32:
		raw = make([]byte, f.rootEntries*32)
		_, err = f.r.ReadAt(raw, f.rootStart)
	case root:
		raw, err = f.chain(f.rootCluster, maxFile)
	default:
		raw, err = f.chain(c, maxFile)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading a directory: %w", err)
	}
	var entries []fatEntry
	var lfn []uint16
	var lfnSum byte
	for i := 0; i+32 <= len(raw); i += 32 {
		e := raw[i : i+32]
		if e[0] == 0x00 {
			break
		}
		if e[0] == 0xE5 {
			lfn = nil
			continue
		}
		attr := e[11]
		if attr&0x3F == 0x0F { // a long-name slot
			seq := int(e[0] & 0x1F)
			if e[0]&0x40 != 0 {
				lfn = make([]uint16, 13*seq)
				lfnSum = e[13]
			}
			if seq == 0 || lfn == nil || 13*seq > len(lfn) || e[13] != lfnSum {
				lfn = nil
				continue
			}
			part := lfn[13*(seq-1):]
			for j, off := range []int{1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30} {
				part[j] = binary.LittleEndian.Uint16(e[off:])
			}
			continue
		}
		if attr&0x08 != 0 {
			if root && f.rootDirLabel == "" {
				f.rootDirLabel = cleanLabel(string(e[:11]))
			}
			lfn = nil
			continue
		}
		short := shortName(e)
		name := short
		if lfn != nil && lfnChecksum(e[:11]) == lfnSum {
			n := len(lfn)
			for j, u := range lfn {
				if u == 0 || u == 0xFFFF {
					n = j
					break
				}
			}
			name = string(utf16.Decode(lfn[:n]))
		}
		lfn = nil
		cl := uint32(binary.LittleEndian.Uint16(e[26:]))
		if f.bits == 32 {
			cl |= uint32(binary.LittleEndian.Uint16(e[20:])) << 16
		}
		entries = append(entries, fatEntry{
			name:    name,
			short:   short,
			dir:     attr&0x10 != 0,
			cluster: cl,
			size:    int64(binary.LittleEndian.Uint32(e[28:])),
		})
	}
	return entries, nil
}

func shortName(e []byte) string {
	base := []byte(strings.TrimRight(string(e[:8]), " "))
	ext := []byte(strings.TrimRight(string(e[8:11]), " "))
	if len(base) > 0 && base[0] == 0x05 {
		base[0] = 0xE5
	}
	bs, es := string(base), string(ext)
	if e[12]&0x08 != 0 {
		bs = strings.ToLower(bs)
	}
	if e[12]&0x10 != 0 {
		es = strings.ToLower(es)
	}
	if es == "" {
		return bs
	}
	return bs + "." + es
}

func lfnChecksum(name []byte) byte {
	var sum byte
	for _, c := range name {
		sum = (sum&1)<<7 + sum>>1 + c
	}
	return sum
}

// ReadFile returns the file at the slash-separated path, matching names
// case-insensitively as FAT does. A missing file is fs.ErrNotExist.
func (f *fatFS) ReadFile(path string) ([]byte, error) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	entries, err := f.readDir(0, true)
	if err != nil {
		return nil, err
	}
	for i, p := range parts {
		var found *fatEntry
		for j := range entries {
			if strings.EqualFold(entries[j].name, p) || strings.EqualFold(entries[j].short, p) {
				found = &entries[j]
				break
			}
		}
		if found == nil {
			return nil, fmt.Errorf("%s: %w", path, fs.ErrNotExist)
		}
		if i < len(parts)-1 {
			if !found.dir {
				return nil, fmt.Errorf("%s: %w", path, fs.ErrNotExist)
			}
			if entries, err = f.readDir(found.cluster, found.cluster == 0); err != nil {
				return nil, err
			}
			continue
		}
		if found.dir {
			return nil, fmt.Errorf("%s is a directory", path)
		}
		if found.size > maxFile {
			return nil, fmt.Errorf("%s is %d bytes, more than the %d a config file may have", path, found.size, maxFile)
		}
		if found.size == 0 {
			return []byte{}, nil
		}
		data, err := f.chain(found.cluster, found.size)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", path, err)
		}
		if int64(len(data)) < found.size {
			return nil, fmt.Errorf("reading %s: cluster chain ends early", path)
		}
		return data, nil
	}
	return nil, fmt.Errorf("%s: %w", path, fs.ErrNotExist)
}
