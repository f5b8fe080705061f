//go:build qemu

package test

import (
	"cmp"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	diskfs "github.com/diskfs/go-diskfs"

	"github.com/cairn-os/cairn/boards"
	"github.com/cairn-os/cairn/qemu"
)

// The disk tests boot disk.img through the board's UEFI firmware (OVMF,
// AAVMF) and systemd-boot, with the config on a NoCloud seed: no -kernel.

var (
	reSlotBooted = regexp.MustCompile(`cairn: \[\d+\.\d+\] boot: slot A booted`)
	reStateBoot  = regexp.MustCompile(`cairn: \[\d+\.\d+\] boot: state: (\S+) mounted \(ext4, ([0-9.]+ [KMG]iB)\), boot (\d+) of this node`)
)

func TestDiskBootX86_64(t *testing.T) { testDiskBoot(t, "qemu-x86_64", "amd64") }

func TestDiskBootArm64(t *testing.T) { testDiskBoot(t, "qemu-arm64", "arm64") }

func testDiskBoot(t *testing.T, board, arch string) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	m := bootDisk(t, ctx, board, diskCopy(t, board), writeSeed(t, ctx))
	start, loaded := firstDiskBoot(t, ctx, m, arch)
	powerOff(t, ctx, m)
	t.Logf("figures: %s disk: init starting %s, config loaded %s after QEMU start", board, secs(start.At), secs(loaded.At))
}

// firstDiskBoot waits for the first boot of a fresh disk to load its config
// from the seed: STATE mounted for the first time, slot A marked booted.
func firstDiskBoot(t *testing.T, ctx context.Context, m *qemu.Machine, arch string) (start, loaded qemu.Line) {
	t.Helper()
	start = waitFor(t, ctx, m, bootTimeout, reInitStarting)
	if got := reInitStarting.FindStringSubmatch(start.Text)[1]; got != arch {
		t.Errorf("init says it runs on %s, want %s: %q", got, arch, start.Text)
	}
	state := waitFor(t, ctx, m, stepTimeout, reStateBoot)
	if got := reStateBoot.FindStringSubmatch(state.Text)[3]; got != "1" {
		t.Errorf("state line %q: want boot 1 of a fresh disk", state.Text)
	}
	waitFor(t, ctx, m, stepTimeout, reSlotBooted)
	loaded = waitFor(t, ctx, m, stepTimeout, reConfigLoaded)
	if !strings.Contains(loaded.Text, "cidata:") {
		t.Errorf("config line %q does not name the NoCloud seed (cidata)", loaded.Text)
	}
	return start, loaded
}

// powerOff presses the power button once the node's network is up (the
// init watches the button from then on, as in the boot tests) and waits for
// QEMU to exit.
func powerOff(t *testing.T, ctx context.Context, m *qemu.Machine) {
	t.Helper()
	waitFor(t, ctx, m, stepTimeout, reNetworkUp)
	if err := m.Powerdown(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, m, stepTimeout, reAllStopped)
	exitCtx, cancelExit := context.WithTimeout(ctx, stepTimeout)
	defer cancelExit()
	if err := m.Wait(exitCtx); err != nil {
		t.Fatalf("after the power button: %v", err)
	}
}

// TestDiskStateGrows enlarges a booted disk as a user would (qemu-img
// resize): at the next boot STATE fills it, and what the first boot wrote
// there is still there (the boot counter the init keeps on STATE).
func TestDiskStateGrows(t *testing.T) {
	board := "qemu-x86_64"
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	disk := diskCopy(t, board)
	seed := writeSeed(t, ctx)
	m := bootDisk(t, ctx, board, disk, seed)
	firstDiskBoot(t, ctx, m, "amd64")
	powerOff(t, ctx, m)

	if out, err := exec.CommandContext(ctx, "qemu-img", "resize", "-q", "-f", "raw", disk, "+2G").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img resize: %v: %s", err, out)
	}
	m = bootDiskWith(t, ctx, board, disk, seed, qemu.Config{Name: "enlarged", FailOn: qemu.FatalLines})
	waitFor(t, ctx, m, bootTimeout, regexp.MustCompile(`cairn: \[\d+\.\d+\] boot: state: grew cairn-state to fill the disk: [12]\.\d GiB`))
	state := waitFor(t, ctx, m, stepTimeout, reStateBoot)
	got := reStateBoot.FindStringSubmatch(state.Text)
	if got[3] != "2" {
		t.Errorf("state line %q: want boot 2, the count kept on STATE since the first boot", state.Text)
	}
	size, unit, _ := strings.Cut(got[2], " ")
	if gib, _ := strconv.ParseFloat(size, 64); unit != "GiB" || gib < 1.8 {
		t.Errorf("state line %q: STATE is %s, want it grown to about 2 GiB to fill the enlarged disk", state.Text, got[2])
	}
	waitFor(t, ctx, m, stepTimeout, reConfigLoaded)
	powerOff(t, ctx, m)
}

