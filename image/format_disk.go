package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/cairn-os/cairn/boards"
	"github.com/cairn-os/cairn/config/layout"
)

// diskFormat writes disk.img, a raw UEFI disk: a GPT with an EFI system
// partition (FAT32: systemd-boot, each slot's kernel and initramfs, a
// loader entry per slot with a boot counter), the A and B slot partitions
// for system images (A filled, B empty), and a small STATE partition (ext4)
// that the init grows to fill the disk on first boot. Every UUID derives from
// the build's inputs, so two builds of the same inputs are byte-identical.
var diskFormat = format{name: "disk", bootloader: true, supports: needsBootloader, write: writeDisk}

func needsBootloader(b *boards.Board) error {
	if b.Bootloader == nil {
		return errors.New("names no UEFI boot loader (bootloader: in its board file)")
	}
	return nil
}

// needsDiskBoot accepts a board that boots a disk image one way or the
// other: a UEFI boot loader, or firmware of its own.
func needsDiskBoot(b *boards.Board) error {
	if b.Bootloader == nil && b.Firmware == nil {
		return errors.New("names neither a UEFI boot loader (bootloader:) nor boot firmware (firmware:) in its board file")
	}
	return nil
}

const (
	sector = 512
	mib    = 1 << 20
	// bootTries is systemd-boot's boot counter for a new slot: the boots it
	// may fail before the loader falls back to the other slot.
	bootTries = 3
	// stateSize is STATE as built; the init grows it to fill the disk.
	stateSize = 64 * mib
	// minSlot is the smallest slot, leaving room for larger system images
	// in later updates.
	minSlot = 256 * mib
)

// diskPart is one partition of a disk image, in bytes.
type diskPart struct {
	name       string
	typ        gpt.Type
	start, len int64
}

// diskLayout places the ESP, the two slots and STATE, 1 MiB aligned, and
// returns them with the disk's size (room for the backup GPT at the end).
func diskLayout(esp, slot int64) ([]diskPart, int64) {
	parts := []diskPart{
		{name: layout.ESPLabel, typ: gpt.EFISystemPartition, len: esp},
		{name: layout.SlotLabel(layout.SlotA), typ: gpt.LinuxFilesystem, len: slot},
		{name: layout.SlotLabel(layout.SlotB), typ: gpt.LinuxFilesystem, len: slot},
		{name: layout.StateLabel, typ: gpt.LinuxFilesystem, len: stateSize},
	}
	off := int64(mib)
	for i := range parts {
		parts[i].start = off
		off += parts[i].len
	}
	return parts, off + mib
}

// roundUp rounds n up to a multiple of m.
func roundUp(n, m int64) int64 { return (n + m - 1) / m * m }

