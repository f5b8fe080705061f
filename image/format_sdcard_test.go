package image

import (
	"context"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/cairn-os/cairn/boards"
)

// TestSDCardImage builds the Raspberry Pi card and reads it back as the Pi
// firmware and the init do: partition 1 in the MBR as FAT32, the GPT's
// names, config.txt and tryboot.txt naming slot A, and the slot's files.
// Two builds are byte-identical, and the compressed image is of the card.
func TestSDCardImage(t *testing.T) {
	b, err := boards.Load("rpi4")
	must(t, err)
	initBin, _, err := buildInit(context.Background(), "", b.Arch, t.TempDir(), nil)
	must(t, err)
	o := Options{Board: "rpi4", Out: t.TempDir(), Init: initBin, Formats: []string{"sdcard", "zst"}}
	res := build(t, o)
	img := filepath.Join(res.Dir, "sdcard.img")
	for _, name := range []string{"sdcard.img.zst", "sdcard.img.bmap"} {
		if _, err := os.Stat(filepath.Join(res.Dir, name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	d, err := diskfs.Open(img, diskfs.WithOpenMode(diskfs.ReadOnly))
	must(t, err)
	defer d.Close()
	pt, err := d.GetPartitionTable()
	must(t, err)
	parts := pt.(*gpt.Table).Partitions
	if len(parts) != 4 || parts[1].Name != "cairn-a" || parts[3].Name != "cairn-state" {
		t.Fatalf("GPT partitions %+v, want ESP cairn-a cairn-b cairn-state", parts)
	}

	f, err := os.Open(img)
	must(t, err)
	defer f.Close()
	mbr := make([]byte, 512)
	_, err = f.ReadAt(mbr, 0)
	must(t, err)
	e := mbr[446:]
	if e[4] != 0x0c || uint64(binary.LittleEndian.Uint32(e[8:])) != parts[0].Start || uint64(binary.LittleEndian.Uint32(e[12:])) != parts[0].End-parts[0].Start+1 {
		t.Errorf("MBR entry 1 %x, want FAT32 LBA (0x0c) over GPT partition 1 (%d-%d)", e[:16], parts[0].Start, parts[0].End)
	}
	if e := mbr[446+48:]; e[4] != 0xee || binary.LittleEndian.Uint32(e[8:]) != 1 {
		t.Errorf("MBR entry 4 %x, want the protective 0xee from sector 1", e[:16])
	}

	fs, err := d.GetFilesystem(1)
	must(t, err)
	read := func(p string) string {
		r, err := fs.OpenFile(p, os.O_RDONLY)
		if err != nil {
			t.Errorf("boot partition %s: %v", p, err)
			return ""
		}
		data, err := io.ReadAll(r)
		must(t, err)
		return string(data)
	}
	for _, conf := range []string{"/config.txt", "/tryboot.txt"} {
		c := read(conf)
		for _, line := range []string{"arm_64bit=1", "os_prefix=a/", "kernel=vmlinuz", "initramfs initrd.img followkernel"} {
			if !strings.Contains(c, "\n"+line+"\n") {
				t.Errorf("%s lacks %q:\n%s", conf, line, c)
			}
		}
	}
	if c := read("/a/cmdline.txt"); !strings.HasSuffix(c, "cairn.system=disk cairn.slot=a\n") || strings.Count(c, "\n") != 1 {
		t.Errorf("a/cmdline.txt %q: want one line ending in cairn.system=disk cairn.slot=a", c)
	}
	for _, p := range []string{"/start4.elf", "/fixup4.dat", "/a/vmlinuz", "/a/initrd.img", "/a/bcm2711-rpi-4-b.dtb"} {
		if len(read(p)) == 0 {
			t.Errorf("boot partition %s is empty", p)
		}
	}
	if res.Info.Firmware == nil || !strings.HasPrefix(res.Info.Firmware.Name, "raspi-firmware_") {
		t.Errorf("manifest firmware %+v, want the raspi-firmware package", res.Info.Firmware)
	}

	again := build(t, Options{Board: "rpi4", Out: t.TempDir(), Init: initBin, Formats: []string{"sdcard"}})
	if a, b := res.Info.Artifacts[0], again.Info.Artifacts[0]; a != b {
		t.Errorf("two builds of the same inputs differ: %+v and %+v", a, b)
	}
}

func TestSDCardNeedsFirmware(t *testing.T) {
	b, err := boards.Load("qemu-arm64")
	must(t, err)
	if _, err := lookupFormats([]string{"sdcard"}, b); err == nil || !strings.Contains(err.Error(), "format sdcard: board qemu-arm64 names no boot firmware (firmware: in its board file)") {
		t.Errorf("sdcard for a UEFI board: %v", err)
	}
	pi, err := boards.Load("rpi4")
	must(t, err)
	if _, err := lookupFormats([]string{"disk"}, pi); err == nil || !strings.Contains(err.Error(), "names no UEFI boot loader") {
		t.Errorf("disk for the Pi: %v", err)
	}
	if _, err := lookupFormats([]string{"zst", "xz"}, pi); err != nil {
		t.Errorf("zst and xz of the Pi's card: %v", err)
	}
}