// TestDiskFallsBack selects slot B for the next boot with a broken boot
// (an initramfs the kernel cannot unpack, so it panics and, with panic=-1,
// reboots): systemd-boot counts the failure and comes back on slot A by
// itself, and the init says it fell back.
func TestDiskFallsBack(t *testing.T) {
	board := "qemu-x86_64"
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	disk := diskCopy(t, board)
	breakSlotB(t, disk, slotAFile("/EFI/cairn/a/vmlinuz"), func(read func(string) []byte) []byte {
		return []byte(strings.Repeat("not an initramfs ", 1000))
	})
	m := bootDiskWith(t, ctx, board, disk, writeSeed(t, ctx), qemu.Config{AllowReboot: true})
	waitFor(t, ctx, m, bootTimeout, regexp.MustCompile(`Kernel panic - not syncing`))
	fell := waitFor(t, ctx, m, bootTimeout, reFellBack)
	waitFor(t, ctx, m, stepTimeout, reConfigLoaded)
	if n := m.Count(reInitStarting); n != 1 {
		t.Errorf("the init started %d times, want once (slot A; slot B's kernel panics before it)", n)
	}
	t.Logf("console: %s", fell.Text)
	powerOff(t, ctx, m)
}

// TestDiskFallsBackStage1 selects slot B with a kernel and initramfs that
// boot but an empty slot partition: stage 1 finds no system image, sees
// that slot B is on trial, and restarts the machine, so the loader comes
// back on slot A without anyone at the console.
func TestDiskFallsBackStage1(t *testing.T) {
	board := "qemu-x86_64"
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	disk := diskCopy(t, board)
	breakSlotB(t, disk, slotAFile("/EFI/cairn/a/vmlinuz"), slotAFile("/EFI/cairn/a/initrd.img"))
	m := bootDiskWith(t, ctx, board, disk, writeSeed(t, ctx), qemu.Config{AllowReboot: true})
	waitFor(t, ctx, m, bootTimeout, regexp.MustCompile(`cairn: \[\d+\.\d+\] boot: mount the system image on partition cairn-b`))
	trial := waitFor(t, ctx, m, stepTimeout, regexp.MustCompile(`cairn: \[\d+\.\d+\] warning: boot: slot B is on trial \(its boot loader entry cairn-b\+0-1\.conf still counts tries\); restarting in 10s so the boot loader falls back to the other slot`))
	fell := waitFor(t, ctx, m, bootTimeout, reFellBack)
	waitFor(t, ctx, m, stepTimeout, reConfigLoaded)
	if n := m.Count(reInitStarting); n != 2 {
		t.Errorf("the init started %d times, want twice (slot B's stage 1, then slot A)", n)
	}
	t.Logf("console: %s / %s", trial.Text, fell.Text)
	powerOff(t, ctx, m)
}

