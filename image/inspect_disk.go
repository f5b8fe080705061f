package image

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/partition/gpt"
)

// isGPT reports whether f holds a GPT disk (disk.img, cairn.iso).
func isGPT(f *os.File) bool {
	sig := make([]byte, 8)
	_, err := f.ReadAt(sig, sector)
	return err == nil && string(sig) == "EFI PART"
}

// inspectDisk lists a GPT disk image: one part per partition (name, file
// system, size, offset) and the files of each file system it can read,
// named "/cairn-a:/sbin/init".
func inspectDisk(f *os.File, size int64) (*Contents, error) {
	d, err := diskfs.OpenBackend(file.New(f, true), diskfs.WithSectorSize(sector))
	if err != nil {
		return nil, err
	}
	table, ok := d.Table.(*gpt.Table)
	if !ok {
		return nil, fmt.Errorf("no GPT partition table")
	}
	kind := "GPT " + strings.ToLower(table.GUID)
	if mbr := hybridMBRParts(f); mbr != "" {
		kind += " with a hybrid MBR [" + mbr + "]"
	}
	c := &Contents{Kind: fmt.Sprintf("disk (%s, %s)", kind, HumanSize(size))}
	for _, p := range table.Partitions {
		if p.Type == gpt.Unused {
			continue
		}
		start, length := int64(p.Start)*sector, int64(p.End-p.Start+1)*sector
		name := p.Name
		if name == "" {
			name = fmt.Sprintf("partition%d", p.Index)
		}
		kind, ents, err := inspectPartition(d, f, p.Index, start, length, "/"+name+":")
		if err != nil {
			kind += " (" + err.Error() + ")"
		}
		c.Parts = append(c.Parts, fmt.Sprintf("%d %s: %s, %s at %s", p.Index, name, kind, HumanSize(length), HumanSize(start)))
		c.Entries = append(c.Entries, ents...)
	}
	return c, nil
}

// inspectPartition names the file system of one partition and lists it:
// squashfs with owners and link targets, the others (FAT, ext4) through
// go-diskfs. An all-zero start is an empty partition.
func inspectPartition(d *disk.Disk, f *os.File, index int, start, length int64, prefix string) (string, []Entry, error) {
	head := make([]byte, 4)
	if _, err := f.ReadAt(head, start); err != nil {
		return "unreadable", nil, err
	}
	switch {
	case string(head) == "hsqs":
		ents, err := listSquashfs(f, start, length, strings.TrimSuffix(prefix, "/"))
		return "squashfs", ents, err
	case zeros(f, start, start+64<<10) >= 64<<10:
		return "empty", nil, nil
	}
	fsys, err := d.GetFilesystem(index)
	if err != nil {
		return "unknown file system", nil, nil
	}
	kind := map[filesystem.Type]string{filesystem.TypeFat32: "FAT32", filesystem.TypeExt4: "ext4", filesystem.TypeISO9660: "iso9660"}[fsys.Type()]
	var ents []Entry
	err = fs.WalkDir(fsys, ".", func(p string, de fs.DirEntry, err error) error {
		if err != nil || p == "." {
			return err
		}
		info, err := de.Info()
		if err != nil {
			return err
		}
		e := Entry{Path: prefix + path.Clean("/"+p), Mode: info.Mode()}
		if !info.IsDir() {
			e.Size = info.Size()
		}
		ents = append(ents, e)
		return nil
	})
	return kind, ents, err
}

// hybridMBRParts describes the MBR's own entries beside the GPT's
// protective one ("1: type 0x0c, 113.0 MiB at 1.0 MiB"), "" for a
// protective MBR.
func hybridMBRParts(f *os.File) string {
	mbr := make([]byte, sector)
	if _, err := f.ReadAt(mbr, 0); err != nil || mbr[510] != 0x55 || mbr[511] != 0xaa {
		return ""
	}
	var parts []string
	for i := range 4 {
		e := mbr[446+16*i:]
		if typ := e[4]; typ != 0 && typ != 0xee {
			start := int64(binary.LittleEndian.Uint32(e[8:])) * sector
			n := int64(binary.LittleEndian.Uint32(e[12:])) * sector
			parts = append(parts, fmt.Sprintf("%d: type %#02x, %s at %s", i+1, typ, HumanSize(n), HumanSize(start)))
		}
	}
	return strings.Join(parts, "; ")
}