// uuidFor derives a stable random-looking (version 4) UUID for name from
// seed.
func uuidFor(seed, name string) string {
	h := sha256.Sum256([]byte(seed + "\x00" + name))
	h[6] = h[6]&0x0f | 0x40
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// loaderConf makes systemd-boot start the default cairn entry at once; a
// key held during boot shows the menu.
const loaderConf = "timeout 0\ndefault " + layout.EntryPrefix + "*\neditor no\n"

// startupNsh restarts the machine from the firmware's UEFI shell, which
// firmware such as OVMF (QEMU, libvirt, Proxmox) starts when the boot
// loader returns: systemd-boot returns when it cannot start a slot's kernel
// (not an EFI image, truncated), after counting the try, so the restart
// boots the other slot once the failed one's tries are spent.
const startupNsh = "# cairn: the boot loader could not start a slot's kernel; restart, and it boots the other slot\r\nreset\r\n"

// efiBootName is the removable-media path UEFI firmware boots without any
// boot entry of its own, per architecture.
var efiBootName = map[string]string{"amd64": "BOOTX64.EFI", "arm64": "BOOTAA64.EFI"}

// uefiBoot is the UEFI disk's boot partition: the ESP with systemd-boot.
var uefiBoot = bootPartition{typ: gpt.EFISystemPartition, files: espFiles}

// bootPartition is a disk's first partition (FAT32): the files that boot
// slot A, with room for slot B's beside them.
type bootPartition struct {
	typ gpt.Type
	// files lists the partition's files; those with slot set belong to
	// slot A and are counted twice when sizing the partition.
	files func(a *artifacts, ird string) ([]fatFile, error)
	// hybridMBR lists the partition in the MBR too (FAT32, type 0x0c),
	// for firmware that reads no GPT (the Raspberry Pi's).
	hybridMBR bool
}

// size is the FAT file system for files: room for a second slot's.
func (bp bootPartition) size(files []fatFile) (int64, error) {
	var total int64
	for _, f := range files {
		n := int64(len(f.data))
		if f.src != "" {
			st, err := os.Stat(f.src)
			if err != nil {
				return 0, err
			}
			n = st.Size()
		}
		total += n
		if f.slot {
			total += n
		}
	}
	return fatSize(total), nil
}

// rawName is the raw disk image's name: disk.img, or sdcard.img for a
// board booted by its own firmware rather than UEFI.
func (a *artifacts) rawName() string {
	if a.b.Bootloader == nil && a.b.Firmware != nil {
		return "sdcard.img"
	}
	return "disk.img"
}

func writeDisk(ctx context.Context, a *artifacts) error {
	out, err := a.files.reserve("disk.img")
	if err != nil {
		return err
	}
	if err := makeDisk(ctx, a, out, uefiBoot); err != nil {
		return err
	}
	a.disk = out
	return nil
}

// rawDisk is the raw disk image, made in the work directory when the disk
// (or sdcard) format is not among the build's formats: a UEFI disk when
// the board has a UEFI boot loader, else an SD card for its firmware.
func (a *artifacts) rawDisk(ctx context.Context) (string, error) {
	if a.disk != "" {
		return a.disk, nil
	}
	path := filepath.Join(a.work, a.rawName())
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		return "", err
	}
	bp := uefiBoot
	if a.b.Bootloader == nil {
		bp = piBoot
	}
	if err := makeDisk(ctx, a, path, bp); err != nil {
		return "", err
	}
	a.disk = path
	return path, nil
}