// TestDiskFallsBackBadKernel selects slot B with a kernel that is no EFI
// image at all: systemd-boot counts the try, cannot start it and returns
// to the firmware, whose UEFI shell runs the ESP's startup.nsh, which
// restarts the machine; slot B's one try spent, the loader boots slot A.
func TestDiskFallsBackBadKernel(t *testing.T) {
	board := "qemu-x86_64"
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	disk := diskCopy(t, board)
	breakSlotB(t, disk, func(read func(string) []byte) []byte {
		return []byte(strings.Repeat("not a kernel ", 100000))
	}, slotAFile("/EFI/cairn/a/initrd.img"))
	m := bootDiskWith(t, ctx, board, disk, writeSeed(t, ctx), qemu.Config{AllowReboot: true})
	waitFor(t, ctx, m, bootTimeout, regexp.MustCompile(`Error loading \\EFI\\cairn\\b\\vmlinuz`))
	fell := waitFor(t, ctx, m, bootTimeout, reFellBack)
	waitFor(t, ctx, m, stepTimeout, reConfigLoaded)
	if n := m.Count(reInitStarting); n != 1 {
		t.Errorf("the init started %d times, want once (slot A; slot B's kernel never starts)", n)
	}
	t.Logf("console: %s", fell.Text)
	powerOff(t, ctx, m)
}

// slotAFile gives breakSlotB a file of slot A's unchanged.
func slotAFile(path string) func(read func(string) []byte) []byte {
	return func(read func(string) []byte) []byte { return read(path) }
}

// reFellBack is slot A's init saying slot B's one try was spent.
var reFellBack = regexp.MustCompile(`cairn: \[\d+\.\d+\] warning: boot: slot B failed to boot 1 times \(cairn-b\+0-1\.conf\); the boot loader fell back to slot A`)

