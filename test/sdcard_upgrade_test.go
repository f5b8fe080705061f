//go:build qemu

package test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cavaliergopher/cpio"
	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/cairn-os/cairn/boards"
	"github.com/cairn-os/cairn/config/upgrade"
	"github.com/cairn-os/cairn/qemu"
)

// The Raspberry Pi's upgrade in place (issue 27) as far as QEMU's raspi3b
// goes. QEMU runs no Pi firmware, so the test plays its part: it boots the
// slot directory that config.txt or tryboot.txt names, and for the trial
// boot hands the kernel a device tree with the cell the firmware sets
// (/chosen/bootloader/tryboot = <1>). raspi3b has 1 GiB and no network
// card, too little for a cluster to hand the node an Upgrade, so
// test/slotwrite plays the upgrader's part: it writes the other slot from
// an update bundle with the node's own WriteSlot and restarts through the
// init's shutdown path. What only hardware shows is in docs/upgrades.md.

// TestSDCardUpgradeRaspi3b upgrades a card of cairn pi-1 to pi-2's update
// bundle: the node writes slot B's partition and directory and points
// tryboot.txt at b/, restarting with reboot "0 tryboot"; config.txt still
// names slot A. A failed trial (the firmware's next ordinary boot, on a
// copy of the card) comes back on slot A, which says so and resets
// tryboot.txt. The trial boot runs pi-2 from slot B, whose stage 1 makes
// config.txt boot it; the next ordinary boot is slot B's.
func TestSDCardUpgradeRaspi3b(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	cfg := writeFile(t, "config.yaml", "#cloud-config\nhostname: pi-node\n")
	v1 := image(t, "rpi4", "--version", "pi-1", "--format", "sdcard", "-config", cfg)
	v2 := image(t, "rpi4", "--version", "pi-2", "--format", "update", "-config", cfg)
	bdir := filepath.Join(v2, upgrade.BundleDir)
	bundle := readPiBundle(t, bdir)
	sd := filepath.Join(t.TempDir(), "sdcard.img")
	copySparse(t, filepath.Join(v1, "sdcard.img"), sd)
	if err := os.Truncate(sd, 1<<30); err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	plainDTB, trialDTB := pi3DTB(t, v1, tmp, false), pi3DTB(t, v1, tmp, true)

	// 1. Slot A with slotwrite as PID 1 and pi-2's bundle in its initramfs.
	art := cardSlot(t, sd, "a", filepath.Join(tmp, "write"))
	art.Initrd = slotwriteInitrd(t, art.Initrd, bdir)
	m := bootRaspi3b(t, ctx, "write", sd, art, plainDTB, "rdinit=/slotwrite")
	writing := waitFor(t, ctx, m, bootTimeout, regexp.MustCompile(`cairn: \[\d+\.\d+\] upgrade: writing slot B \(cairn-b, /dev/\S+, `))
	// The emulated SD card is slow: the image is written and read back.
	holds := waitFor(t, ctx, m, 15*time.Minute, regexp.MustCompile(`cairn: \[\d+\.\d+\] upgrade: slot B holds cairn pi-2; tryboot\.txt names it \(os_prefix=b/\): the firmware tries it once after a restart with reboot "0 tryboot"; config\.txt still boots slot A`))
	waitFor(t, ctx, m, stepTimeout, regexp.MustCompile(`cairn: \[\d+\.\d+\] shutdown: rebooting with reboot argument "0 tryboot"`))
	quitAfterRestart(t, ctx, m)
	t.Logf("figures: rpi4 slot B written under raspi3b in %s (%s)", secs(holds.At-writing.At), writing.Text)

	// 2. The card as the firmware finds it at the restart.
	read := bootFiles(t, sd)
	for f, slot := range map[string]string{"/config.txt": "a", "/tryboot.txt": "b"} {
		if data, _ := read(f); !bytes.Contains(data, []byte("\nos_prefix="+slot+"/\n")) {
			t.Errorf("%s after the write:\n%s\nwant os_prefix=%s/", f, data, slot)
		}
	}
	for _, name := range []string{upgrade.KernelFile, upgrade.InitrdFile} {
		want, _ := os.ReadFile(filepath.Join(bdir, name))
		if got, ok := read("/b/" + name); !ok || !bytes.Equal(got, want) {
			t.Errorf("b/%s: present %v, the bundle's %v", name, ok, bytes.Equal(got, want))
		}
	}
	if got, _ := read("/b/cmdline.txt"); strings.TrimSpace(string(got)) != strings.TrimSpace(bundle.Cmdline+" cairn.slot=b") {
		t.Errorf("b/cmdline.txt is %q; want the bundle's command line and cairn.slot=b", got)
	}
	b, err := boards.Load("rpi4")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range b.DTBs {
		a, _ := read("/a/" + path.Base(d))
		if got, ok := read("/b/" + path.Base(d)); !ok || !bytes.Equal(got, a) || len(a) == 0 {
			t.Errorf("b/%s: present %v, slot A's %v", path.Base(d), ok, bytes.Equal(got, a))
		}
	}
	sysFile, _ := bundle.File(upgrade.SystemFile)
	if sum := partitionSHA256(t, sd, "cairn-b", sysFile.Size); sum != sysFile.SHA256 {
		t.Errorf("partition cairn-b holds sha256 %s over %d bytes; the bundle's system image is %s", sum, sysFile.Size, sysFile.SHA256)
	}

	// 3. A trial that never came up, on a copy of the card: the firmware's
	// next ordinary boot reads config.txt, slot A.
	failed := filepath.Join(t.TempDir(), "sdcard.img")
	copySparse(t, sd, failed)
	m = bootRaspi3b(t, ctx, "fell-back", failed, cardSlot(t, failed, "a", filepath.Join(tmp, "fell-back")), plainDTB)
	waitFor(t, ctx, m, bootTimeout, regexp.MustCompile(`cairn: \[\d+\.\d+\] init: starting cairn pi-1 on arm64`))
	waitFor(t, ctx, m, stepTimeout, regexp.MustCompile(`cairn: \[\d+\.\d+\] boot: mount the system image on partition cairn-a`))
	fell := waitFor(t, ctx, m, stepTimeout, regexp.MustCompile(`cairn: \[\d+\.\d+\] warning: boot: slot B did not come up on its trial boot \(tryboot\.txt\); the firmware fell back to slot A`))
	waitFor(t, ctx, m, stepTimeout, reConfigLoaded)
	if err := m.Quit(ctx); err != nil {
		t.Fatal(err)
	}
	read = bootFiles(t, failed)
	for _, f := range []string{"/config.txt", "/tryboot.txt"} {
		if data, _ := read(f); !bytes.Contains(data, []byte("\nos_prefix=a/\n")) {
			t.Errorf("%s after the failed trial:\n%s\nwant os_prefix=a/", f, data)
		}
	}
	t.Logf("console: %s", fell.Text)

	// 4. The trial boot: the firmware reads tryboot.txt (b/) and sets the
	// tryboot cell; stage 1 of pi-2 mounts slot B and, no upgrade being
	// on record, keeps it.
	m = bootRaspi3b(t, ctx, "trial", sd, cardSlot(t, sd, "b", filepath.Join(tmp, "trial")), trialDTB)
	waitFor(t, ctx, m, bootTimeout, regexp.MustCompile(`cairn: \[\d+\.\d+\] init: starting cairn pi-2 on arm64`))
	waitFor(t, ctx, m, stepTimeout, regexp.MustCompile(`cairn: \[\d+\.\d+\] boot: mount the system image on partition cairn-b`))
	kept := waitFor(t, ctx, m, stepTimeout, regexp.MustCompile(`cairn: \[\d+\.\d+\] boot: slot B booted on trial \(tryboot\.txt\); config\.txt boots it from now on`))
	waitFor(t, ctx, m, stepTimeout, reConfigLoaded)
	if err := m.Quit(ctx); err != nil {
		t.Fatal(err)
	}
	if data, _ := bootFiles(t, sd)("/config.txt"); !bytes.Contains(data, []byte("\nos_prefix=b/\n")) {
		t.Errorf("config.txt after the kept trial:\n%s\nwant os_prefix=b/", data)
	}
	t.Logf("console: %s", kept.Text)

	// 5. The next ordinary boot is config.txt's: slot B, trusted.
	m = bootRaspi3b(t, ctx, "after", sd, cardSlot(t, sd, "b", filepath.Join(tmp, "after")), plainDTB)
	waitFor(t, ctx, m, bootTimeout, regexp.MustCompile(`cairn: \[\d+\.\d+\] init: starting cairn pi-2 on arm64`))
	waitFor(t, ctx, m, stepTimeout, regexp.MustCompile(`cairn: \[\d+\.\d+\] boot: slot B booted \(config\.txt\)`))
	waitFor(t, ctx, m, stepTimeout, reConfigLoaded)
	if err := m.Quit(ctx); err != nil {
		t.Fatal(err)
	}
}

