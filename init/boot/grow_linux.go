package boot

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"golang.org/x/sys/unix"
)

const (
	// blkpg is the BLKPG ioctl: tell the kernel a partition changed.
	blkpg = 0x1269
	// ext4ResizeFS is EXT4_IOC_RESIZE_FS: grow a mounted ext4 to a block count.
	ext4ResizeFS = 0x40086610
	// alignSectors keeps partition ends on 1 MiB boundaries.
	alignSectors = 2048
	sectorSize   = 512
)

// blockInfo is what sysfs says about a partition: its disk, number, first
// sector and length, and the disk's length, in 512-byte sectors.
type blockInfo struct {
	disk                    string // /dev/vda
	number                  int
	start, sectors, diskLen uint64
}

func readBlockInfo(dev string) (blockInfo, error) {
	name := filepath.Base(dev)
	sys := filepath.Join("/sys/class/block", name)
	num := func(path string) (uint64, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return 0, err
		}
		return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	}
	var bi blockInfo
	link, err := filepath.EvalSymlinks(sys)
	if err != nil {
		return bi, err
	}
	parent := filepath.Dir(link)
	bi.disk = "/dev/" + filepath.Base(parent)
	n, err := num(filepath.Join(sys, "partition"))
	if err != nil {
		return bi, fmt.Errorf("%s is not a partition: %w", dev, err)
	}
	bi.number = int(n)
	if bi.start, err = num(filepath.Join(sys, "start")); err != nil {
		return bi, err
	}
	if bi.sectors, err = num(filepath.Join(sys, "size")); err != nil {
		return bi, err
	}
	if bi.diskLen, err = num(filepath.Join(parent, "size")); err != nil {
		return bi, err
	}
	return bi, nil
}

// growEnd is the last sector a partition may end on when it grows to the
// end of a GPT disk of diskLen sectors (the backup table takes the last 33),
// aligned down to 1 MiB; it returns the current end when nothing would grow.
func growEnd(bi blockInfo) uint64 {
	end := bi.start + bi.sectors - 1
	if bi.diskLen < bi.start+bi.sectors+34 {
		return end // no room for the backup table: sysfs disagrees with itself
	}
	lastUsable := bi.diskLen - 34
	aligned := (lastUsable+1)/alignSectors*alignSectors - 1
	if aligned <= end {
		return end
	}
	return aligned
}

// growPartition moves the partition dev's end to the end of its disk: the
// GPT (primary and backup, which moves to the disk's new end) and the
// kernel's view of it. A partition that is not the disk's last, or has no
// room after it, is left alone.
func growPartition(dev string) error {
	bi, err := readBlockInfo(dev)
	if err != nil {
		return err
	}
	end := growEnd(bi)
	if end == bi.start+bi.sectors-1 {
		return nil
	}
	f, err := os.OpenFile(bi.disk, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	old, err := gpt.Read(file.New(f, false), sectorSize, sectorSize)
	if err != nil {
		return fmt.Errorf("reading %s's partition table: %w", bi.disk, err)
	}
	// A table read from the disk keeps its old end; a new one with the
	// same identity and partitions is laid out for the disk's size. A
	// hybrid MBR (a Raspberry Pi card's: its firmware reads only the
	// MBR) is kept as it is; a protective one is rewritten for the size.
	table := &gpt.Table{LogicalSectorSize: sectorSize, PhysicalSectorSize: sectorSize, ProtectiveMBR: !hybridMBR(f), GUID: old.GUID}
	found := false
	for _, p := range old.Partitions {
		if p.Type == gpt.Unused {
			continue
		}
		np := *p
		if p.Index == bi.number {
			if p.Start != bi.start {
				return fmt.Errorf("partition %d of %s starts at sector %d in the table but %d for the kernel", p.Index, bi.disk, p.Start, bi.start)
			}
			np.End, np.Size = end, (end-p.Start+1)*sectorSize
			found = true
		} else if p.End > bi.start {
			return nil // not the last partition: leave the disk alone
		}
		table.Partitions = append(table.Partitions, &np)
	}
	if !found {
		return fmt.Errorf("partition %d is not in %s's partition table", bi.number, bi.disk)
	}
	if err := table.Write(f, int64(bi.diskLen)*sectorSize); err != nil {
		return fmt.Errorf("writing %s's partition table: %w", bi.disk, err)
	}
	length := int64(end-bi.start+1) * sectorSize
	part := unix.BlkpgPartition{Start: int64(bi.start) * sectorSize, Length: length, Pno: int32(bi.number)}
	arg := unix.BlkpgIoctlArg{Op: unix.BLKPG_RESIZE_PARTITION, Datalen: int32(unsafe.Sizeof(part)), Data: (*byte)(unsafe.Pointer(&part))}
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), blkpg, uintptr(unsafe.Pointer(&arg))); errno != 0 {
		return fmt.Errorf("telling the kernel %s grew: %w", dev, errno)
	}
	return nil
}

// growExt4 grows the ext4 mounted at dir to bytes, online.
func growExt4(dir string, bytes int64) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return err
	}
	blocks := uint64(bytes) / uint64(st.Bsize)
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, d.Fd(), ext4ResizeFS, uintptr(unsafe.Pointer(&blocks))); errno != 0 {
		return fmt.Errorf("growing the ext4 on %s to %d blocks: %w", dir, blocks, errno)
	}
	return nil
}

// hybridMBR says whether the disk's MBR lists partitions of its own beside
// the GPT's protective entry (0xee), as a Raspberry Pi card's does.
func hybridMBR(f *os.File) bool {
	mbr := make([]byte, sectorSize)
	if _, err := f.ReadAt(mbr, 0); err != nil {
		return false
	}
	return isHybridMBR(mbr)
}
