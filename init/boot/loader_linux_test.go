package boot

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/config/layout"
)

// piCard is a Raspberry Pi card as the image builder makes it, its boot
// partition and slots in a node directory (the container platform's
// media): config.txt and tryboot.txt booting a/, slot A's directory.
type piCard struct {
	t        *testing.T
	dir, esp string
	lines    []string // what WriteSlot printed
}

const piDTB = "bcm2711-rpi-4-b.dtb"

func newPiCard(t *testing.T) *piCard {
	t.Helper()
	c := &piCard{t: t, dir: t.TempDir()}
	c.esp = filepath.Join(c.dir, layout.ContainerESP)
	old := machine
	t.Cleanup(func() { machine = old; restartArg.Store("") })
	machine = containerMedia{dir: c.dir}
	conf := "arm_64bit=1\nenable_uart=1\nos_prefix=a/\nkernel=vmlinuz\ninitramfs initrd.img followkernel\ncmdline=cmdline.txt\n"
	for name, data := range map[string]string{
		layout.PiConfig: conf, layout.PiTryboot: conf,
		"a/vmlinuz": "kernel 1", "a/initrd.img": "initrd 1", "a/cmdline.txt": "console=ttyS1 cairn.system=disk cairn.slot=a\n", "a/" + piDTB: "dtb of slot A",
	} {
		c.write(name, data)
	}
	os.WriteFile(filepath.Join(c.dir, layout.ContainerSlot("a")), []byte("hsqs version 1"), 0o644)
	return c
}

func (c *piCard) write(name, data string) {
	c.t.Helper()
	path := filepath.Join(c.esp, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		c.t.Fatal(err)
	}
}

func (c *piCard) read(name string) string {
	data, err := os.ReadFile(filepath.Join(c.esp, name))
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return string(data)
}

// boots says which slots config.txt and tryboot.txt name.
func (c *piCard) boots() (cfg, try string) {
	return piSlot([]byte(c.read(layout.PiConfig))), piSlot([]byte(c.read(layout.PiTryboot)))
}

// system is a new system's files, version v2.
func (c *piCard) system(content string) NewSystem {
	return testSystem(c.t, content, "console=ttyS1 cairn.system=disk")
}

func (c *piCard) writeSlot(slot string, sys NewSystem, trialPath string) error {
	return WriteSlot(slot, sys, &Trial{Upgrade: "up-1", Slot: slot, FromSlot: OtherSlot(slot), Version: sys.Version}, trialPath,
		func(format string, args ...any) { c.lines = append(c.lines, fmt.Sprintf(format, args...)) })
}

// TestPiWriteSlot: an upgrade on a Raspberry Pi card writes slot B's
// partition and directory (the bundle's kernel, initramfs and command
// line, slot A's device trees), then the trial record, and last points
// tryboot.txt at b/; config.txt keeps booting slot A, and the next
// restart asks the firmware for its trial boot.
func TestPiWriteSlot(t *testing.T) {
	c := newPiCard(t)
	// A tryboot.txt left naming slot B (an earlier trial): WriteSlot
	// first points it back at A, before slot B is touched.
	c.write(layout.PiTryboot, strings.Replace(c.read(layout.PiTryboot), "os_prefix=a/", "os_prefix=b/", 1))
	trial := filepath.Join(c.dir, "state/cairn", layout.TrialFile)
	if err := c.writeSlot("b", c.system("hsqs version 2"), trial); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(filepath.Join(c.dir, layout.ContainerSlot("b"))); string(data) != "hsqs version 2" {
		t.Errorf("slot B's partition holds %q", data)
	}
	for name, want := range map[string]string{
		"b/vmlinuz": "kernel 2", "b/initrd.img": "initrd 2", "b/cmdline.txt": "console=ttyS1 cairn.system=disk cairn.slot=b\n", "b/" + piDTB: "dtb of slot A",
		"a/vmlinuz": "kernel 1", "a/cmdline.txt": "console=ttyS1 cairn.system=disk cairn.slot=a\n",
	} {
		if got := c.read(name); got != want {
			t.Errorf("%s is %q; want %q", name, got, want)
		}
	}
	if cfg, try := c.boots(); cfg != "a" || try != "b" {
		t.Errorf("config.txt boots %q, tryboot.txt %q; want a and b", cfg, try)
	}
	if try, cfg := c.read(layout.PiTryboot), c.read(layout.PiConfig); try != strings.Replace(cfg, "os_prefix=a/", "os_prefix=b/", 1) {
		t.Errorf("tryboot.txt is not config.txt with os_prefix=b/:\n%s", try)
	}
	if rec, err := ReadTrial(trial); err != nil || rec == nil || rec.Slot != "b" || rec.Upgrade != "up-1" {
		t.Errorf("trial record %+v, %v; want slot b of up-1", rec, err)
	}
	if got := RestartArg(); got != "0 tryboot" {
		t.Errorf("RestartArg after the write = %q; want \"0 tryboot\"", got)
	}
	said := strings.Join(c.lines, "\n")
	for _, want := range []string{"upgrade: writing slot B (cairn-b, ", `upgrade: slot B holds cairn v2; tryboot.txt names it (os_prefix=b/): the firmware tries it once after a restart with reboot "0 tryboot"; config.txt still boots slot A`} {
		if !strings.Contains(said, want) {
			t.Errorf("the console says\n%s\nwant %q", said, want)
		}
	}
	if why := Upgradable("a"); why != "" {
		t.Errorf("a Pi card is not upgradable: %s", why)
	}
}

