//go:build qemu

package test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/cairn-os/cairn/boards"
	"github.com/cairn-os/cairn/image/deb"
)

// The Raspberry Pi tests build sdcard.img for board rpi4. QEMU 7.2 has no
// Raspberry Pi 4 and does not run the Pi firmware, so the boot partition is
// checked against what the firmware needs (raspi-firmware's files, the
// board file, config.txt and tryboot.txt), and the card's own kernel and
// initramfs boot under -M raspi3b (a Pi 3: BCM2837, the same SD host and
// UART family) with the Pi 3's device tree from the same kernel package.

// debFiles returns the regular files of the Debian package in debs whose
// name starts with prefix (for example raspi-firmware_), by path without
// the leading "./", the ones keep accepts with their contents.
func debFiles(t *testing.T, prefix string, keep func(name string) bool) (names []string, data map[string][]byte) {
	t.Helper()
	found, _ := filepath.Glob(filepath.Join(debs(t), prefix+"*.deb"))
	if len(found) == 0 {
		t.Fatalf("no %s*.deb in %s: run `make kernels`", prefix, debs(t))
	}
	sort.Strings(found)
	p, err := deb.Open(found[len(found)-1])
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	data = map[string][]byte{}
	err = p.Walk(func(h *tar.Header, r io.Reader) error {
		if h.Typeflag != tar.TypeReg {
			return nil
		}
		name := strings.TrimPrefix(h.Name, "./")
		names = append(names, name)
		if keep(name) {
			b, err := io.ReadAll(r)
			if err != nil {
				return err
			}
			data[name] = b
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names, data
}

// bootFiles reads the files of an image's first partition (FAT32).
func bootFiles(t *testing.T, img string) func(path string) ([]byte, bool) {
	t.Helper()
	d, err := diskfs.Open(img, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	fs, err := d.GetFilesystem(1)
	if err != nil {
		t.Fatalf("%s: boot partition: %v", img, err)
	}
	return func(p string) ([]byte, bool) {
		f, err := fs.OpenFile(p, os.O_RDONLY)
		if err != nil {
			return nil, false
		}
		b, err := io.ReadAll(f)
		return b, err == nil
	}
}

// TestSDCardBootPartition checks the Pi card's boot partition against what
// the firmware and the board need.
func TestSDCardBootPartition(t *testing.T) {
	b, err := boards.Load("rpi4")
	if err != nil {
		t.Fatal(err)
	}
	dir := image(t, "rpi4")
	img := filepath.Join(dir, "sdcard.img")
	read := bootFiles(t, img)

	// Firmware: every file the board names, byte for byte as packaged;
	// every start4*.elf of the package (the Pi 4 family's firmware) with
	// its fixup4*.dat.
	fwNames, fw := debFiles(t, b.Firmware.Package+"_", func(name string) bool { return path.Dir(name) == b.Firmware.Dir })
	for _, f := range b.Firmware.Files {
		want, ok := fw[path.Join(b.Firmware.Dir, f)]
		if !ok {
			t.Errorf("board file names firmware %s, which %s does not ship (its files: %v)", f, b.Firmware.Package, fwNames)
			continue
		}
		if got, ok := read("/" + f); !ok || !bytes.Equal(got, want) {
			t.Errorf("boot partition /%s: present %v, equal to the package's %v", f, ok, bytes.Equal(got, want))
		}
	}
	for name := range fw {
		base := path.Base(name)
		if !strings.HasPrefix(base, "start4") {
			continue
		}
		fixup := strings.Replace(strings.Replace(base, "start4", "fixup4", 1), ".elf", ".dat", 1)
		for _, f := range []string{base, fixup} {
			if _, ok := read("/" + f); !ok {
				t.Errorf("boot partition lacks %s, Pi 4 firmware from %s", f, b.Firmware.Package)
			}
		}
	}
	if _, ok := read("/bootcode.bin"); ok {
		t.Errorf("boot partition has bootcode.bin, which the Pi 4 (boot code in its EEPROM) never reads")
	}

	// config.txt and tryboot.txt: the board's lines, slot A's directory.
	for _, f := range []string{"config.txt", "tryboot.txt"} {
		data, ok := read("/" + f)
		if !ok {
			t.Fatalf("boot partition has no %s", f)
		}
		for _, line := range append(strings.Split(strings.TrimSpace(b.Firmware.Config), "\n"), "os_prefix=a/", "kernel=vmlinuz", "initramfs initrd.img followkernel", "cmdline=cmdline.txt") {
			if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(line) + `$`).Match(data) {
				t.Errorf("%s lacks the line %q:\n%s", f, line, data)
			}
		}
	}

	// Slot A: the package's kernel and device trees, the stage-1
	// initramfs, the command line of a disk boot from slot A.
	_, kernel := debFiles(t, "linux-image-"+manifestRelease(t, dir)+"_", func(name string) bool {
		return strings.HasPrefix(name, "boot/vmlinuz-") || strings.HasSuffix(name, ".dtb")
	})
	for name, want := range kernel {
		var on string
		switch {
		case strings.HasPrefix(name, "boot/vmlinuz-"):
			on = "/a/vmlinuz"
		default:
			for _, d := range b.DTBs {
				if strings.HasSuffix(name, "/"+d) {
					on = "/a/" + path.Base(d)
				}
			}
		}
		if on == "" {
			continue
		}
		if got, ok := read(on); !ok || !bytes.Equal(got, want) {
			t.Errorf("boot partition %s: present %v, equal to the kernel package's %s %v", on, ok, name, bytes.Equal(got, want))
		}
	}
	for _, d := range b.DTBs {
		if _, ok := read("/a/" + path.Base(d)); !ok {
			t.Errorf("boot partition lacks the board's device tree a/%s", path.Base(d))
		}
	}
	if ird, ok := read("/a/initrd.img"); !ok || len(ird) < 1<<20 {
		t.Errorf("a/initrd.img: present %v, %d bytes", ok, len(ird))
	}
	cmdline, _ := read("/a/cmdline.txt")
	for _, w := range append(strings.Fields(b.Cmdline), "cairn.system=disk", "cairn.slot=a") {
		if !slices.Contains(strings.Fields(string(cmdline)), w) {
			t.Errorf("a/cmdline.txt %q lacks %s", cmdline, w)
		}
	}

	// The partitions: GPT names for the init, and partition 1 in the MBR
	// as FAT32 for the firmware, with the GPT's protective entry last.
	d, err := diskfs.Open(img, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	table, err := d.GetPartitionTable()
	if err != nil {
		t.Fatal(err)
	}
	parts := table.(*gpt.Table).Partitions
	var names []string
	for _, p := range parts {
		names = append(names, p.Name)
	}
	if strings.Join(names, " ") != "ESP cairn-a cairn-b cairn-state" {
		t.Errorf("GPT partitions %v, want ESP cairn-a cairn-b cairn-state", names)
	}
	f, _ := os.Open(img)
	defer f.Close()
	mbr := make([]byte, 512)
	f.ReadAt(mbr, 0)
	rec := func(i int) (typ byte, start, n uint32) {
		e := mbr[446+16*i:]
		return e[4], binary.LittleEndian.Uint32(e[8:]), binary.LittleEndian.Uint32(e[12:])
	}
	if typ, start, n := rec(0); typ != 0x0c || uint64(start) != parts[0].Start || uint64(n) != parts[0].End-parts[0].Start+1 {
		t.Errorf("MBR entry 1: type %#x at %d, %d sectors; want FAT32 (0x0c) over the boot partition, sectors %d-%d", typ, start, n, parts[0].Start, parts[0].End)
	}
	if typ, start, _ := rec(3); typ != 0xee || start != 1 {
		t.Errorf("MBR entry 4: type %#x at %d; want the GPT's protective entry (0xee) from sector 1", typ, start)
	}
	for i := 1; i <= 2; i++ {
		if typ, _, _ := rec(i); typ != 0 {
			t.Errorf("MBR entry %d: type %#x; want it empty (the Pi firmware stops at a 0xee entry in the first two)", i+1, typ)
		}
	}
}

// manifestRelease is the kernel release a build used (6.1.0-57-arm64).
func manifestRelease(t *testing.T, dir string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`"release":\s*"([^"]+)"`).FindSubmatch(data)
	if m == nil {
		t.Fatalf("%s/manifest.json names no kernel release", dir)
	}
	return string(m[1])
}

// TestSDCardBootRaspi3b boots the card's slot A kernel and initramfs with
// the card attached as the SD card of QEMU's raspi3b and a Pi 3 device
// tree: stage 1 finds slot A and STATE by their GPT names through the
// hybrid MBR, grows STATE to the card (QEMU wants a power-of-two card:
// 1 GiB), and the config baked in loads. tryboot.txt names slot B before
// the boot, as after an update whose trial boot did not come up: the init
// says the firmware fell back, and resets tryboot.txt to slot A.
func TestSDCardBootRaspi3b(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cfg := writeFile(t, "config.yaml", "#cloud-config\nhostname: pi-node\n")
	dir := image(t, "rpi4", "-config", cfg)
	sd := filepath.Join(t.TempDir(), "sdcard.img")
	copySparse(t, filepath.Join(dir, "sdcard.img"), sd)
	if err := os.Truncate(sd, 1<<30); err != nil {
		t.Fatal(err)
	}

	tmp := t.TempDir()
	art := cardSlot(t, sd, "a", tmp)
	editCardFile(t, sd, "/tryboot.txt", func(data []byte) []byte {
		return bytes.Replace(data, []byte("os_prefix=a/"), []byte("os_prefix=b/"), 1)
	})
	m := bootRaspi3b(t, ctx, "", sd, art, pi3DTB(t, dir, tmp, false))
	start := waitFor(t, ctx, m, bootTimeout, reInitStarting)
	waitFor(t, ctx, m, stepTimeout, regexp.MustCompile(`cairn: \[\d+\.\d+\] boot: mount the system image on partition cairn-a`))
	waitFor(t, ctx, m, stepTimeout, regexp.MustCompile(`cairn: \[\d+\.\d+\] boot: state: grew cairn-state to fill the disk`))
	state := waitFor(t, ctx, m, stepTimeout, reStateBoot)
	if got := reStateBoot.FindStringSubmatch(state.Text)[3]; got != "1" {
		t.Errorf("state line %q: want boot 1 of a fresh card", state.Text)
	}
	fell := waitFor(t, ctx, m, stepTimeout, regexp.MustCompile(`cairn: \[\d+\.\d+\] warning: boot: slot B did not come up on its trial boot \(tryboot\.txt\); the firmware fell back to slot A`))
	loaded := waitFor(t, ctx, m, stepTimeout, reConfigLoaded)
	if !strings.Contains(loaded.Text, "/etc/cairn/config.yaml") {
		t.Errorf("config line %q: want the baked-in config", loaded.Text)
	}
	if err := m.Quit(ctx); err != nil {
		t.Fatal(err)
	}
	m.Wait(ctx)
	try, ok := bootFiles(t, sd)("/tryboot.txt")
	if !ok || !bytes.Contains(try, []byte("\nos_prefix=a/\n")) {
		t.Errorf("tryboot.txt after the boot:\n%s\nwant it reset to slot A (os_prefix=a/)", try)
	}
	t.Logf("console: %s", fell.Text)
	t.Logf("figures: rpi4 sdcard under raspi3b: init starting %s, config loaded %s after QEMU start", secs(start.At), secs(loaded.At))
}

// copySparse copies a disk image keeping its holes.
func copySparse(t *testing.T, from, to string) {
	t.Helper()
	if out, err := exec.Command("cp", "--sparse=always", from, to).CombinedOutput(); err != nil {
		t.Fatalf("copying %s: %v: %s", from, err, out)
	}
}