// breakSlotB gives the disk a boot loader entry for slot B, newer than A's
// so systemd-boot picks it, with one try and the kernel and initramfs that
// kernel and initrd return (given a reader of the ESP's files); slot B's
// partition stays empty.
func breakSlotB(t *testing.T, img string, kernel, initrd func(read func(string) []byte) []byte) {
	t.Helper()
	d, err := diskfs.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	esp, err := d.GetFilesystem(1)
	if err != nil {
		t.Fatal(err)
	}
	read := func(path string) []byte {
		f, err := esp.OpenFile(path, os.O_RDONLY)
		if err != nil {
			t.Fatalf("ESP %s: %v", path, err)
		}
		data, err := io.ReadAll(f)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	write := func(path string, data []byte) {
		if err := esp.Mkdir(filepath.Dir(path)); err != nil {
			t.Fatal(err)
		}
		f, err := esp.OpenFile(path, os.O_CREATE|os.O_RDWR)
		if err != nil {
			t.Fatalf("ESP %s: %v", path, err)
		}
		if _, err := f.Write(data); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	entry := string(read("/loader/entries/cairn-a+3.conf"))
	entry = strings.NewReplacer("/EFI/cairn/a/", "/EFI/cairn/b/", "cairn.slot=a", "cairn.slot=b", "(slot A)", "(slot B)").Replace(entry)
	entry = regexp.MustCompile(`(?m)^version \d+$`).ReplaceAllString(entry, "version 9999999999")
	write("/EFI/cairn/b/vmlinuz", kernel(read))
	write("/EFI/cairn/b/initrd.img", initrd(read))
	write("/loader/entries/cairn-b+1.conf", []byte(entry))
}

func writeSeed(t *testing.T, ctx context.Context) string {
	t.Helper()
	seed := filepath.Join(t.TempDir(), "seed.iso")
	if err := qemu.MakeSeedISO(ctx, seed, qemu.Seed{UserData: []byte("#cloud-config\nhostname: cairn-disk\n")}); err != nil {
		t.Fatal(err)
	}
	return seed
}

// diskCopy builds board's disk.img and returns a sparse copy of it the
// test may write to.
func diskCopy(t *testing.T, board string) string {
	t.Helper()
	return artifactCopy(t, board, "disk", "disk.img")
}

// artifactCopy builds board's format and returns a sparse copy of its
// artifact name.
func artifactCopy(t *testing.T, board, format, name string) string {
	t.Helper()
	dir := image(t, board, "--format", format)
	cp := filepath.Join(t.TempDir(), name)
	if out, err := exec.Command("cp", "--sparse=always", filepath.Join(dir, name), cp).CombinedOutput(); err != nil {
		t.Fatalf("copying %s: %v: %s", name, err, out)
	}
	return cp
}

// TestISOBoot boots cairn.iso under OVMF and AAVMF as a USB stick would be
// (the ISO's EFI partition, systemd-boot, the live entry): the system image
// runs from RAM, the config comes from the seed, and there is no STATE.
func TestISOBootX86_64(t *testing.T) { testISOBoot(t, "qemu-x86_64", "") }

func TestISOBootArm64(t *testing.T) { testISOBoot(t, "qemu-arm64", "") }

// TestISOCDROM boots the same ISO as a CD-ROM (a SCSI CD on virtio-scsi):
// the firmware finds the El Torito UEFI boot image.
func TestISOCDROMX86_64(t *testing.T) { testISOBoot(t, "qemu-x86_64", qemu.MediaCDROM) }

func TestISOCDROMArm64(t *testing.T) { testISOBoot(t, "qemu-arm64", qemu.MediaCDROM) }

func testISOBoot(t *testing.T, board, media string) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	iso := artifactCopy(t, board, "iso", "cairn.iso")
	var m *qemu.Machine
	if media == "" {
		m = bootDisk(t, ctx, board, iso, writeSeed(t, ctx))
	} else {
		b, err := boards.Load(board)
		if err != nil {
			t.Fatal(err)
		}
		m = bootFirmware(t, ctx, b, qemu.Config{FailOn: qemu.FatalLines, Seed: writeSeed(t, ctx), Drives: []qemu.Drive{{Path: iso, Media: media}}})
	}
	start := waitFor(t, ctx, m, bootTimeout, reInitStarting)
	waitFor(t, ctx, m, stepTimeout, regexp.MustCompile(`cairn: \[\d+\.\d+\] boot: mount the system image /system\.sqfs`))
	loaded := waitFor(t, ctx, m, stepTimeout, reConfigLoaded)
	if !strings.Contains(loaded.Text, "cidata:") {
		t.Errorf("config line %q does not name the NoCloud seed (cidata)", loaded.Text)
	}
	if n := m.Count(reStateBoot); n != 0 {
		t.Errorf("a live boot mounted STATE %d times; it has none", n)
	}
	powerOff(t, ctx, m)
	t.Logf("figures: %s iso %s: init starting %s, config loaded %s after QEMU start", board, cmp.Or(media, "disk"), secs(start.At), secs(loaded.At))
}

// bootDisk starts board from disk (through its firmware) with a seed and
// kills QEMU when the test ends. The console goes to out/test-logs.
func bootDisk(t *testing.T, ctx context.Context, board, disk, seed string) *qemu.Machine {
	t.Helper()
	return bootDiskWith(t, ctx, board, disk, seed, qemu.Config{FailOn: qemu.FatalLines})
}

// bootDiskWith is bootDisk with cfg's Name (also in the log's name), FailOn
// and AllowReboot.
func bootDiskWith(t *testing.T, ctx context.Context, board, disk, seed string, cfg qemu.Config) *qemu.Machine {
	t.Helper()
	b, err := boards.Load(board)
	if err != nil {
		t.Fatal(err)
	}
	if b.QEMU == nil || b.QEMU.Firmware == "" {
		t.Fatalf("board %s names no UEFI firmware for QEMU", board)
	}
	if _, err := os.Stat(b.QEMU.Firmware); err != nil {
		t.Fatalf("firmware %s: %v (make deps installs ovmf and qemu-efi-aarch64)", b.QEMU.Firmware, err)
	}
	cfg.Seed, cfg.Drives = seed, append([]qemu.Drive{{Path: disk}}, cfg.Drives...)
	return bootFirmware(t, ctx, b, cfg)
}

// bootFirmware starts cfg on board b without a kernel (the firmware boots
// a drive or the network), console in out/test-logs, QEMU killed when the
// test ends.
func bootFirmware(t *testing.T, ctx context.Context, b *boards.Board, cfg qemu.Config) *qemu.Machine {
	t.Helper()
	cfg.Board = b
	log := strings.ReplaceAll(t.Name(), "/", "_")
	if cfg.Name != "" {
		log += "-" + cfg.Name
	}
	cfg.ConsoleLog = filepath.Join(logDir(t), log+".log")
	m, err := qemu.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.Kill()
		if t.Failed() {
			t.Logf("%s: full console log in %s", m.Name(), cfg.ConsoleLog)
		}
	})
	return m
}