// readPiBundle reads and checks the update bundle in dir, built for rpi4.
func readPiBundle(t *testing.T, dir string) upgrade.Bundle {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, upgrade.BundleFile))
	if err != nil {
		t.Fatal(err)
	}
	var b upgrade.Bundle
	if err := json.Unmarshal(data, &b); err != nil {
		t.Fatal(err)
	}
	if err := b.Check(); err != nil || b.Board != "rpi4" {
		t.Fatalf("%s: board %q, %v; want a bundle for rpi4", dir, b.Board, err)
	}
	if f, _ := b.File(upgrade.SystemFile); f.Size > 384<<20 {
		t.Fatalf("the bundle's system image is %d MiB: with its copy in the initramfs it does not fit raspi3b's 1 GiB", f.Size>>20)
	}
	return b
}

// cardSlot copies a slot's kernel, initramfs and command line off the
// card's boot partition into dir, as the firmware loads them. The Pi 4's
// console (ttyS1, the mini UART) becomes raspi3b's -serial, the PL011
// (ttyAMA0).
func cardSlot(t *testing.T, sd, slot, dir string) qemu.Artifacts {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	read := bootFiles(t, sd)
	var art qemu.Artifacts
	for _, f := range []struct {
		name string
		to   *string
	}{{"vmlinuz", &art.Kernel}, {"initrd.img", &art.Initrd}, {"cmdline.txt", &art.Cmdline}} {
		data, ok := read("/" + slot + "/" + f.name)
		if !ok {
			t.Fatalf("%s: the boot partition has no %s/%s", sd, slot, f.name)
		}
		if f.name == "cmdline.txt" {
			line := regexp.MustCompile(`console=\S+`).ReplaceAllString(strings.TrimSpace(string(data)), "")
			*f.to = strings.Join(strings.Fields("console=ttyAMA0,115200 "+line), " ")
			continue
		}
		*f.to = filepath.Join(dir, f.name)
		if err := os.WriteFile(*f.to, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return art
}

// editCardFile rewrites a file of the card's boot partition in place with
// edit's result, which must be as long.
func editCardFile(t *testing.T, sd, name string, edit func([]byte) []byte) {
	t.Helper()
	d, err := diskfs.Open(sd)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	fs, err := d.GetFilesystem(1)
	if err != nil {
		t.Fatal(err)
	}
	r, err := fs.OpenFile(name, os.O_RDONLY)
	if err != nil {
		t.Fatalf("%s %s: %v", sd, name, err)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	out := edit(data)
	if len(out) != len(data) {
		t.Fatalf("editing %s changes its length", name)
	}
	w, err := fs.OpenFile(name, os.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(out); err != nil {
		t.Fatal(err)
	}
	w.Close()
}

// pi3DTB writes the Pi 3's device tree from the build's kernel package
// into dir; with tryboot, with the cell the firmware sets on a trial boot.
func pi3DTB(t *testing.T, build, dir string, tryboot bool) string {
	t.Helper()
	_, dtbs := debFiles(t, "linux-image-"+manifestRelease(t, build)+"_", func(name string) bool { return strings.HasSuffix(name, "/broadcom/bcm2837-rpi-3-b.dtb") })
	if len(dtbs) != 1 {
		t.Fatalf("the kernel package has no broadcom/bcm2837-rpi-3-b.dtb")
	}
	name := "bcm2837-rpi-3-b.dtb"
	for _, data := range dtbs {
		if tryboot {
			var err error
			if data, err = withTryboot(data); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			name = "bcm2837-rpi-3-b-tryboot.dtb"
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, name)
}

// bootRaspi3b boots art on QEMU's raspi3b with the card sd and the device
// tree dtb (name tells the console logs of one test apart).
func bootRaspi3b(t *testing.T, ctx context.Context, name, sd string, art qemu.Artifacts, dtb string, extraCmdline ...string) *qemu.Machine {
	t.Helper()
	b, err := boards.Load("rpi4")
	if err != nil {
		t.Fatal(err)
	}
	pi3 := *b
	pi3.QEMU = &boards.QEMU{Binary: "qemu-system-aarch64", Machine: "raspi3b", Memory: 1024}
	return bootFirmware(t, ctx, &pi3, qemu.Config{
		Name: name, Artifacts: art, DTB: dtb, NoRNG: true, SMP: 4, NICs: []qemu.NIC{}, ExtraCmdline: extraCmdline,
		Drives: []qemu.Drive{{Path: sd, Media: qemu.MediaSD}},
		FailOn: append([]*regexp.Regexp{regexp.MustCompile(`slotwrite: failed: `)}, qemu.FatalLines...),
	})
}

// quitAfterRestart waits a minute for a guest that restarts to end QEMU
// (no -reboot), then ends it: the card is written and synced by then.
func quitAfterRestart(t *testing.T, ctx context.Context, m *qemu.Machine) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := m.Wait(wctx); err != nil && !m.Exited() {
		t.Logf("the guest's restart did not end QEMU within a minute (raspi3b's watchdog reset); quitting it")
		if err := m.Quit(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// slotwriteInitrd is initrd with test/slotwrite (arm64) as /slotwrite and
// the update bundle in bdir as /bundle appended: a second cpio archive,
// which the kernel unpacks over the first.
func slotwriteInitrd(t *testing.T, initrd, bdir string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "slotwrite")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./test/slotwrite")
	cmd.Dir = repoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./test/slotwrite: %v\n%s", err, out)
	}
	out := initrd + ".slotwrite"
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	first, err := os.ReadFile(initrd)
	if err != nil {
		t.Fatal(err)
	}
	// The kernel looks for the next archive at a 4-byte boundary,
	// skipping zeros.
	first = append(first, make([]byte, (4-len(first)%4)%4)...)
	if _, err := f.Write(first); err != nil {
		t.Fatal(err)
	}
	w := cpio.NewWriter(f)
	add := func(name, src string, mode cpio.FileMode) {
		h := &cpio.Header{Name: name, Mode: mode, Links: 1, ModTime: time.Unix(0, 0)}
		var data []byte
		if src != "" {
			var err error
			if data, err = os.ReadFile(src); err != nil {
				t.Fatal(err)
			}
			h.Size = int64(len(data))
		}
		if err := w.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	add("slotwrite", bin, cpio.TypeReg|0o755)
	add("bundle", "", cpio.TypeDir|0o755)
	for _, name := range append([]string{upgrade.BundleFile}, upgrade.BundleFiles...) {
		add("bundle/"+name, filepath.Join(bdir, name), cpio.TypeReg|0o644)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out
}

// partitionSHA256 is the sha256 of the first n bytes of the card's GPT
// partition called name.
func partitionSHA256(t *testing.T, sd, name string, n int64) string {
	t.Helper()
	d, err := diskfs.Open(sd, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		t.Fatal(err)
	}
	table, err := d.GetPartitionTable()
	d.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range table.(*gpt.Table).Partitions {
		if p.Name != name {
			continue
		}
		f, err := os.Open(sd)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, io.NewSectionReader(f, int64(p.Start)*512, n)); err != nil {
			t.Fatal(err)
		}
		return hex.EncodeToString(h.Sum(nil))
	}
	t.Fatalf("%s has no partition %s", sd, name)
	return ""
}

// FDT structure block tokens (the Devicetree Specification, 5.4).
const (
	fdtBeginNode = 1
	fdtEndNode   = 2
	fdtProp      = 3
	fdtNop       = 4
	fdtEnd       = 9
)

// withTryboot returns the flattened device tree dtb with the node the Pi
// firmware adds on a trial boot, /chosen/bootloader { tryboot = <1>; },
// laid out anew: header, memory reservations, structure, strings. dtb
// must have /chosen and no /chosen/bootloader.
func withTryboot(dtb []byte) ([]byte, error) {
	be := binary.BigEndian
	if len(dtb) < 40 || be.Uint32(dtb) != 0xd00dfeed {
		return nil, errors.New("not a flattened device tree")
	}
	word := func(i int) int { return int(be.Uint32(dtb[4*i:])) }
	offStruct, offStrings, offRsv, sizeStrings, sizeStruct := word(2), word(3), word(4), word(8), word(9)
	if offStruct+sizeStruct > len(dtb) || offStrings+sizeStrings > len(dtb) || offRsv > len(dtb) {
		return nil, errors.New("its header points past its end")
	}
	st, strs := dtb[offStruct:offStruct+sizeStruct], dtb[offStrings:offStrings+sizeStrings]
	rsvEnd := offRsv // 16-byte entries, up to one of zeros
	for ; rsvEnd+16 <= len(dtb); rsvEnd += 16 {
		if be.Uint64(dtb[rsvEnd:]) == 0 && be.Uint64(dtb[rsvEnd+8:]) == 0 {
			rsvEnd += 16
			break
		}
	}
	// Find the end of /chosen, a node one level below the root.
	depth, at, inChosen, insert := 0, 0, false, -1
	for at+4 <= len(st) && insert < 0 {
		tok := be.Uint32(st[at:])
		at += 4
		switch tok {
		case fdtBeginNode:
			end := bytes.IndexByte(st[at:], 0)
			if end < 0 {
				return nil, errors.New("a node name is not terminated")
			}
			name := string(st[at : at+end])
			at += (end + 4) &^ 3
			depth++
			if depth == 2 {
				inChosen = name == "chosen"
			}
			if inChosen && depth == 3 && name == "bootloader" {
				return nil, errors.New("it has /chosen/bootloader already")
			}
		case fdtEndNode:
			if inChosen && depth == 2 {
				insert = at - 4
			}
			depth--
		case fdtProp:
			if at+8 > len(st) {
				return nil, errors.New("a property is cut short")
			}
			at += 8 + (int(be.Uint32(st[at:]))+3)&^3
		case fdtNop:
		case fdtEnd:
			at = len(st)
		default:
			return nil, fmt.Errorf("token %#x is not one of the specification's", tok)
		}
	}
	if insert < 0 {
		return nil, errors.New("it has no /chosen")
	}
	var node bytes.Buffer
	for _, v := range []any{uint32(fdtBeginNode), []byte("bootloader\x00\x00"), uint32(fdtProp), uint32(4), uint32(len(strs)), uint32(1), uint32(fdtEndNode)} {
		binary.Write(&node, be, v)
	}
	newStruct := append(append(append([]byte(nil), st[:insert]...), node.Bytes()...), st[insert:]...)
	newStrings := append(append([]byte(nil), strs...), "tryboot\x00"...)
	out := append(append([]byte(nil), dtb[:40]...), dtb[offRsv:rsvEnd]...)
	set := func(i, v int) { be.PutUint32(out[4*i:], uint32(v)) }
	set(4, 40)
	set(2, len(out))
	set(9, len(newStruct))
	out = append(out, newStruct...)
	set(3, len(out))
	set(8, len(newStrings))
	out = append(out, newStrings...)
	set(1, len(out))
	return out, nil
}
