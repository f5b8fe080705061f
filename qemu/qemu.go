// Package qemu starts cairn boards in QEMU under TCG, wires their networks
// (QEMU user networking with port forwards, or TAP devices on a bridge inside
// a network namespace) and reads their serial console, so tests and `cairn
// run` can boot real images and watch what the init prints.
package qemu

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/cairn-os/cairn/boards"
)

// HostAddr is the address under which a guest on QEMU's user network reaches
// the host's loopback interface.
const HostAddr = "10.0.2.2"

// SeaBIOS as Config.Firmware boots through QEMU's default BIOS even when the
// board names UEFI firmware.
const SeaBIOS = "seabios"

// UserNetAddr is the address QEMU's user-network DHCP server gives the first
// guest, with its prefix.
const UserNetAddr = "10.0.2.15/24"

// FatalLines match console lines after which a boot goes no further: a
// kernel panic, or the init saying it cannot continue.
var FatalLines = []*regexp.Regexp{
	regexp.MustCompile(`Kernel panic - not syncing`),
	regexp.MustCompile(`cairn: \[\d+\.\d+\] init: cannot continue`),
}

// Artifacts are the files a direct kernel boot needs.
type Artifacts struct {
	Kernel  string // vmlinuz
	Initrd  string // initramfs.img
	Cmdline string // the kernel command line the builder wrote
}

// LoadArtifacts finds vmlinuz, initramfs.img and cmdline in a build output
// directory written by `cairn build`.
func LoadArtifacts(dir string) (Artifacts, error) {
	a := Artifacts{
		Kernel: filepath.Join(dir, "vmlinuz"),
		Initrd: filepath.Join(dir, "initramfs.img"),
	}
	for _, p := range []string{a.Kernel, a.Initrd} {
		if _, err := os.Stat(p); err != nil {
			return Artifacts{}, fmt.Errorf("boot artifacts in %s: %w (build them with `cairn build -o %s`)", dir, err, dir)
		}
	}
	cl, err := os.ReadFile(filepath.Join(dir, "cmdline"))
	if err != nil {
		return Artifacts{}, fmt.Errorf("boot artifacts in %s: %w (build them with `cairn build -o %s`)", dir, err, dir)
	}
	a.Cmdline = strings.TrimSpace(string(cl))
	return a, nil
}

// Forward is one TCP port forward from the host into a guest on QEMU's user
// network.
type Forward struct {
	HostAddr  string // empty means 127.0.0.1
	HostPort  int
	GuestPort int
}

// ParseForward reads "HOSTPORT:GUESTPORT" or "HOSTADDR:HOSTPORT:GUESTPORT".
func ParseForward(s string) (Forward, error) {
	parts := strings.Split(s, ":")
	var f Forward
	var err error
	switch len(parts) {
	case 2:
		_, err = fmt.Sscanf(s, "%d:%d", &f.HostPort, &f.GuestPort)
	case 3:
		f.HostAddr = parts[0]
		_, err = fmt.Sscanf(parts[1]+":"+parts[2], "%d:%d", &f.HostPort, &f.GuestPort)
	default:
		err = errors.New("wrong number of fields")
	}
	if err != nil || f.HostPort <= 0 || f.HostPort > 65535 || f.GuestPort <= 0 || f.GuestPort > 65535 {
		return Forward{}, fmt.Errorf("port forward %q: want HOSTPORT:GUESTPORT or HOSTADDR:HOSTPORT:GUESTPORT with ports 1-65535", s)
	}
	return f, nil
}

func (f Forward) hostfwd() string {
	addr := f.HostAddr
	if addr == "" {
		addr = "127.0.0.1"
	}
	return fmt.Sprintf("hostfwd=tcp:%s:%d-:%d", addr, f.HostPort, f.GuestPort)
}