// TestPiWriteSlotCommitsLast: a write that stops before its end (the
// image read back wrong, no device tree to copy, the trial record not
// written) leaves tryboot.txt naming slot A, also when an earlier trial
// left it naming B, and no trial restart asked for: the firmware boots
// slot A whatever happens.
func TestPiWriteSlotCommitsLast(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spoil func(c *piCard, sys *NewSystem, trial *string)
		err   string
	}{
		{"the partition does not keep the image", func(c *piCard, sys *NewSystem, _ *string) { sys.SystemSHA256 = strings.Repeat("0", 64) }, "the disk does not keep what is written"},
		{"slot A has no device tree", func(c *piCard, _ *NewSystem, _ *string) { os.Remove(filepath.Join(c.esp, "a", piDTB)) }, "slot A's directory a/ has no device tree (*.dtb) for slot B"},
		{"the trial record cannot be written", func(c *piCard, _ *NewSystem, trial *string) {
			os.WriteFile(filepath.Join(c.dir, "file"), nil, 0o644)
			*trial = filepath.Join(c.dir, "file", "trial.json")
		}, "writing the trial record"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newPiCard(t)
			c.write(layout.PiTryboot, strings.Replace(c.read(layout.PiTryboot), "os_prefix=a/", "os_prefix=b/", 1))
			sys := c.system("hsqs version 2")
			trial := filepath.Join(c.dir, "state/cairn", layout.TrialFile)
			tc.spoil(c, &sys, &trial)
			err := c.writeSlot("b", sys, trial)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("WriteSlot = %v; want an error saying %q", err, tc.err)
			}
			if cfg, try := c.boots(); cfg != "a" || try != "a" {
				t.Errorf("after the failed write config.txt boots %q, tryboot.txt %q; want slot A in both", cfg, try)
			}
			if RestartArg() != "" {
				t.Errorf("RestartArg after a failed write = %q; want a plain restart", RestartArg())
			}
		})
	}
}

