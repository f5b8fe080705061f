//go:build qemu

package test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

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
	disk := diskCopy(t, board)
	seed := filepath.Join(t.TempDir(), "seed.iso")
	if err := qemu.MakeSeedISO(ctx, seed, qemu.Seed{UserData: []byte("#cloud-config\nhostname: cairn-disk\n")}); err != nil {
		t.Fatal(err)
	}
	m := bootDisk(t, ctx, board, disk, seed)

	start := waitFor(t, ctx, m, bootTimeout, reInitStarting)
	if got := reInitStarting.FindStringSubmatch(start.Text)[1]; got != arch {
		t.Errorf("init says it runs on %s, want %s: %q", got, arch, start.Text)
	}
	state := waitFor(t, ctx, m, stepTimeout, reStateBoot)
	if got := reStateBoot.FindStringSubmatch(state.Text)[3]; got != "1" {
		t.Errorf("state line %q: want boot 1 of a fresh disk", state.Text)
	}
	waitFor(t, ctx, m, stepTimeout, reSlotBooted)
	loaded := waitFor(t, ctx, m, stepTimeout, reConfigLoaded)
	if !strings.Contains(loaded.Text, "cidata:") {
		t.Errorf("config line %q does not name the NoCloud seed (cidata)", loaded.Text)
	}
	if err := m.Powerdown(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, m, stepTimeout, reAllStopped)
	exitCtx, cancelExit := context.WithTimeout(ctx, stepTimeout)
	defer cancelExit()
	if err := m.Wait(exitCtx); err != nil {
		t.Fatalf("after the power button: %v", err)
	}
	t.Logf("figures: %s disk: init starting %s, config loaded %s after QEMU start", board, secs(start.At), secs(loaded.At))
}

// diskCopy builds board's disk.img and returns a sparse copy of it the
// test may write to.
func diskCopy(t *testing.T, board string) string {
	t.Helper()
	dir := image(t, board, "--format", "disk")
	disk := filepath.Join(t.TempDir(), "disk.img")
	if out, err := exec.Command("cp", "--sparse=always", filepath.Join(dir, "disk.img"), disk).CombinedOutput(); err != nil {
		t.Fatalf("copying disk.img: %v: %s", err, out)
	}
	return disk
}

// bootDisk starts board from disk (through its firmware) with a seed and
// kills QEMU when the test ends. The console goes to out/test-logs.
func bootDisk(t *testing.T, ctx context.Context, board, disk, seed string) *qemu.Machine {
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
	cfg := qemu.Config{Board: b, Seed: seed, Drives: []qemu.Drive{{Path: disk}}}
	cfg.FailOn = append(cfg.FailOn, qemu.FatalLines...)
	cfg.ConsoleLog = filepath.Join(logDir(t), strings.ReplaceAll(t.Name(), "/", "_")+".log")
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