// makeDisk writes the disk image to the existing file out, with bp as
// its boot partition.
func makeDisk(ctx context.Context, a *artifacts, out string, bp bootPartition) error {
	ird, err := a.stage1Initramfs()
	if err != nil {
		return err
	}
	bootFiles, err := bp.files(a, ird)
	if err != nil {
		return err
	}
	esp, err := bp.size(bootFiles)
	if err != nil {
		return err
	}
	sys, err := os.Stat(a.system)
	if err != nil {
		return err
	}
	slot := max(roundUp(sys.Size()*2, 64*mib), minSlot)
	parts, size := diskLayout(esp, slot)
	parts[0].typ = bp.typ

	sum, err := digests{a.cacheDir}.sum(a.system)
	if err != nil {
		return err
	}
	seed := a.b.Name + "\x00" + sum + "\x00" + a.initIn.SHA256

	f, err := os.OpenFile(out, os.O_RDWR|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return err
	}
	d, err := diskfs.OpenBackend(file.New(f, false), diskfs.WithSectorSize(sector))
	if err != nil {
		return err
	}
	table := &gpt.Table{LogicalSectorSize: sector, PhysicalSectorSize: sector, ProtectiveMBR: true, GUID: uuidFor(seed, "disk")}
	for i, p := range parts {
		table.Partitions = append(table.Partitions, &gpt.Partition{
			Index: i + 1, Name: p.name, Type: p.typ, GUID: uuidFor(seed, p.name),
			Start: uint64(p.start / sector), End: uint64((p.start+p.len)/sector - 1),
		})
	}
	if err := d.Partition(table); err != nil {
		return fmt.Errorf("writing the partition table: %w", err)
	}
	if bp.hybridMBR {
		if err := writeHybridMBR(f, parts[0]); err != nil {
			return err
		}
	}

	a.prog.start("writing the boot partition")
	err = makeFAT(d, 1, layout.ESPLabel, a.epoch, bootFiles)
	a.prog.done()
	if err != nil {
		return fmt.Errorf("boot partition: %w", err)
	}
	if err := copyAt(f, parts[1].start, a.system); err != nil {
		return fmt.Errorf("slot A: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	state, err := makeState(ctx, a.work, uuidFor(seed, "state-fs"), a.epoch)
	if err != nil {
		return err
	}
	if err := copyAt(f, parts[3].start, state); err != nil {
		return fmt.Errorf("STATE: %w", err)
	}
	return f.Close()
}

// espFiles are the EFI system partition's: systemd-boot, its loader.conf,
// slot A's entry with a boot counter, kernel and initramfs.
func espFiles(a *artifacts, ird string) ([]fatFile, error) {
	slot := layout.SlotA
	cmdline := a.cmdlineFor(layout.SystemDisk, layout.SlotParam+"="+slot)
	entry := fmt.Sprintf("/loader/entries/%s%s+%d.conf", layout.EntryPrefix, slot, bootTries)
	return []fatFile{
		{path: "/EFI/BOOT/" + efiBootName[a.b.Arch], data: a.bootloader},
		{path: "/loader/loader.conf", data: []byte(loaderConf)},
		{path: "/startup.nsh", data: []byte(startupNsh)},
		// The version is the build's epoch: the newest system that still
		// boots is the loader's default.
		{path: entry, data: []byte(layout.LoaderEntry(slot, a.initIn.Version, a.epoch, cmdline)), slot: true},
		{path: layout.ESPDir + "/" + slot + "/vmlinuz", src: a.k.VmlinuzPath(), slot: true},
		{path: layout.ESPDir + "/" + slot + "/initrd.img", src: ird, slot: true},
	}, nil
}

// writeHybridMBR lists the boot partition p in the MBR as FAT32 (LBA,
// type 0x0c), first, for firmware that reads only MBRs, and keeps a GPT
// protective entry (0xee, sector 1 up to p) fourth, where firmware that
// trips over it in the first two looks no further, and Linux still finds
// the GPT (a hybrid MBR).
func writeHybridMBR(f *os.File, p diskPart) error {
	mbr := make([]byte, sector)
	if _, err := f.ReadAt(mbr, 0); err != nil {
		return err
	}
	entry := func(i int, typ byte, start, n int64) {
		e := mbr[446+16*i : 446+16*(i+1)]
		clear(e)
		// CHS fields set to the "beyond CHS" marker; LBA counts rule.
		copy(e[1:4], []byte{0xfe, 0xff, 0xff})
		e[4] = typ
		copy(e[5:8], []byte{0xfe, 0xff, 0xff})
		binary.LittleEndian.PutUint32(e[8:12], uint32(start))
		binary.LittleEndian.PutUint32(e[12:16], uint32(n))
	}
	for i := range 4 {
		clear(mbr[446+16*i : 446+16*(i+1)])
	}
	entry(0, 0x0c, p.start/sector, p.len/sector)
	entry(3, 0xee, 1, p.start/sector-1)
	mbr[510], mbr[511] = 0x55, 0xaa
	_, err := f.WriteAt(mbr, 0)
	return err
}

// makeState makes the STATE file system (ext4, labelled layout.StateLabel)
// with mkfs.ext4, its UUID, hash seed and times fixed so it is reproducible.
func makeState(ctx context.Context, work, uuid string, epoch int64) (string, error) {
	tool, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		return "", errors.New("mkfs.ext4 not found; install e2fsprogs (make deps)")
	}
	img := work + "/state.ext4"
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		return "", err
	}
	if err := os.Truncate(img, stateSize); err != nil {
		return "", err
	}
	// Inode tables are left to the kernel to zero (lazy_itable_init), so
	// the image's zero blocks are holes a bmap may skip.
	cmd := exec.CommandContext(ctx, tool, "-q", "-F", "-L", layout.StateLabel, "-U", uuid,
		"-E", "hash_seed="+uuid+",root_owner=0:0,lazy_itable_init=1", img)
	// mke2fs takes its clock from here when set (reproducible builds).
	cmd.Env = append(os.Environ(), fmt.Sprintf("E2FSPROGS_FAKE_TIME=%d", max(epoch, 1)))
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("mkfs.ext4: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return img, nil
}

// copyAt copies the file src into f at offset off, skipping blocks of
// zeros so the image stays sparse.
func copyAt(f *os.File, off int64, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	buf := make([]byte, mib)
	zero := make([]byte, 64<<10)
	for {
		n, err := io.ReadFull(in, buf)
		for i := 0; i < n; i += len(zero) {
			chunk := buf[i:min(i+len(zero), n)]
			if !bytes.Equal(chunk, zero[:len(chunk)]) {
				if _, err := f.WriteAt(chunk, off+int64(i)); err != nil {
					return err
				}
			}
		}
		off += int64(n)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