// NIC is one network card of the guest: on a TAP device inside the machine's
// network namespace (see Netns) when TAP is set, otherwise on QEMU's user
// network.
type NIC struct {
	// Forwards are host-to-guest port forwards on the user network.
	Forwards []Forward
	// TAP is the name of a TAP device (made with Netns.AddTAP).
	TAP string
	// MAC is the card's address; a random locally administered one when empty,
	// so machines on one bridge never clash.
	MAC string
	// TFTP is a directory QEMU's user network serves read-only over TFTP
	// at HostAddr, and BootFile the file its DHCP server names for a
	// network boot (relative to TFTP). A machine with neither a kernel
	// nor drives boots from the first card with a BootFile, through the
	// card's option ROM (iPXE, from Debian's ipxe-qemu).
	TFTP     string
	BootFile string
}

// Drive is one extra disk of the guest, attached as a virtio block device.
type Drive struct {
	Path     string
	Format   string // raw (default) or qcow2
	ReadOnly bool
	// Snapshot discards the guest's writes when QEMU exits.
	Snapshot bool
	// Media is how the guest sees it: a virtio disk (""), a CD-ROM
	// ("cdrom", a SCSI CD on virtio-scsi, read-only), or an SD card ("sd",
	// the machine's own SD controller, for boards without PCI).
	Media string
}

// Drive media.
const (
	MediaCDROM = "cdrom"
	MediaSD    = "sd"
)

// Config says what to boot and how.
type Config struct {
	// Name appears in errors and console prefixes; the board's name when empty.
	Name  string
	Board *boards.Board
	// Artifacts of a direct kernel boot; when empty, the first of Drives
	// (or, with no drives, the network: see NIC.BootFile) boots through
	// the board's firmware (UEFI, or BIOS when it has none).
	Artifacts
	// DTB is a device tree for a direct kernel boot (-dtb), for machines
	// QEMU makes none for.
	DTB string
	// Firmware replaces the board's firmware for a boot without a kernel:
	// a file for -bios, or SeaBIOS for QEMU's default BIOS (legacy PXE).
	Firmware string
	// NoRNG leaves out the virtio RNG, for machines without PCI.
	NoRNG bool
	// ExtraCmdline is appended to Artifacts.Cmdline.
	ExtraCmdline []string
	// Seed is a NoCloud seed image (iso9660 or vfat labelled cidata),
	// attached read-only.
	Seed string
	// Drives are further disks.
	Drives []Drive
	// NICs; nil means one card on QEMU's user network, an empty non-nil
	// slice means no network at all.
	NICs []NIC
	// Netns runs QEMU inside this network namespace (needed for TAP NICs).
	Netns *Netns
	// Memory in MiB and SMP cpus; the board's memory and 1 cpu when zero.
	Memory int
	SMP    int
	// Console receives a copy of every byte of the serial console.
	Console io.Writer
	// ConsoleLog is a file the serial console is written to as well.
	ConsoleLog string
	// FailOn are console lines after which no awaited line will come (see
	// FatalLines): WaitFor fails as soon as one shows instead of timing out.
	FailOn []*regexp.Regexp
	// Interactive puts the serial console and QEMU's monitor on this
	// process's terminal (Ctrl-A X quits, Ctrl-A C switches to the monitor).
	Interactive bool
	// AllowReboot lets a guest reboot; by default a reboot (or a kernel
	// panic, with panic=-1) ends QEMU so a test sees it at once.
	AllowReboot bool
}

func (c *Config) name() string {
	if c.Name != "" {
		return c.Name
	}
	if c.Board != nil {
		return c.Board.Name
	}
	return "qemu"
}

// cmdline is the kernel command line: the builder's, the board's for
// QEMU, then the extras.
func (c *Config) cmdline() string {
	parts := []string{}
	if c.Cmdline != "" {
		parts = append(parts, c.Cmdline)
	}
	if c.Board != nil && c.Board.QEMU != nil && c.Board.QEMU.Cmdline != "" {
		parts = append(parts, c.Board.QEMU.Cmdline)
	}
	parts = append(parts, c.ExtraCmdline...)
	return strings.Join(parts, " ")
}