// TestPiTrial follows an upgrade's trial on a Pi card through the calls
// the upgrader makes and the firmware's part, played here: a trial
// rejected returns to slot A (tryboot.txt names A again, a plain restart);
// a trial kept makes config.txt boot B; slot A, config.txt's, is never
// written, rejected or dropped while it is the one to fall back to.
func TestPiTrial(t *testing.T) {
	c := newPiCard(t)
	trial := filepath.Join(c.dir, "state/cairn", layout.TrialFile)
	if err := c.writeSlot("b", c.system("hsqs version 2"), trial); err != nil {
		t.Fatal(err)
	}
	// The firmware boots tryboot.txt's slot once; the node is not healthy.
	if why := trialTryboot(c.esp, "b", true); why == "" {
		t.Error("slot B booted from tryboot.txt is not on trial")
	}
	if err := RejectSlot("b"); err != nil {
		t.Fatal(err)
	}
	if cfg, try := c.boots(); cfg != "a" || try != "a" {
		t.Errorf("after the rejected trial config.txt boots %q, tryboot.txt %q; want slot A in both", cfg, try)
	}
	if RestartArg() != "" {
		t.Errorf("RestartArg after RejectSlot = %q; want a plain restart, which boots config.txt's slot", RestartArg())
	}
	if err := DropSlot("b"); err != nil {
		t.Fatal(err)
	}

	// Written again, its trial kept: config.txt boots B from then on.
	if err := c.writeSlot("b", c.system("hsqs version 3"), trial); err != nil {
		t.Fatal(err)
	}
	if err := blessTryboot(c.esp, "b", true); err != nil {
		t.Fatal(err)
	}
	if cfg, try := c.boots(); cfg != "b" || try != "b" {
		t.Errorf("after the kept trial config.txt boots %q, tryboot.txt %q; want slot B in both", cfg, try)
	}

	// Slot B is config.txt's now: the next upgrade writes A, never B.
	err := c.writeSlot("b", c.system("hsqs version 4"), trial)
	if err == nil || !strings.Contains(err.Error(), "config.txt boots slot B: it is the slot to fall back to") {
		t.Errorf("writing config.txt's slot: %v; want a refusal", err)
	}
	if data, _ := os.ReadFile(filepath.Join(c.dir, layout.ContainerSlot("b"))); string(data) != "hsqs version 3" {
		t.Errorf("slot B's partition holds %q after the refused write", data)
	}
	if err := RejectSlot("b"); err == nil || !strings.Contains(err.Error(), "slot B is the one config.txt boots, not a slot on trial") {
		t.Errorf("rejecting config.txt's slot: %v; want a refusal", err)
	}
	if err := c.writeSlot("a", c.system("hsqs version 4"), trial); err != nil {
		t.Fatal(err)
	}
	if c.read("a/"+piDTB) != "dtb of slot A" || c.read("a/cmdline.txt") != "console=ttyS1 cairn.system=disk cairn.slot=a\n" {
		t.Errorf("slot A's directory after the write from B: device tree %q, cmdline.txt %q", c.read("a/"+piDTB), c.read("a/cmdline.txt"))
	}
	if cfg, try := c.boots(); cfg != "b" || try != "a" {
		t.Errorf("config.txt boots %q, tryboot.txt %q; want b and a", cfg, try)
	}
}

// TestUpgradable: a disk with systemd-boot or a Pi card is upgradable in
// place; a boot partition with neither says what it lacks.
func TestUpgradable(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		why   string
	}{
		{"systemd-boot", map[string]string{"loader/entries/cairn-a.conf": layout.LoaderEntry("a", "v1", 1, "cairn.slot=a")}, ""},
		{"Raspberry Pi", map[string]string{"config.txt": "os_prefix=a/\n", "tryboot.txt": "os_prefix=a/\n"}, ""},
		{"config.txt naming no slot", map[string]string{"config.txt": "arm_64bit=1\n"}, "its boot partition: its config.txt names no slot (no os_prefix= line)"},
		{"neither", map[string]string{"EFI/BOOT/BOOTAA64.EFI": "x"}, "its boot partition: it has neither loader/entries (systemd-boot) nor config.txt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &piCard{t: t, dir: t.TempDir()}
			c.esp = filepath.Join(c.dir, layout.ContainerESP)
			old := machine
			defer func() { machine = old }()
			machine = containerMedia{dir: c.dir}
			for name, data := range tc.files {
				c.write(name, data)
			}
			if got := Upgradable("a"); !strings.HasPrefix(got, tc.why) || (got == "") != (tc.why == "") {
				t.Errorf("Upgradable = %q; want %q", got, tc.why)
			}
		})
	}
	if got := Upgradable(""); !strings.Contains(got, "does not boot from an A/B slot") {
		t.Errorf("a live boot: Upgradable = %q", got)
	}
}

// TestSystemdBootRestartsPlain: on systemd-boot (and the container
// platform's stand-in) an armed slot needs no restart argument.
func TestSystemdBootRestartsPlain(t *testing.T) {
	c := newPiCard(t)
	os.Remove(filepath.Join(c.esp, layout.PiConfig))
	c.write("loader/entries/cairn-a.conf", layout.LoaderEntry("a", "v1", 1, "cairn.slot=a"))
	restartArg.Store("0 tryboot") // as if left over: WriteSlot starts afresh
	if err := c.writeSlot("b", c.system("hsqs version 2"), filepath.Join(c.dir, "trial.json")); err != nil {
		t.Fatal(err)
	}
	if RestartArg() != "" {
		t.Errorf("RestartArg after a systemd-boot write = %q; want none", RestartArg())
	}
	if c.read("loader/entries/cairn-b+1.conf") == "" || c.read(layout.ESPDir+"/b/vmlinuz") != "kernel 2" {
		t.Errorf("slot B's entry %q, kernel %q", c.read("loader/entries/cairn-b+1.conf"), c.read(layout.ESPDir+"/b/vmlinuz"))
	}
}
